"""Semi-supervised presets against their labelled-only twins on real images: paired differences over seeds.

Two real sets from ``../shared/data``, each read through hfm's own sweep (same draws for every preset):

* ``breastmnist`` (breast ultrasound, 2 classes, 546 train images: the pool is train minus the labelled ones);
* ``bccd`` (blood-cell crops, 3 classes, grouped by slide: the pool excludes crops of val/test slides).

The backbone must carry signal, and no pretrained weights can be downloaded here. Each set gets a small timm CNN
(``resnet10t`` at 32 px, 2 epochs on 512 images: what 2 saturated CPU cores allowed) trained *supervised on a
different real set*: BCCD train crops for BreastMNIST, BUSI for
BCCD (BUSI and BreastMNIST are the same patients, so BUSI never serves BreastMNIST). No image of the evaluated
set, labelled or not, reaches its backbone. ``--backbone`` replaces both with one ``local-dir:`` (or catalog)
backbone of your own.

Two parts:

* **embeddings** (full size): ``probe/logreg`` against ``label-spreading/knn``, ``label-propagation/knn`` and
  ``self-training/logreg`` at k in {1, 4, 16}, seeds 0..4.
* **end to end** (small, for 2 shared CPU cores): the ``full`` tuner, supervised against FixMatch, FreeMatch and
  pseudo-labelling (mu 2), at k = 4, 3 seeds, 40 steps, on the 32 px CNN. It shows the methods run and what
  they do at this budget, not what they do at a GPU budget.

Every row is the paired difference of test balanced accuracy (semi-supervised minus labelled-only) over seeds,
with its 95% t-interval (:mod:`hfm.paired`). ``--quick`` runs a few steps on synthetic images and a twin.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common
import numpy as np

EMBEDDING_PRESETS = ["probe/logreg", "label-spreading/knn", "label-propagation/knn", "self-training/logreg"]
#: End-to-end presets on the full tuner: the labelled-only twin and three semi-supervised methods.
E2E_TRAINING = {"lr": 1.0e-3, "batch_size": 8}


def e2e_presets(mu: int) -> list[dict[str, Any]]:
    """The end-to-end presets: ``full`` supervised, and the same tuner with each semi-supervised method."""
    strong = {"policy": "randaugment", "num_ops": 2, "magnitude": 9}
    out: list[dict[str, Any]] = [{"name": "full/sup", "tuner": "full", "training": E2E_TRAINING}]
    for method, params in (
        ("pseudo-label", {"threshold": 0.95, "mu": mu}),
        ("fixmatch", {"threshold": 0.95, "mu": mu, "strong_augment": strong}),
        ("freematch", {"mu": mu, "strong_augment": strong}),
    ):
        out.append({"name": f"{method}/full", "tuner": "full", "training": E2E_TRAINING,
                    "method": {"name": method, "params": params}})  # fmt: skip
    return out


SETS: dict[str, dict[str, Any]] = {
    "breastmnist": {
        "data": {"type": "npz", "path": "medmnist/breastmnist.npz"},
        "backbone_from": "bccd",
    },
    "bccd": {
        "data": {"type": "npz", "path": "bccd/bccd_cell_crops_64.npz", "group_key": "source_image"},
        "backbone_from": "busi",
    },
}


def source_images(name: str, shared: Path, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled training images ``[N, size, size, 3]`` uint8 of a backbone's source set."""
    from PIL import Image

    if name == "bccd":
        data = np.load(shared / "bccd" / "bccd_cell_crops_64.npz")
        images, labels = data["train_images"], data["train_labels"].astype(np.int64)
    elif name == "busi":
        classes = ["normal", "benign", "malignant"]
        files = [(p, c) for c, cls in enumerate(classes) for p in sorted((shared / "busi" / cls).glob("*.png"))
                 if "_mask" not in p.name]  # fmt: skip
        images = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size))) for p, _ in files])
        labels = np.array([c for _, c in files], dtype=np.int64)
    else:
        raise ValueError(name)
    if images.shape[1] != size:
        images = np.stack(
            [np.asarray(Image.fromarray(x).convert("RGB").resize((size, size))) for x in images]
        )
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    return images, labels


