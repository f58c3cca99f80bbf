"""Does ``hfm pretrain`` help on real images? Self-supervised pretraining vs the same architecture at random init.

One backbone is pretrained per evaluation set, under the leakage rules of the study:

* ``breastmnist``: the 546 BreastMNIST train images. Never BUSI (BreastMNIST is BUSI downsampled: the same
  patients), never BreastMNIST val/test.
* ``busi``: the train part of hfm's seeded automatic BUSI split (seed 0, val 0.15, test 0.2: the split the
  evaluation uses). Never BreastMNIST, never the BUSI val/test images.
* ``bccd``: the 2,804 BCCD train crops (blood-smear cells; another modality), never its val/test crops.

Two starting points (``--base``; each target has its own default, :data:`TARGET_BASES`):

* ``dino-resnet18w16`` (BreastMNIST, BCCD): a timm ResNet-18 with channels 16-32-64-128 at 32 px, DINO with a
  batch-norm projection head, 2 global + 6 local views and a sharp teacher (temperature 0.02), 30 epochs (BCCD:
  15), about 4-10 minutes per backbone on the 2-core machine depending on its load.
* ``mae-vit-w96d4p4`` (BUSI): a timm ViT of width 96, depth 4, patch 4 at 32 px with mean-pooled tokens, MAE
  (75 % of the patches masked, a 2-block decoder of width 64), 60 epochs, about 4 minutes. On BUSI, DINO did not
  beat random init in any setting tried; MAE does (benchmarks/README.md lists every attempt).

``--bccd`` adds the 2,804 BCCD train crops to a target's images (never twice to BCCD's own).

Each backbone is then evaluated with hfm's own probe sweep (``probe/logreg``, k in {1, 4, 16}, seeds 0..9) on
its set, against the same architecture at random initialisation (same seed, same preprocessing). The claim is
the paired difference per seed (averaged over k) with its 95 % t-interval, plus per-k means and a
label-efficiency plot. The backbones are built by this script (never committed) into
``$HFM_CACHE/benchmarks/pretrained/<name>`` where other benchmarks load them with
``hfm.load_backbone("local-dir:" + str(pretrained_backbone("busi")))``; see :func:`pretrained_backbone`.

    python benchmarks/pretrain_study.py                 # build (if missing) and evaluate all three
    python benchmarks/pretrain_study.py --rebuild       # rebuild the backbones first
    python benchmarks/pretrain_study.py --quick         # synthetic smoke run in seconds
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, SHARED_DATA, machine_info, parser, setup_threads

SHOTS = (1, 4, 16)
SEEDS = tuple(range(10))
# What the study found to work on a 2-core CPU (see benchmarks/README.md for what else was tried).
ARCH: dict[str, Any] = {
    "architecture": "resnet18",
    "kwargs": {"channels": [16, 32, 64, 128]},
    "input_size": 32,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
}
RECIPE: dict[str, Any] = {
    "objective": {
        "out_dim": 1024,
        "hidden_dim": 512,
        "bottleneck_dim": 128,
        "batch_norm": True,
        "teacher_temp": 0.02,
        "warmup_teacher_temp": 0.02,
        "momentum": 0.99,
    },
    "views": {"local_crops": 6, "local_size": 16, "global_scale": [0.35, 1.0], "local_scale": [0.1, 0.35]},
    "schedule": {"epochs": 30, "batch_size": 32, "lr": 1e-3, "warmup_epochs": 1, "weight_decay": 0.04},
    "monitor": {"every": 2, "max_images": 600, "tolerance": 0.1},
}


# MAE on a small ViT (the size: width 96, depth 4, patch 4 at 32 px), mean-pooled tokens.
VIT_ARCH: dict[str, Any] = {
    "architecture": "vit_tiny_patch16_224",
    "kwargs": {
        "img_size": 32,
        "patch_size": 4,
        "embed_dim": 96,
        "depth": 4,
        "num_heads": 3,
        "global_pool": "avg",
    },
    "input_size": 32,
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
}
MAE_RECIPE: dict[str, Any] = {
    "objective": {
        "name": "mae",
        "mask_ratio": 0.75,
        "decoder_dim": 64,
        "decoder_depth": 2,
        "decoder_heads": 4,
    },
    "views": {"global_scale": [0.35, 1.0]},
    "schedule": {"epochs": 60, "batch_size": 32, "lr": 1e-3, "warmup_epochs": 5, "weight_decay": 0.05},
    "monitor": {"every": 5, "max_images": 600, "tolerance": 0.1},
}
# Named starting points: (architecture, recipe, objective label); ``--base`` picks one.
BASES: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "dino-resnet18w16": (ARCH, RECIPE, "DINO"),
    "mae-vit-w96d4p4": (VIT_ARCH, MAE_RECIPE, "MAE"),
}
DEFAULT_BASE = "dino-resnet18w16"
# Per-target base (default DEFAULT_BASE).
TARGET_BASES: dict[str, str] = {"busi": "mae-vit-w96d4p4"}
# Per-target changes to the base recipe (what each set's backbone was built with; see benchmarks/README.md).
TARGET_RECIPES: dict[str, dict[str, Any]] = {
    "bccd": {"schedule": {"epochs": 15}},  # 2,804 crops: 15 epochs give as many steps as ~80 on BUSI
}


def sources(shared: Path) -> dict[str, dict[str, Any]]:
    """The data blocks of the study (the BUSI split is the one the evaluation uses)."""
    return {
        "breastmnist": {"type": "npz", "path": str(shared / "medmnist" / "breastmnist.npz")},
        "busi": {
            "type": "folder",
            "root": str(shared / "busi"),
            "split": {"seed": 0, "val": 0.15, "test": 0.2},
        },
        "bccd": {
            "type": "npz",
            "path": str(shared / "bccd" / "bccd_cell_crops_64.npz"),
            "group_key": "source_image",
        },
    }


def pretrained_root() -> Path:
    """``$HFM_CACHE/benchmarks/pretrained`` (default ``~/.cache/hfm/benchmarks/pretrained``)."""
    base = os.environ.get("HFM_CACHE") or str(Path.home() / ".cache" / "hfm")
    return Path(base) / "benchmarks" / "pretrained"


def pretrained_backbone(target: str, *, variant: str = "final", build: bool = True) -> Path:
    """The folder of the backbone pretrained for ``target`` (``breastmnist``, ``busi`` or ``bccd``), built if
    missing.

    Other benchmarks call this (``sys.path`` holding ``benchmarks/``) to get "a backbone that carries signal"
    for one of the two sets without leaking its val/test images.
    """
    folder = pretrained_root() / f"{target}-{variant}"
    if build and not (folder / "hfm_spec.json").is_file():
        build_backbone(target, folder, recipe_overrides={}, quick=False)
    return folder


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def study_recipe(
    target: str,
    *,
    quick: bool,
    shared: Path = SHARED_DATA,
    bccd: bool = False,
    base: str | None = None,
) -> dict[str, Any]:
    """The pretrain recipe for one target: its own train images (and BCCD train with ``bccd``), with the
    target's own changes (:data:`TARGET_RECIPES`) merged over its base recipe (:data:`BASES`)."""
    base = base or TARGET_BASES.get(target, DEFAULT_BASE)
    arch, recipe, objective = BASES[base]
    if quick:
        data = [{"type": "synthetic", "n_classes": 2, "n_per_class": 24, "size": 32, "seed": 1}]
        quick_over: dict[str, Any] = {"schedule": {"epochs": 1, "batch_size": 16, "progress": False}}
        if objective == "DINO":
            quick_over["objective"] = {"out_dim": 64}
        return _merge({**recipe, "name": f"{target}-quick", "backbone": arch, "data": data}, quick_over)
    blocks = sources(shared)
    bccd = bccd and target != "bccd"  # BCCD's own backbone already reads the BCCD train crops
    return _merge(
        {
            **recipe,
            "name": f"{base}-{target}",
            "description": f"{objective} from scratch on {target} train images{' + BCCD train' if bccd else ''} "
            "(hfm pretrain study)",
            "backbone": arch,
            "data": [blocks[target], *([blocks["bccd"]] if bccd else [])],
        },
        TARGET_RECIPES.get(target, {}) if base == TARGET_BASES.get(target, DEFAULT_BASE) else {},
    )


