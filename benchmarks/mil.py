"""Multiple-instance learning on real images: ABMIL and CLAM-SB against mean and max pooling, k bags per class.

Two bag tasks from ``../shared/data``:

* ``bccd-platelets``: each blood-smear image (BCCD's ``source_image``) is a bag of its cell crops; a bag is
  ``platelet`` when it holds at least one platelet crop, ``none`` otherwise (a bag-label table derived from the
  cells, read through :func:`hfm.data.bags.bag_splits`). The official BCCD splits are whole smears.
* ``breastmnist-bags``: MNIST-bags-style bags of 6 BreastMNIST images, ``positive`` when holding one or two
  malignant images, ``negative`` when holding none; bags are built **from each split separately** (train bags
  from train images, test bags from test images), so no image or patient of test is in a training bag.

For every task, k bags per class and seed the bags are drawn by :func:`hfm.data.bags.bag_draw` (exact k, nested,
no val/test group), every aggregator trains on the same draw (:func:`hfm.mil.fit.fit_bags`, early stopping on the
val bags) and is evaluated on every test bag. Reported: test balanced accuracy and AUROC per bag, the paired
difference of each attention aggregator against mean and max pooling over seeds (mean and 95% t-interval), and
how well the instance weights find the instances that make a bag positive (instance-level AUROC of
``weight x bag size`` over the instances of positive test bags).

The backbone (``--backbone``) defaults to the self-supervised ResNet that ``benchmarks/pretrain_study.py`` of the
pretraining work builds from BreastMNIST *train* images only (no BCCD image, no BreastMNIST val/test image).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SHARED_DATA, machine_info, parser, setup_threads, write_result  # noqa: E402

AGGREGATORS = ("abmil", "clam_sb", "mean", "max")
BASELINES = ("mean", "max")
BAG_SIZE = 6
DEFAULT_BACKBONE = Path(os.environ.get("HFM_CACHE", Path.home() / ".cache" / "hfm")) / (
    "benchmarks/pretrained/breastmnist-final"
)
BUILD_HINT = (
    "build it with `python benchmarks/pretrain_study.py` from the pretraining branch (it writes "
    f"{DEFAULT_BACKBONE}), or pass --backbone NAME_OR_local-dir:PATH"
)


def random_resnet(folder: Path) -> Path:
    """A timm ResNet-18 with random weights at 64 px as a local model folder: features no image has shaped.

    The honest fallback when no pretrained backbone is available: nothing of any evaluated image (nor any other)
    went into it, so every aggregator compares on the same untrained features.
    """
    import timm
    import torch
    from timm.models import save_for_hf

    torch.manual_seed(0)
    size = {"input_size": (3, 64, 64)}
    model = timm.create_model("resnet18", pretrained=False, num_classes=0, pretrained_cfg_overlay=size)
    folder.mkdir(parents=True, exist_ok=True)
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def bccd_task(shared: Path, quick: bool, table_dir: Path) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """BCCD smears as bags of cell crops, labelled ``platelet``/``none`` by a table derived from the cells."""
    from hfm.data import load_data
    from hfm.data.bags import bag_splits

    splits = load_data(
        {"type": "npz", "path": str(shared / "bccd" / "bccd_cell_crops_64.npz"), "group_key": "source_image"}
    )
    if quick:  # the first few smears of each split
        for name in ("train", "val", "test"):
            subset = splits.split(name)
            keep = sorted(set(subset.groups or []))[: {"train": 16, "val": 6, "test": 6}[name]]
            setattr(splits, name, subset.take([i for i, g in enumerate(subset.groups or []) if g in keep]))
    table = table_dir / "bccd_platelet_bags.csv"
    table.write_text(bccd_bag_table(splits), encoding="utf-8")
    platelet = splits.classes.index("Platelets")
    truth = {
        name: (splits.split(name).labels == platelet).astype(np.int64) for name in ("train", "val", "test")
    }
    view, bags = bag_splits(splits, table)
    return view, bags, truth


def bccd_bag_table(splits: Any) -> str:
    """The bag-label table of BCCD smears: ``platelet`` when a smear holds a platelet crop, else ``none``."""
    platelet = splits.classes.index("Platelets")
    rows = ["bag_id,label"]
    for name in ("train", "val", "test"):
        subset = splits.split(name)
        groups = np.asarray(subset.groups)
        for bag in sorted(set(groups.tolist())):
            rows.append(f"{bag},{'platelet' if (subset.labels[groups == bag] == platelet).any() else 'none'}")
    return "\n".join(rows) + "\n"


def breastmnist_task(shared: Path, quick: bool, table_dir: Path) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """MNIST-bags-style bags of BreastMNIST images, built from each split separately."""
    from hfm.data import load_data
    from hfm.data.bags import bag_splits
    from hfm.data.splits import Subset

    splits = load_data({"type": "npz", "path": str(shared / "medmnist" / "breastmnist.npz")})
    malignant = 0  # BreastMNIST: 0 malignant, 1 normal+benign
    rows = ["bag_id,label"]
    truth = {}
    for name in ("train", "val", "test"):
        subset = splits.split(name)
        rng = np.random.default_rng(["train", "val", "test"].index(name))
        bad = list(rng.permutation(np.flatnonzero(subset.labels == malignant)))
        good = list(rng.permutation(np.flatnonzero(subset.labels != malignant)))
        groups = [""] * len(subset)
        b = 0
        while len(good) >= BAG_SIZE and (quick is False or b < 12):
            positive = b % 2 == 1
            n_bad = int(rng.integers(1, 3)) if positive else 0
            if positive and len(bad) < n_bad:
                break
            members = [bad.pop() for _ in range(n_bad)] + [good.pop() for _ in range(BAG_SIZE - n_bad)]
            for i in members:
                groups[i] = f"{name}-bag{b:03d}"
            rows.append(f"{name}-bag{b:03d},{'positive' if positive else 'negative'}")
            b += 1
        used = [i for i, g in enumerate(groups) if g]
        part = subset.take(used)
        setattr(splits, name, Subset(ids=part.ids, labels=part.labels, reader=part.reader,
                                     groups=[groups[i] for i in used]))  # fmt: skip
        truth[name] = (part.labels == malignant).astype(np.int64)
    table = table_dir / "breastmnist_bags.csv"
    table.write_text("\n".join(rows) + "\n", encoding="utf-8")
    view, bags = bag_splits(splits, table)
    return view, bags, truth


TASKS = {"bccd-platelets": bccd_task, "breastmnist-bags": breastmnist_task}


def t_interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval of paired differences."""
    from scipy import stats

    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def instance_auroc(bags: Any, positive: int, weights: list[np.ndarray], truth: np.ndarray) -> float:
    """AUROC of ``weight x bag size`` against the instance labels, over the instances of positive test bags."""
    from sklearn.metrics import roc_auc_score

    scores, labels = [], []
    for b, members in enumerate(bags.members):
        if int(bags.labels[b]) == positive:
            scores.extend((weights[b] * len(members)).tolist())
            labels.extend(truth[members].tolist())
    return float(roc_auc_score(labels, scores)) if 0 < sum(labels) < len(labels) else math.nan