def build_backbone(
    source: str, folder: Path, shared: Path, *, size: int = 32, epochs: int = 2, limit: int = 512
) -> Path:
    """Train ``resnet10t`` supervised on (at most ``limit`` of) ``source``'s images; save a timm ``local-dir:``."""
    import timm
    import torch
    import torch.nn.functional as F
    from timm.models._hub import save_for_hf
    from tqdm.auto import tqdm

    images, labels = source_images(source, shared, size)
    keep = np.random.default_rng(0).permutation(len(labels))[:limit]
    images, labels = images[keep], labels[keep]
    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=int(labels.max()) + 1)
    x = (torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    y = torch.as_tensor(labels)
    weight = len(y) / (len(torch.unique(y)) * torch.bincount(y).float())  # balanced: rare classes matter too
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    steps = epochs * ((len(y) + 63) // 64)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    model.train()
    with tqdm(total=steps, desc=f"backbone from {source}") as bar:
        for _ in range(epochs):
            for idx in torch.randperm(len(y)).split(64):
                batch = x[idx]
                batch = torch.where(torch.rand(len(idx), 1, 1, 1) < 0.5, batch.flip(-1), batch)
                loss = F.cross_entropy(model(batch), y[idx], weight=weight)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                scheduler.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    model.pretrained_cfg.update(input_size=(3, size, size), mean=(0.5,) * 3, std=(0.25,) * 3, crop_pct=1.0)
    folder.mkdir(parents=True, exist_ok=True)
    save_for_hf(model, str(folder), safe_serialization=True)
    return folder


def backbone_for(name: str, args: Any, shared: Path) -> dict[str, Any]:
    """The backbone block for one evaluated set (built once and cached)."""
    if args.quick:
        return {"name": "pathology/uni", "twin": True}
    if args.backbone:
        return {"name": args.backbone}
    import os

    source = SETS[name]["backbone_from"]
    cache = Path(os.environ.get("HFM_CACHE") or Path.home() / ".cache" / "hfm")
    folder = cache / "benchmarks" / "semi_supervised" / f"resnet10t-32px-from-{source}"
    if not (folder / "config.json").is_file():
        build_backbone(source, folder, shared)
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
        "backbone": backbone_for(name, args, shared),
        "data": data,
        "presets": e2e_presets(args.mu) if e2e else EMBEDDING_PRESETS,
        "shots": args.e2e_shots if e2e else args.shots,
        "seeds": list(range(args.e2e_seeds if e2e else args.seeds)),
        "training": {"max_steps": args.e2e_steps, "patience": None, "warmup_ratio": 0.1} if e2e else {},
        "metrics": ["balanced_accuracy", "accuracy"],
        "bootstrap": 0,
        "output": str(out / name / part),
    }


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    p.add_argument("--shots", nargs="+", type=int, default=None, help="embedding part (default 1 4 16)")
    p.add_argument("--seeds", type=int, default=None, help="embedding part (default 5)")
    p.add_argument("--e2e-shots", nargs="+", type=int, default=None, help="end-to-end part (default 4)")
    p.add_argument("--e2e-seeds", type=int, default=None, help="end-to-end part (default 3)")
    p.add_argument("--e2e-steps", type=int, default=None, help="end-to-end optimizer steps (default 40)")
    p.add_argument("--mu", type=int, default=2, help="unlabelled images per labelled image (end to end)")
    p.add_argument("--skip-e2e", action="store_true", help="only the embedding part")
    p.add_argument("--skip-embeddings", action="store_true", help="only the end-to-end part")
    p.add_argument("--backbone", default=None, help="one backbone for every set instead of the built CNNs")
    p.add_argument("--out", type=Path, default=None, help="sweep folders (default: a temporary folder)")
    args = _common.parse_args(p, argv)
    args.shots = args.shots or ([1, 4] if args.quick else [1, 4, 16])
    args.seeds = args.seeds or (2 if args.quick else 5)
    args.e2e_shots = args.e2e_shots or [4]
    args.e2e_seeds = args.e2e_seeds or (2 if args.quick else 3)
    args.e2e_steps = args.e2e_steps or (2 if args.quick else 40)
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
    _common.write_result(
        "semi_supervised",
        {"machine": _common.machine_info(threads), "seconds": round(seconds, 1), "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "results": results},
        args,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