def build_backbone(
    target: str,
    folder: Path,
    *,
    recipe_overrides: dict[str, Any],
    quick: bool,
    bccd: bool = False,
    base: str | None = None,
) -> dict[str, Any]:
    """Pretrain the backbone for ``target`` into ``folder`` and return what the run did."""
    import hfm

    recipe = _merge(study_recipe(target, quick=quick, bccd=bccd, base=base), recipe_overrides)
    result = hfm.pretrain(recipe, out=folder)
    return {
        "seconds": result.seconds,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "stopped": result.stopped,
        "checks": result.checks,
        "history": result.history,
        "images": result.images,
    }


def build_facts(folder: Path) -> dict[str, Any]:
    """What the pretraining of ``folder`` did, from its ``hfm_pretrain.json`` (time, epochs, monitor)."""
    facts = json.loads((folder / "hfm_pretrain.json").read_text())
    keep = (
        "seconds",
        "epochs_done",
        "best_epoch",
        "stopped",
        "images",
        "images_per_source",
        "monitor",
        "history",
    )
    return {key: facts.get(key) for key in keep}


def random_backbone(
    target: str, folder: Path, *, quick: bool, overrides: dict[str, Any], base: str | None = None
) -> Path:
    """The same architecture at random initialisation (the recipe's seed), written like a pretrained one."""
    from hfm.pretrain.config import parse_recipe
    from hfm.pretrain.export import write_backbone
    from hfm.pretrain.loop import load_start

    recipe = parse_recipe(_merge(study_recipe(target, quick=quick, base=base), overrides))
    backbone, args = load_start(recipe)
    if folder.exists():
        shutil.rmtree(folder)
    write_backbone(
        folder,
        backbone.model,
        backbone.spec.replace(name="random-init"),
        family="timm",
        model_args=args,
        source=None,
        facts={"random_init": True},
    )
    return folder