def run_task(name: str, args: Any, backbone: Any, table_dir: Path) -> list[dict[str, Any]]:
    """Every (k, seed, aggregator) of one task; one record per fit."""
    import torch
    from sklearn.metrics import roc_auc_score

    from hfm.data.bags import bag_draw
    from hfm.embeddings import extract
    from hfm.metrics import score
    from hfm.mil.fit import BagTraining, fit_bags, predict_bags
    from hfm.tuners.mil import MilModel

    view, bags, truth = TASKS[name](args.shared, args.quick, table_dir)
    positive = view.classes.index("platelet" if name.startswith("bccd") else "positive")
    emb = {
        split: extract(backbone, view.split(split), batch_size=128, split=split, progress=not args.quick)
        for split in ("train", "val", "test")
    }
    val = [emb["val"][torch.as_tensor(m)] for m in bags.val.members]
    test = [emb["test"][torch.as_tensor(m)] for m in bags.test.members]
    training = BagTraining(epochs=5 if args.quick else 100, patience=10, bag_instances=64)
    print(f"{name}: bags {bags.describe()}, classes {view.classes}")
    records = []
    for k in args.shots:
        for seed in args.seeds:
            drawn = bag_draw(view, bags, k, seed)
            train = [emb["train"][torch.as_tensor(m)] for m in drawn.members()]
            for aggregator in args.aggregators:
                torch.manual_seed(seed)
                model = MilModel(backbone, view.num_classes, aggregator=aggregator)
                info = fit_bags(model, train, drawn.episode.labels, val, bags.val.labels, training, seed=seed)
                pred = predict_bags(model, test, seed=seed)
                y = bags.test.labels
                records.append({
                    "task": name, "k": k, "seed": seed, "aggregator": aggregator,
                    "balanced_accuracy": score(pred.proba.argmax(1), y, "balanced_accuracy", view.num_classes),
                    "auroc": float(roc_auc_score(y, pred.proba[:, positive])) if len(set(y.tolist())) > 1 else math.nan,
                    "instance_auroc": instance_auroc(bags.test, positive, pred.weights, truth["test"]),
                    "best_epoch": info["best_epoch"],
                })  # fmt: skip
            print(f"  k={k} seed={seed}: " + ", ".join(
                f"{r['aggregator']} {r['balanced_accuracy']:.3f}" for r in records[-len(args.aggregators):]
            ), flush=True)  # fmt: skip
    return records


