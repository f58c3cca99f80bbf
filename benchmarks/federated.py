"""Federated few-shot adaptation on real images: the federated adapter against each site alone and against
pooling every site's labels.

Two real sets under ``../shared/data`` (BreastMNIST; BCCD blood-cell crops, grouped by slide) are split into
4 simulated sites, IID and label-skewed (Dirichlet, alpha 0.5). Every site draws its own k labels per class; a
probe head on frozen embeddings is trained federated (FedAvg on both splits, FedProx on the skewed one),
local-only (each site alone, the same number of local steps from the same initial head) and centralised (one head
on the union of the sites' draws: the upper bound). Reported per test set (each site's test split and their union,
"pooled"): test balanced accuracy (mean over seeds) and the paired differences federated - local-only (the mean
over the sites' local adapters) and federated - centralised, with 95% t intervals over seeds; and the pooled test
balanced accuracy of the global adapter over rounds.

Backbone: for each set, the self-supervised CNN the pretraining study builds from that set's *train* images only
(``$HFM_CACHE/benchmarks/pretrained/<set>-final``, see ``pretrain_study.py``), so no val/test image shaped the
features; ``--backbone SET=local-dir:PATH`` takes any other timm folder.

    python benchmarks/federated.py --threads 1           # the tables in benchmarks/README.md (~12 min, 1 core)
    python benchmarks/federated.py --datasets bccd       # one set; the other set's rows in the results stay
    python benchmarks/federated.py --quick               # synthetic data, twin backbone: a smoke run
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    RESULTS_DIR,
    SHARED_DATA,
    fmt_table,
    machine_info,
    parse_args,
    parser,
    print_ratio,
    setup_threads,
    write_result,
)
from pretrain_study import pretrained_root

DATASETS = {
    "breastmnist": {"type": "npz", "path": "medmnist/breastmnist.npz"},
    "bccd": {"type": "npz", "path": "bccd/bccd_cell_crops_64.npz", "group_key": "source_image"},
}
NAMES = {"breastmnist": "BreastMNIST", "bccd": "BCCD", "synthetic": "synthetic"}
SETTINGS = (("iid", "fedavg"), ("dirichlet", "fedavg"), ("dirichlet", "fedprox"))


def _data_block(name: str) -> dict[str, Any]:
    block = dict(DATASETS[name])
    block["path"] = str(SHARED_DATA / block["path"])
    return block


def backbone_for(dataset: str, given: dict[str, str]) -> str:
    """The set's own pretrained backbone (built from its train images only), or the one given for it."""
    folder = Path(given[dataset].removeprefix("local-dir:")) if dataset in given else None
    folder = folder or pretrained_root() / f"{dataset}-final"
    if not (folder / "hfm_spec.json").is_file() and not (folder / "config.json").is_file():
        sys.exit(
            f"federated.py: no backbone in {folder}; build it with benchmarks/pretrain_study.py "
            f"or pass --backbone {dataset}=local-dir:PATH"
        )
    return f"local-dir:{folder}"


def recipe_for(args: Any, dataset: str, scheme: str, strategy: str) -> dict[str, Any]:
    federation: dict[str, Any] = {
        "strategy": "fedavg" if strategy == "fedper" else strategy,  # fedper: FedAvg with per-site heads
        "personal_head": strategy == "fedper",
        "rounds": args.rounds,
        "local_steps": args.local_steps,
        "local_epochs": args.local_epochs,
        "lr": args.lr,
    }
    if strategy == "fedprox":
        federation["proximal_mu"] = args.mu
    base: dict[str, Any] = {
        "name": f"{dataset}-{scheme}-{strategy}" + _name(args).removeprefix("federated"),
        "preset": args.preset,
        "training": {"batch_size": 8},
        "split": {"scheme": scheme, "sites": args.sites, "alpha": args.alpha, "seed": 0},
        "shots": args.shots,
        "seeds": list(range(args.seeds)),
        "federation": federation,
        "bootstrap": 0,
        "metrics": ["accuracy", "balanced_accuracy"],
    }
    if args.quick:
        data = {
            "type": "synthetic",
            "n_classes": 3,
            "n_per_class": 24,
            "n_val_per_class": 2,
            "n_test_per_class": 8,
            "size": 32,
        }
        return {**base, "backbone": {"name": "radiology/rad-dino", "twin": True}, "data": data}
    return {**base, "backbone": {"name": backbone_for(dataset, args.backbone)}, "data": _data_block(dataset)}