def probe_sweep(
    backbone: Path, target: str, out: Path, *, shots: tuple[int, ...], seeds: tuple[int, ...], quick: bool
) -> dict[tuple[int, int], float]:
    """hfm's probe sweep; returns test balanced accuracy per (k, seed)."""
    import hfm

    data = study_recipe(target, quick=quick)["data"][0]
    result = hfm.run(
        {
            "name": f"{target}-{backbone.name}",
            "backbone": f"local-dir:{backbone}",
            "data": data,
            "presets": ["probe/logreg"],
            "shots": list(shots),
            "seeds": list(seeds),
            "output": str(out),
        },
        progress=False,
        verbose=False,
    )
    if not result.ok:
        raise RuntimeError(f"probe sweep failed: {result.failed}")
    scores = {}
    for k in shots:
        for seed in seeds:
            metrics = json.loads(
                (out / "probe" / "logreg" / f"k{k}" / f"seed{seed}" / "metrics.json").read_text()
            )
            scores[(k, seed)] = float(metrics["test"]["balanced_accuracy"])
    return scores


T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def paired(
    pre: dict[tuple[int, int], float],
    rand: dict[tuple[int, int], float],
    shots: tuple[int, ...],
    seeds: tuple[int, ...],
) -> dict[str, Any]:
    """Per-seed differences averaged over k, their mean and 95 % t-interval; per-k means."""
    per_seed = [statistics.mean(pre[(k, s)] - rand[(k, s)] for k in shots) for s in seeds]
    mean = statistics.mean(per_seed)
    half = (
        T95.get(len(seeds) - 1, 1.96) * statistics.stdev(per_seed) / math.sqrt(len(seeds))
        if len(seeds) > 1
        else float("nan")
    )
    return {
        "diff_mean": mean,
        "diff_ci95": [mean - half, mean + half],
        "per_seed_diff": per_seed,
        "per_k": {
            str(k): {
                "pretrained": statistics.mean(pre[(k, s)] for s in seeds),
                "random_init": statistics.mean(rand[(k, s)] for s in seeds),
                "diff": statistics.mean(pre[(k, s)] - rand[(k, s)] for s in seeds),
            }
            for k in shots
        },
    }