def summarise(records: list[dict[str, Any]], aggregators: list[str]) -> dict[str, Any]:
    """Mean per (task, k, aggregator) and paired differences of each attention aggregator vs each baseline."""
    tasks = sorted({r["task"] for r in records})
    shots = sorted({r["k"] for r in records})
    table: dict[str, Any] = {}
    diffs: dict[str, Any] = {}
    for task in tasks:
        for k in [*shots, "all"]:
            rows = [r for r in records if r["task"] == task and (k == "all" or r["k"] == k)]
            for agg in aggregators:
                mine = [r for r in rows if r["aggregator"] == agg]
                table[f"{task}|{k}|{agg}"] = {
                    m: statistics.fmean(r[m] for r in mine if not math.isnan(r[m]))
                    if any(not math.isnan(r[m]) for r in mine) else math.nan
                    for m in ("balanced_accuracy", "auroc", "instance_auroc")
                }  # fmt: skip
            for agg in [a for a in aggregators if a not in BASELINES]:
                for base in [b for b in BASELINES if b in aggregators]:
                    by = {
                        (r["k"], r["seed"]): r["balanced_accuracy"] for r in rows if r["aggregator"] == base
                    }
                    # pooled over k: one paired difference per seed (mean over k), so seeds stay independent
                    per_seed: dict[int, list[float]] = {}
                    for r in rows:
                        if r["aggregator"] == agg:
                            per_seed.setdefault(r["seed"], []).append(
                                r["balanced_accuracy"] - by[(r["k"], r["seed"])]
                            )
                    d = [statistics.fmean(v) for v in per_seed.values()]
                    diffs[f"{task}|{k}|{agg}-{base}"] = dict(
                        zip(("mean", "low", "high"), t_interval(d), strict=True)
                    )
    return {"table": table, "diffs": diffs, "tasks": tasks, "shots": shots}