def curves(runs: list[Path]) -> dict[str, Any]:
    """Per k: pooled test balanced accuracy of the global adapter over rounds and of the local-only / centralised
    adapters (means over seeds), read from the run folders' ``metrics.json``."""
    import numpy as np

    by_k: dict[int, list[dict[str, Any]]] = {}
    for folder in runs:
        record = json.loads((folder / "metrics.json").read_text())
        by_k.setdefault(int(record["k"]), []).append(record)
    out = {}
    for k, records in sorted(by_k.items()):
        accuracy = np.mean([[p["pooled_balanced_accuracy"] for p in r["rounds"]] for r in records], axis=0)
        out[str(k)] = {
            "rounds": [p["round"] for p in records[0]["rounds"]],
            "federated": [round(float(a), 4) for a in accuracy],
            **{
                kind: round(
                    float(np.mean([r["comparison"][kind]["pooled"]["balanced_accuracy"] for r in records])), 4
                )
                for kind in ("local-only", "centralised")
            },
        }
    return out


def plot(results: dict[str, Any], path: Path) -> Path:
    """One panel per set and split: pooled test balanced accuracy over rounds, per strategy and k; local-only dashed,
    centralised dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = sorted({(c["data"], c["sites"]) for c in results["curves"]})
    cols = min(2, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (data, sites) in zip(axes.flat, panels, strict=False):
        colours = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"])
        drawn: set[str] = set()
        for c in (c for c in results["curves"] if (c["data"], c["sites"]) == (data, sites)):
            for k, curve in c["by_k"].items():
                colour = next(colours)
                label = f"{c['strategy']}, k={k}"
                ax.plot(curve["rounds"], curve["federated"], marker="o", ms=2, color=colour, label=label)
                if k not in drawn:  # the baselines do not depend on the strategy: once per k
                    drawn.add(k)
                    ax.axhline(curve["local-only"], ls="--", lw=1, color=colour, label=f"local-only, k={k}")
                    ax.axhline(curve["centralised"], ls=":", lw=1, color=colour, label=f"centralised, k={k}")
        ax.set_title(f"{NAMES.get(data, data)}, {sites} sites", fontsize=9)
        ax.set_xlabel("round")
        ax.set_ylabel("pooled test balanced accuracy")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ci(d: dict[str, Any]) -> str:
    mean, (low, high) = d["mean"], d["ci95"]
    if mean is None:
        return "—"
    text = f"{mean:+.3f}" if low is None or high is None else f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"
    return f"**{text}**" if low is not None and high is not None and (low > 0 or high < 0) else text


def markdown(rows: list[dict[str, Any]], test: str) -> str:
    """Rows of one kind of test set (``pooled`` or per site) as a Markdown table; bold: the interval excludes 0."""
    chosen = [r for r in rows if (r["test"] == "pooled") == (test == "pooled")]
    head = "| data | sites | strategy | k |" + (" test |" if test != "pooled" else "")
    lines = [
        head + " federated | local-only | centralised | fed − local [95% CI] | fed − central [95% CI] |",
        "|" + "---|" * (head.count("|") - 1 + 5),
    ]
    for r in chosen:
        cells = [NAMES.get(r["data"], r["data"]), r["sites"], r["strategy"], str(r["k"])]
        cells += [r["test"]] if test != "pooled" else []
        cells += [
            f"{r[kind]:.3f}" if r[kind] is not None else "—"
            for kind in ("federated", "local-only", "centralised")
        ]
        cells += [_ci(r["federated - local-only"]), _ci(r["federated - centralised"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _label(scheme: str, sites: int) -> str:
    return f"{sites} {'IID' if scheme == 'iid' else 'Dirichlet'}"


def _previous(args: Any, rerun: set[tuple[str, str, str]]) -> dict[str, Any]:
    """The rows and curves not rerun now (by set, split and strategy), from the existing results file (same
    settings only)."""
    path = (args.results_dir or RESULTS_DIR) / f"{_name(args)}.json"
    if args.quick or not path.is_file():
        return {"rows": [], "curves": []}
    old = json.loads(path.read_text())
    if old.get("settings", {}) != _settings(args, old.get("settings", {}).get("datasets")):
        return {"rows": [], "curves": []}
    keep = lambda item: (item["data"], item["sites"], item["strategy"]) not in rerun  # noqa: E731
    return {"rows": [r for r in old["rows"] if keep(r)], "curves": [c for c in old["curves"] if keep(c)]}


def _name(args: Any) -> str:
    """``federated`` for the probe head; ``federated-<preset>`` for another preset (its own results file)."""
    return "federated" if args.preset == "probe/logreg" else "federated-" + args.preset.replace("/", "-")


def _settings(args: Any, datasets: Any = None) -> dict[str, Any]:
    keys = ("preset", "shots", "seeds", "sites", "alpha", "rounds", "local_steps", "local_epochs", "lr", "mu")
    return {**{k: getattr(args, k) for k in keys}, "datasets": datasets}


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--backbone",
        action="append",
        default=[],
        metavar="SET=local-dir:PATH",
        help="a timm folder for one set (default: the set's own pretrained backbone)",
    )
    p.add_argument("--datasets", default="breastmnist,bccd")
    p.add_argument("--shots", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--local-steps", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--mu", type=float, default=0.1)
    p.add_argument("--preset", default="probe/logreg", help="e.g. bitfit/default: trained end to end")
    p.add_argument("--local-epochs", type=int, default=1, help="end-to-end presets: epochs per round")
    p.add_argument(
        "--settings",
        default=",".join(f"{a}:{b}" for a, b in SETTINGS),
        help="SPLIT:STRATEGY pairs, e.g. iid:fedavg,dirichlet:fedprox; fedper = FedAvg with per-site heads",
    )
    args = parse_args(p, argv)
    args.backbone = dict(b.split("=", 1) for b in args.backbone)
    args.shots = args.shots or ([2] if args.quick else [1, 4, 16])
    args.seeds = args.seeds or (1 if args.quick else 10)
    args.rounds = args.rounds or (2 if args.quick else 20)
    threads = setup_threads(args.threads or 1)  # tiny heads: one thread, or threads spin on a busy machine
    from hfm.federated.recipe import parse
    from hfm.federated.study import run

    datasets = ["synthetic"] if args.quick else args.datasets.split(",")
    out_root = Path(str(pretrained_root().parent / "federated" / ("quick" if args.quick else "runs")))
    settings = (
        [("dirichlet", "fedprox")] if args.quick else [tuple(x.split(":")) for x in args.settings.split(",")]
    )
    previous = _previous(args, {(d, _label(a, args.sites), b) for d in datasets for a, b in settings})
    rows, curve_list, start = [], [], time.perf_counter()
    for dataset in datasets:
        for scheme, strategy in settings:
            recipe = parse(recipe_for(args, dataset, scheme, strategy))
            result = run(recipe, out=out_root / recipe.name, progress=False, verbose=False)
            sites = _label(scheme, args.sites)
            for row in result.comparison["rows"]:
                rows.append({"data": dataset, "sites": sites, "strategy": strategy, **row})
            curve_list.append(
                {"data": dataset, "sites": sites, "strategy": strategy, "by_k": curves(result.runs)}
            )
            print(f"{dataset} {scheme} {strategy}: {time.perf_counter() - start:.0f} s", flush=True)
    rows, curve_list = previous["rows"] + rows, previous["curves"] + curve_list
    pooled = [r for r in rows if r["test"] == "pooled"]
    print("pooled test balanced accuracy (mean over seeds); differences paired by seed")
    print(fmt_table([
        {"data": r["data"], "sites": r["sites"], "strategy": r["strategy"], "k": r["k"],
         "federated": r["federated"], "local-only": r["local-only"], "centralised": r["centralised"],
         "fed - local": _ci(r["federated - local-only"]), "fed - central": _ci(r["federated - centralised"])}
        for r in pooled
    ]))  # fmt: skip
    small = [r for r in pooled if r["k"] == min(args.shots)]
    wins = sum(1 for r in small if (r["federated - local-only"]["ci95"][0] or 0) > 0)
    ratio = sum(r["federated"] / r["local-only"] for r in pooled) / len(pooled)
    print_ratio("federated / local-only pooled balanced accuracy (mean over rows)", ratio, "> 1", ratio > 1)
    print(f"rows at the smallest k where federated - local-only excludes 0 (above): {wins} of {len(small)}")
    results = {
        "machine": machine_info(threads),
        "seconds": round(time.perf_counter() - start, 1),
        "settings": _settings(args, sorted({r["data"] for r in rows})),
        "backbones": {d: backbone_for(d, args.backbone) for d in datasets if d in DATASETS},
        "rows": rows,
        "curves": curve_list,
    }
    path = write_result(_name(args), results, args)
    if path is not None:
        plot(results, path.with_suffix(".png"))
        body = "Pooled test (the union of the sites' test splits):\n\n" + markdown(rows, "pooled")
        body += "\nEach site's test split:\n\n" + markdown(rows, "site")
        path.with_suffix(".md").write_text(
            "Test balanced accuracy, mean over seeds; differences paired by seed with 95% t intervals "
            "(bold: the interval excludes 0).\n\n" + body
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