def plot(results: dict[str, Any], path: Path) -> None:
    """Label-efficiency curves: pretrained vs random init per evaluation set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.2 * len(results), 3.4), squeeze=False)
    for ax, (target, res) in zip(axes[0], results.items(), strict=True):
        ks = [int(k) for k in res["per_k"]]
        pretrained = f"pretrained ({res.get('base', DEFAULT_BASE)})"
        for key, label in (("random_init", "random init"), ("pretrained", pretrained)):
            ax.plot(ks, [res["per_k"][str(k)][key] for k in ks], marker="o", label=label)
        ax.set(
            xscale="log",
            xticks=ks,
            xticklabels=[str(k) for k in ks],
            xlabel="labelled images per class (k)",
            ylabel="test balanced accuracy",
            title=f"{target}: diff {res['diff_mean']:+.3f} "
            f"[{res['diff_ci95'][0]:+.3f}, {res['diff_ci95'][1]:+.3f}]",
        )
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--targets", default="breastmnist,busi,bccd")
    p.add_argument("--rebuild", action="store_true", help="pretrain again even if the backbone exists")
    p.add_argument(
        "--variant", default="final", help="folder suffix (and results name) of this configuration"
    )
    p.add_argument("--set", dest="overrides", default="{}", help="JSON merged over the pretrain recipe")
    p.add_argument("--seeds", type=int, default=len(SEEDS))
    p.add_argument("--bccd", action="store_true", help="also pretrain on the BCCD train crops")
    p.add_argument(
        "--base", choices=sorted(BASES), default=None, help="architecture + objective (default: per target)"
    )
    args = p.parse_args(argv)
    threads = setup_threads(args.threads)
    if not args.quick and not SHARED_DATA.is_dir():
        print(f"real data not found at {SHARED_DATA} (set HFM_SHARED_DATA)")
        return 2
    overrides = json.loads(args.overrides)
    shots = (1,) if args.quick else SHOTS
    seeds = tuple(range(2 if args.quick else args.seeds))
    work = Path(args.results_dir) / "work" if args.quick and args.results_dir else pretrained_root()
    results: dict[str, Any] = {}
    builds: dict[str, Any] = {}
    for target in args.targets.split(","):
        folder = work / f"{target}-{args.variant}"
        if args.rebuild or args.quick or not (folder / "hfm_spec.json").is_file():
            started = time.perf_counter()
            build_backbone(
                target, folder, recipe_overrides=overrides, quick=args.quick, bccd=args.bccd, base=args.base
            )
            print(f"{target}: built {folder} in {time.perf_counter() - started:.0f} s")
        builds[target] = build_facts(folder)
        random = random_backbone(
            target,
            work / f"{target}-random-init-{args.variant}",
            quick=args.quick,
            overrides=overrides,
            base=args.base,
        )
        sweeps = work / "sweeps" / args.variant
        pre = probe_sweep(
            folder, target, sweeps / f"{target}-pretrained", shots=shots, seeds=seeds, quick=args.quick
        )
        rand = probe_sweep(
            random, target, sweeps / f"{target}-random", shots=shots, seeds=seeds, quick=args.quick
        )
        base = args.base or TARGET_BASES.get(target, DEFAULT_BASE)
        results[target] = {
            "base": base,
            "objective": BASES[base][2],
            **paired(pre, rand, shots, seeds),
        }
        res = results[target]
        per_k = " ".join(
            f"k={k}: {v['random_init']:.3f} -> {v['pretrained']:.3f}" for k, v in res["per_k"].items()
        )
        print(
            f"{target}: {per_k}; paired diff {res['diff_mean']:+.4f} "
            f"[{res['diff_ci95'][0]:+.4f}, {res['diff_ci95'][1]:+.4f}]"
        )
        print(
            f"ratio {target} pretrained minus random (balanced accuracy): {res['diff_mean']:.4f} "
            f"(target > 0 with CI above 0) {'PASS' if res['diff_ci95'][0] > 0 else 'MISS'}"
        )
    name = "pretrain_study" if args.variant == "final" else f"pretrain_study_{args.variant}"
    folder = args.results_dir or (None if args.quick else RESULTS_DIR)
    if folder is not None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        plot(results, folder / f"{name}.png")
        payload = {
            "benchmark": "pretrain_study",
            "quick": bool(args.quick),
            "command": " ".join(sys.argv),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "machine": machine_info(threads),
            "variant": args.variant,
            "base": args.base,
            "overrides": overrides,
            "shots": list(shots),
            "seeds": list(seeds),
            "builds": builds,
            "results": results,
        }
        (folder / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {folder / (name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