def markdown(summary: dict[str, Any], aggregators: list[str]) -> str:
    """The result tables as Markdown."""
    lines = []
    for task in summary["tasks"]:
        lines += [f"### {task}", "", "| k (bags/class) | " + " | ".join(
            f"{a} bal. acc / AUROC / inst. AUROC" for a in aggregators) + " |",
            "|---|" + "---|" * len(aggregators)]  # fmt: skip
        for k in [*summary["shots"], "all"]:
            cells = []
            for a in aggregators:
                t = summary["table"][f"{task}|{k}|{a}"]
                cells.append(f"{t['balanced_accuracy']:.3f} / {t['auroc']:.3f} / {t['instance_auroc']:.3f}")
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
        lines += ["", "| k | difference in balanced accuracy | mean [95% CI] |", "|---|---|---|"]
        for key, d in summary["diffs"].items():
            t, k, pair = key.split("|")
            if t == task:
                lines.append(f"| {k} | {pair} | {d['mean']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}] |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict[str, Any], aggregators: list[str], path: Path) -> None:
    """Balanced accuracy against k bags per class, one panel per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = summary["tasks"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for a in aggregators:
            ys = [summary["table"][f"{task}|{k}|{a}"]["balanced_accuracy"] for k in summary["shots"]]
            ax.plot(summary["shots"], ys, marker="o", label=a)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training bags per class (k)")
        ax.set_ylabel("test balanced accuracy (bags)")
        ax.set_title(task)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--backbone",
        default=None,
        help=f"backbone name, local-dir:PATH, or 'random' (ResNet-18, random weights); default {DEFAULT_BACKBONE}",
    )
    p.add_argument(
        "--tasks", default=None, help="comma-separated: " + ", ".join(TASKS) + " (quick: the first)"
    )
    p.add_argument("--shots", default=None, help="bags per class (default 2,4,8,16; quick 1,2)")
    p.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; quick 2)")
    p.add_argument("--aggregators", default=",".join(AGGREGATORS))
    p.add_argument("--shared", type=Path, default=SHARED_DATA, help="the shared real data folder")
    p.add_argument(
        "--write-bccd-table", type=Path, default=None, help="write BCCD's bag-label table there and stop"
    )
    args = p.parse_args(argv)
    if args.write_bccd_table is not None:
        from hfm.data import load_data

        data = {
            "type": "npz",
            "path": str(args.shared / "bccd" / "bccd_cell_crops_64.npz"),
            "group_key": "source_image",
        }
        args.write_bccd_table.write_text(bccd_bag_table(load_data(data)), encoding="utf-8")
        print(f"wrote {args.write_bccd_table}")
        return 0
    setup_threads(args.threads)
    args.shots = [int(s) for s in (args.shots or ("1,2" if args.quick else "2,4,8,16")).split(",")]
    args.seeds = list(range(args.seeds or (2 if args.quick else 5)))
    args.aggregators = args.aggregators.split(",")
    tasks = (args.tasks or (next(iter(TASKS)) if args.quick else ",".join(TASKS))).split(",")
    if not args.shared.is_dir():
        print(f"error: the shared real data folder {args.shared} is absent (set HFM_SHARED_DATA)")
        return 2
    import hfm

    if args.quick and args.backbone is None:
        backbone = hfm.load_backbone("pathology/uni", twin=True)
        name = "pathology/uni (twin)"
    elif args.backbone == "random":
        folder = (
            Path(os.environ.get("HFM_CACHE", Path.home() / ".cache" / "hfm"))
            / "benchmarks/mil-random-resnet18"
        )
        backbone = hfm.load_backbone(f"local-dir:{random_resnet(folder)}")
        name = "resnet18, random weights (64 px)"
    else:
        name = args.backbone or f"local-dir:{DEFAULT_BACKBONE}"
        if args.backbone is None and not (DEFAULT_BACKBONE / "hfm_spec.json").is_file():
            print(f"error: no backbone at {DEFAULT_BACKBONE}: {BUILD_HINT}")
            return 2
        backbone = hfm.load_backbone(name)
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tables:
        for task in tasks:
            records += run_task(task, args, backbone, Path(tables))
    summary = summarise(records, args.aggregators)
    text = markdown(summary, args.aggregators)
    print(text)
    payload = {
        "backbone": name, "shots": args.shots, "seeds": args.seeds,
        "aggregators": args.aggregators, "records": records, "summary": summary, "seconds": time.perf_counter() - start,
        "machine": machine_info(args.threads),
    }  # fmt: skip
    result = "mil" if set(tasks) == set(TASKS) or args.quick else "mil-" + "-".join(tasks)
    path = write_result(result, payload, args)
    if path is not None:
        (path.parent / f"{result}.md").write_text(text + "\n", encoding="utf-8")
        plot(summary, args.aggregators, path.parent / f"{result}.png")
        print(f"results in {path.parent}/{result}.json|md|png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
