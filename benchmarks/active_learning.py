"""Which images to label first: cold-start active learning against random picks, on real images.

For each real set, one hfm sweep with a ``samplers:`` axis: a linear probe (``probe/logreg``) on a frozen backbone,
budgets of 1, 2 and 4 labels per class (in total 1-4 x classes labels), 10 seeds, and the strategies

* ``random``: uniformly random images (what a person without hfm does) — the baseline;
* ``class-balanced``: random, class by class — it reads the labels, so no real strategy can do it; the optimistic
  reference (and hfm's default draw);
* ``typiclust``, ``probcover``, ``kcenter`` (CoreSet greedy): cold-start strategies on the backbone's embeddings,
  through scikit-activeml.

Each strategy is compared with ``random`` and with ``class-balanced`` as the paired difference of the test balanced
accuracy over seeds (same seed: same test split and training seed; only the labelled images differ), with the 95%
t-interval of the per-seed differences (:mod:`hfm.sampler_report`).

Backbones: no downloaded weights are available offline, so the script trains its own small backbone for each set
**on a different real set** (never on the evaluated images): a timm ResNet-18 with narrow channels, trained
supervised on BreastMNIST (breast ultrasound) for the BCCD blood-cell set, and on BCCD for BUSI (BreastMNIST and
BUSI hold the same patients, so neither is ever used for the other). Pass ``--backbone SET=NAME`` for any other
(for example ``--backbone busi=local-dir:PATH`` with an ``hfm pretrain`` output).

    python benchmarks/active_learning.py            # the full study (~15 min on 2 cores)
    python benchmarks/active_learning.py --quick    # a smoke run on synthetic images and a twin, in seconds
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import _common as common
import numpy as np

STRATEGIES = ["random", "class-balanced", "typiclust", "probcover", "kcenter"]
SETS: dict[str, dict[str, Any]] = {
    "bccd": {
        "data": {"type": "npz", "path": "bccd/bccd_cell_crops_64.npz", "group_key": "source_image"},
        "backbone_from": "breastmnist",
    },
    "busi": {
        "data": {"type": "folder", "root": "busi", "split": {"seed": 0, "val": 0.15, "test": 0.2}},
        "backbone_from": "bccd",
    },
}
TRAIN_SOURCES = {
    "breastmnist": {"type": "npz", "path": "medmnist/breastmnist.npz"},
    "bccd": {"type": "npz", "path": "bccd/bccd_cell_crops_64.npz", "group_key": "source_image"},
}
CHANNELS = [16, 32, 64, 128]
SIZE = 32


def _with_shared(block: dict[str, Any]) -> dict[str, Any]:
    """A data block with its ``path``/``root`` made absolute under the shared data folder."""
    out = dict(block)
    for key in ("path", "root"):
        if key in out:
            out[key] = str(common.SHARED_DATA / out[key])
    return out


def backbone_folder(trained_on: str) -> Path:
    """Where the backbone trained on ``trained_on`` is kept (``$HFM_CACHE/benchmarks/active-learning``)."""
    from hfm.env import hfm_cache_dir

    return hfm_cache_dir("benchmarks") / "active-learning" / f"resnet18-narrow-{trained_on}"


def build_backbone(
    trained_on: str, folder: Path, *, epochs: int = 10, seed: int = 0, max_images: int = 600
) -> Path:
    """Train a narrow ResNet-18 supervised on the train split of ``trained_on`` and save it as a timm folder.

    At most ``max_images`` train images are used (up to a third per class, seeded).
    Only the train split is read; the evaluated sets never enter. Saved without its classifier, so hfm loads it
    as ``local-dir:<folder>`` like any timm backbone.
    """
    import timm
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from hfm.backbones.transforms import to_uint8_rgb
    from hfm.data import load_data

    train = load_data(_with_shared(TRAIN_SOURCES[trained_on])).train
    if len(train) > max_images:  # a seeded, class-stratified subset keeps the build to minutes on 2 cores
        rng = np.random.default_rng(seed)
        keep = np.concatenate(
            [
                rng.permutation(np.flatnonzero(train.labels == c))[: max_images // 3]
                for c in np.unique(train.labels)
            ]
        )
        train = train.take(sorted(keep.tolist()))
    torch.manual_seed(seed)
    images = torch.stack(
        [torch.from_numpy(to_uint8_rgb(train.image(i))).permute(2, 0, 1) for i in range(len(train))]
    ).float()
    images = F.interpolate(images / 255.0, size=(SIZE, SIZE), mode="bilinear", antialias=True)
    images = (images - 0.5) / 0.5
    labels = torch.as_tensor(train.labels)
    n_classes = int(labels.max()) + 1
    model = timm.create_model("resnet18", num_classes=n_classes, channels=CHANNELS)
    weights = torch.bincount(labels, minlength=n_classes).float()
    weights = weights.sum() / (n_classes * weights)  # balanced loss: the minority classes count as much
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    for _ in tqdm(range(epochs), desc=f"backbone on {trained_on}", unit="epoch"):
        model.train()
        order = torch.randperm(len(images))
        for start in range(0, len(order), 64):
            batch = order[start : start + 64]
            x = images[batch]
            flip = torch.rand(len(x)) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x), labels[batch], weight=weights)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.reset_classifier(0)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architecture": "resnet18",
        "num_classes": 0,
        "num_features": CHANNELS[-1],
        "global_pool": "avg",
        "model_args": {"channels": CHANNELS},
        "pretrained_cfg": {
            "input_size": [3, SIZE, SIZE],
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "num_classes": 0,
            "classifier": "fc",
        },
        "trained_on": f"{trained_on} train split ({len(train)} images), supervised, {epochs} epochs, seed {seed}",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    return folder


def study(
    name: str,
    data: dict[str, Any],
    backbone: dict[str, Any],
    out: Path,
    *,
    shots: list[int],
    seeds: list[int],
) -> dict[str, Any]:
    """One sweep with the sampler axis; returns the summary rows and the paired comparisons."""
    from hfm import sampler_report
    from hfm.runner import run

    recipe = {
        "name": f"active-learning-{name}",
        "backbone": backbone,
        "data": data,
        "presets": ["probe/logreg"],
        "shots": shots,
        "seeds": seeds,
        "samplers": STRATEGIES,
        "bootstrap": 0,
        "metrics": ["balanced_accuracy"],
        "primary_metric": "balanced_accuracy",
    }
    result = run(recipe, out=out / name, progress=False, verbose=False, resume=True)
    if not result.ok:
        raise SystemExit(f"{name}: {len(result.failed)} run(s) failed: {result.failed[0][1]}")
    runs = [json.loads(p.read_text()) for p in (out / name).rglob("metrics.json")]
    return {
        "summary": result.summary["rows"],
        "vs_random": sampler_report.compare(runs, "balanced_accuracy", "random"),
        "vs_class_balanced": sampler_report.compare(runs, "balanced_accuracy", "class-balanced"),
    }


def table(results: dict[str, Any]) -> str:
    """Markdown: per set and budget, each strategy's mean and its paired difference to random (95% CI)."""
    lines = [
        "| set | labels per class | strategy | balanced accuracy | vs random (95% CI) | vs class-balanced (95% CI) |",
        "|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        for_random = {(r["k"], r["sampler"]): r for r in res["vs_random"]}
        for_balanced = {(r["k"], r["sampler"]): r for r in res["vs_class_balanced"]}
        for row in res["summary"]:
            sampler = row["preset"].split("[")[-1].rstrip("]") if "[" in row["preset"] else "class-balanced"
            key = (row["k"], sampler)
            cells = []
            for found in (for_random.get(key), for_balanced.get(key)):
                if found is None:
                    cells.append("—")
                    continue
                d = found["difference"]
                cells.append(f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]")
            stats = row["balanced_accuracy"]
            lines.append(
                f"| {name} | {row['k']} | {sampler} | {stats['mean']:.3f} ± {stats['std']:.3f} | "
                f"{cells[0]} | {cells[1]} |"
            )
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> Path:
    """Balanced accuracy against labels per class, one panel per set, one line per strategy (mean ± std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.8), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        series: dict[str, list[tuple[float, float, float]]] = {}
        for row in res["summary"]:
            sampler = row["preset"].split("[")[-1].rstrip("]") if "[" in row["preset"] else "class-balanced"
            stats = row["balanced_accuracy"]
            series.setdefault(sampler, []).append((float(row["k"]), stats["mean"], stats["std"] or 0.0))
        for sampler, points in series.items():
            x, m, s = (np.array(v) for v in zip(*sorted(points), strict=True))
            style = "--" if sampler in ("random", "class-balanced") else "-"
            ax.errorbar(x, m, yerr=s, label=sampler, linestyle=style, marker="o", capsize=3)
        ax.set_title(name)
        ax.set_xlabel("labels per class (budget / classes)")
        ax.set_ylabel("test balanced accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10, help="seeds per cell (10)")
    p.add_argument("--backbone", action="append", default=[], help="SET=NAME: use this backbone for SET")
    p.add_argument("--out", type=Path, default=None, help="sweep folders (default: a temporary folder)")
    args = common.parse_args(p, argv)
    common.setup_threads(args.threads)
    import tempfile

    out = args.out or Path(tempfile.mkdtemp(prefix="hfm-active-learning-"))
    chosen = dict(item.split("=", 1) for item in args.backbone)
    results: dict[str, Any] = {}
    if args.quick:
        data = {
            "type": "synthetic",
            "n_classes": 3,
            "n_per_class": 12,
            "n_val_per_class": 3,
            "n_test_per_class": 4,
        }
        backbone = {"name": "pathology/uni", "twin": True}
        results["synthetic"] = study("synthetic", data, backbone, out, shots=[1, 2], seeds=[0, 1])
    else:
        if not common.SHARED_DATA.is_dir():
            print(f"real data not found at {common.SHARED_DATA}; set HFM_SHARED_DATA", file=sys.stderr)
            return 2
        for name, spec in SETS.items():
            if name in chosen:
                backbone = {"name": chosen[name]}
            else:
                folder = backbone_folder(spec["backbone_from"])
                if not (folder / "model.safetensors").exists():
                    build_backbone(spec["backbone_from"], folder)
                backbone = {"name": f"local-dir:{folder}"}
            results[name] = study(
                name,
                _with_shared(spec["data"]),
                backbone,
                out,
                shots=[1, 2, 4],
                seeds=list(range(args.seeds)),
            )
            print(f"{name} done", flush=True)
    text = table(results)
    print(text, end="")
    smallest = {
        name: {
            r["sampler"]: r["difference"]["mean"]
            for r in res["vs_random"]
            if r["k"] == min(x["k"] for x in res["vs_random"])
        }
        for name, res in results.items()
    }
    best = max(
        (np.mean([smallest[n].get(s, np.nan) for n in smallest]), s)
        for s in ("typiclust", "probcover", "kcenter")
    )
    common.print_ratio(
        f"best cold-start strategy ({best[1]}) minus random, smallest budget, mean over sets",
        float(best[0]),
        "> 0",
        bool(best[0] > 0),
    )
    figure = None
    if not args.quick or args.results_dir is not None:
        folder = args.results_dir or common.RESULTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        figure = plot(results, folder / "active_learning.png")
        (folder / "active_learning.md").write_text(text, encoding="utf-8")
    common.write_result(
        "active_learning",
        {
            "machine": common.machine_info(args.threads),
            "strategies": STRATEGIES,
            "seeds": args.seeds if not args.quick else 2,
            "backbones": {
                n: chosen.get(n, f"resnet18-narrow trained on {SETS[n]['backbone_from']}") for n in SETS
            },
            "results": results,
            "plot": str(figure) if figure else None,
        },
        args,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
