"""Semi-supervised presets against their labelled-only twins on real images: paired differences over seeds.

Two real sets from ``../shared/data``, each read through hfm's own sweep (same draws for every preset):

* ``breastmnist`` (breast ultrasound, 2 classes, 546 train images: the pool is train minus the labelled ones);
* ``bccd`` (blood-cell crops, 3 classes, grouped by slide: the pool excludes crops of val/test slides).

The backbone must carry signal, and no pretrained weights can be downloaded here. Each set gets its own
small CNN (timm ``resnet18`` with channels 16-128, 32 px) pretrained with DINO by ``benchmarks/pretrain_study.py``
on *that set's train images only*: ``$HFM_CACHE/benchmarks/pretrained/<set>-final``. No val or test image of the
evaluated set reaches its backbone. ``--backbone`` replaces both with one ``local-dir:`` (or catalog) backbone.

Two parts, on the same draws (k in {1, 4, 16} labelled images per class):

* **embeddings**: ``probe/logreg`` against ``label-spreading/knn``, ``label-propagation/knn`` and
  ``self-training/logreg``, seeds 0..9 (seconds per sweep).
* **end to end**: the ``full`` tuner (the whole CNN trains; LoRA's default targets are attention projections, a
  CNN has none), supervised against pseudo-labelling, FixMatch and FreeMatch (mu 2, batch 8, 50 steps), seeds
  0..4: sized to fit about half an hour of one CPU core for both sets. It shows what the methods do at this
  budget, not what they do at a GPU budget.

Every row is the paired difference of test balanced accuracy (semi-supervised minus labelled-only) over seeds,
with its 95% t-interval (:mod:`hfm.paired`). ``--quick`` runs a few steps on synthetic images and a twin.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

EMBEDDING_PRESETS = ["probe/logreg", "label-spreading/knn", "label-propagation/knn", "self-training/logreg"]
#: End-to-end presets on the full tuner: the labelled-only twin and three semi-supervised methods.
E2E_TRAINING = {"lr": 1.0e-3, "batch_size": 8, "epochs": 10_000, "eval_every": 5}


#: RandAugment's ops that change intensity or colour rather than geometry (``--strong-view geometric`` drops them).
INTENSITY_OPS = [
    "Brightness",
    "Color",
    "Contrast",
    "Sharpness",
    "Posterize",
    "Solarize",
    "AutoContrast",
    "Equalize",
]


def e2e_presets(mu: int, methods: list[str], strong_view: str = "randaugment") -> list[dict[str, Any]]:
    """The end-to-end presets: ``full`` supervised, and the same tuner with each semi-supervised method.

    Ablations of the strong view: ``"geometric"`` keeps only RandAugment's geometric ops; ``"weak"`` makes it a
    second draw of the weak view (magnitude 0, the ops that ignore the magnitude excluded).
    """
    strong: dict[str, Any] = {"policy": "randaugment", "num_ops": 2, "magnitude": 9}
    if strong_view == "geometric":
        strong["exclude"] = INTENSITY_OPS
    elif strong_view == "weak":
        strong.update(magnitude=0, exclude=["AutoContrast", "Equalize", "Posterize", "Solarize"])
    suffix = "" if strong_view == "randaugment" else f"-{strong_view}"
    params = {
        "pseudo-label": {"threshold": 0.95, "mu": mu},
        "fixmatch": {"threshold": 0.95, "mu": mu, "strong_augment": strong},
        "freematch": {"mu": mu, "strong_augment": strong},
    }
    out: list[dict[str, Any]] = [{"name": "full/sup", "tuner": "full", "training": E2E_TRAINING}]
    for method in methods:
        name = f"{method}{'' if method == 'pseudo-label' else suffix}/full"
        out.append({"name": name, "tuner": "full", "training": E2E_TRAINING,
                    "method": {"name": method, "params": params[method]}})  # fmt: skip
    return out


SETS: dict[str, dict[str, Any]] = {
    "breastmnist": {
        "data": {"type": "npz", "path": "medmnist/breastmnist.npz"},
    },
    "bccd": {
        "data": {"type": "npz", "path": "bccd/bccd_cell_crops_64.npz", "group_key": "source_image"},
    },
}


def backbone_for(name: str, args: Any) -> dict[str, Any]:
    """The backbone block for one evaluated set: its own DINO-pretrained CNN (or ``--backbone``)."""
    if args.quick:
        return {"name": "pathology/uni", "twin": True}
    if args.backbone:
        return {"name": args.backbone}
    import os

    cache = Path(os.environ.get("HFM_CACHE") or Path.home() / ".cache" / "hfm")
    folder = cache / "benchmarks" / "pretrained" / f"{name}-final"
    if not (folder / "hfm_spec.json").is_file():
        raise SystemExit(
            f"error: {folder} not found; build it with benchmarks/pretrain_study.py or pass --backbone"
        )
    return {"name": f"local-dir:{folder}"}


def recipe(name: str, part: str, args: Any, shared: Path, out: Path) -> dict[str, Any]:
    """The sweep of one set and one part (``embeddings`` or ``e2e``)."""
    if args.quick:
        data: dict[str, Any] = {"type": "synthetic", "n_classes": 2, "n_per_class": 16, "n_val_per_class": 3,
                                "n_test_per_class": 6, "size": 32}  # fmt: skip
    else:
        data = dict(SETS[name]["data"])
        data["path"] = str(shared / data["path"])
    e2e = part == "e2e"
    return {
        "name": f"semi-supervised-{name}-{part}",
        "backbone": backbone_for(name, args),
        "data": data,
        "presets": e2e_presets(args.mu, args.e2e_methods, args.strong_view) if e2e else EMBEDDING_PRESETS,
        "shots": args.e2e_shots if e2e else args.shots,
        "seeds": list(range(args.e2e_seeds if e2e else args.seeds)),
        "training": {"max_steps": args.e2e_steps, "patience": None, "warmup_ratio": 0.1} if e2e else {},
        "metrics": ["balanced_accuracy", "accuracy"],
        "bootstrap": 0,
        "output": str(out / name / part),
    }


def _num(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None else format(value, spec)


def gains_table(part: dict[str, Any]) -> str:
    """One set/part's paired differences beside both presets' means; **bold**: worse than the labelled-only
    twin by more than the twin's seed standard deviation (what the docs must explain)."""
    metric = "balanced_accuracy"
    cell = {(r["preset"], r["k"]): r[metric] for r in part["rows"]}
    lines = [
        "| preset | k | labelled-only twin | twin (mean ± std) | preset (mean ± std) | difference (mean ± std) "
        "| 95% CI | wins |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in part["gains"]:
        base, mine = cell[(g["baseline"], g["k"])], cell[(g["preset"], g["k"])]
        diff = f"{g['mean']:+.3f} ± {_num(g['std'])}"
        if base["std"] is not None and g["mean"] < -base["std"]:
            diff = f"**{diff}**"
        low, high = g["ci95"]
        lines.append(
            f"| {g['preset']} | {g['k']} | {g['baseline']} | {base['mean']:.3f} ± {_num(base['std'])} "
            f"| {mine['mean']:.3f} ± {_num(mine['std'])} | {diff} | [{_num(low, '+.3f')}, {_num(high, '+.3f')}] "
            f"| {g['wins']}/{g['n']} |"
        )
    return "\n".join(lines) + "\n"


def write_tables(results: dict[str, Any], folder: Path) -> None:
    """``semi_supervised.md`` (every paired-difference table) and one gains plot per set and part."""
    from hfm.paired import plot_gains

    lines = [
        "# Semi-supervised presets vs their labelled-only twins (test balanced accuracy, paired over seeds)\n"
    ]
    for key, part in results.items():
        lines += [f"## {key}\n", gains_table(part)]
        if part["gains"]:
            plot_gains(part["gains"], folder / f"semi_supervised_{key.replace('/', '_')}.png", title=key)
    (folder / "semi_supervised.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--shots", nargs="+", type=int, default=None, help="embedding part (default 1 4 16)")
    p.add_argument("--seeds", type=int, default=None, help="embedding part (default 10)")
    p.add_argument("--e2e-shots", nargs="+", type=int, default=None, help="end-to-end part (default 1 4 16)")
    p.add_argument("--e2e-seeds", type=int, default=None, help="end-to-end part (default 5)")
    p.add_argument("--e2e-steps", type=int, default=None, help="end-to-end optimizer steps (default 50)")
    p.add_argument("--mu", type=int, default=2, help="unlabelled images per labelled image (end to end)")
    p.add_argument(
        "--e2e-methods", nargs="+", default=["pseudo-label", "fixmatch", "freematch"],
        choices=["pseudo-label", "fixmatch", "freematch"], help="end-to-end methods beside full/sup",
    )  # fmt: skip
    p.add_argument(
        "--strong-view", default="randaugment", choices=["randaugment", "geometric", "weak"],
        help="the strong view of fixmatch/freematch: RandAugment, only its geometric ops, or none (ablations)",
    )  # fmt: skip
    p.add_argument("--skip-e2e", action="store_true", help="only the embedding part")
    p.add_argument("--skip-embeddings", action="store_true", help="only the end-to-end part")
    p.add_argument("--backbone", default=None, help="one backbone for every set instead of the built CNNs")
    p.add_argument("--out", type=Path, default=None, help="sweep folders (default: a temporary folder)")
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other sets/parts of an existing results JSON (update it)",
    )
    args = _common.parse_args(p, argv)
    args.shots = args.shots or ([1, 4] if args.quick else [1, 4, 16])
    args.seeds = args.seeds or (2 if args.quick else 10)
    args.e2e_shots = args.e2e_shots or ([4] if args.quick else [1, 4, 16])
    args.e2e_seeds = args.e2e_seeds or (2 if args.quick else 5)
    args.e2e_steps = args.e2e_steps or (2 if args.quick else 50)
    threads = _common.setup_threads(args.threads)
    shared = _common.SHARED_DATA
    if not args.quick and not shared.is_dir():
        print(f"error: real data not found at {shared}; set HFM_SHARED_DATA to the shared data folder")
        return 2
    from hfm.runner import run

    out = args.out or Path(tempfile.mkdtemp(prefix="hfm-semi-"))
    sets = args.sets[:1] if args.quick else args.sets
    parts = ([] if args.skip_embeddings else ["embeddings"]) + ([] if args.skip_e2e else ["e2e"])
    results: dict[str, Any] = {}
    start = time.perf_counter()
    for name in sets:
        for part in parts:
            result = run(recipe(name, part, args, shared, out), progress=not args.quick, verbose=False)
            if not result.ok:
                print(f"error: {name}/{part}: {result.failed}")
                return 1
            summary = result.summary
            results[f"{name}/{part}"] = {
                "rows": [
                    {"preset": r["preset"], "k": r["k"], **{m: r[m] for m in ("balanced_accuracy",)}}
                    for r in summary["rows"]
                ],  # fmt: skip
                "gains": summary.get("gains", []),
            }
            print(f"\n## {name}: {part}\n")
            print(summary["table"], end="")
            from hfm.paired import gains_markdown

            print("\n" + gains_markdown(summary.get("gains", [])), end="")
    seconds = time.perf_counter() - start
    print(f"\n{len(results)} sweep(s) in {seconds:.0f} s; sweep folders under {out}")
    runs = {name: {"seconds": round(seconds, 1), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}} for name in results}  # fmt: skip
    folder = args.results_dir or _common.RESULTS_DIR
    previous = folder / "semi_supervised.json"
    if args.merge and previous.is_file():
        old = json.loads(previous.read_text())
        results = {**old.get("results", {}), **results}
        runs = {**old.get("runs", {}), **runs}
    path = _common.write_result(
        "semi_supervised", {"machine": _common.machine_info(threads), "runs": runs, "results": results}, args
    )
    if path is not None:
        write_tables(results, path.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
