"""Federated few-shot adaptation on real images: the federated adapter against each site alone and against
pooling every site's labels.

Two real sets under ``../shared/data`` (BreastMNIST; BCCD blood-cell crops, grouped by slide) are split into
4 simulated sites, IID and label-skewed (Dirichlet, alpha 0.5). Every site draws its own k labels per class; a
probe head on frozen embeddings is trained federated (FedAvg, FedProx), local-only (each site alone, the same
number of local steps) and centralised (the union of the sites' draws: the upper bound). The table reports the
pooled test balanced accuracy (mean over seeds) and the paired differences federated - local-only (mean over
the sites' local adapters) and federated - centralised, with 95% t intervals over seeds.

Backbone: ``--backbone local-dir:PATH``; by default a small supervised CNN (timm resnet18, channels
16-32-64-128, 32 px) trained here on the *other* real set's train split (BCCD for BreastMNIST and the reverse),
so no image of the evaluated set, let alone its val/test split, shaped the features. It is built once into
``$HFM_CACHE/benchmarks/federated/`` (a minute or two on 2 cores).

    python benchmarks/federated.py            # the table in benchmarks/README.md
    python benchmarks/federated.py --quick    # synthetic data, twin backbone: a smoke run
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from _common import (
    SHARED_DATA,
    fmt_table,
    machine_info,
    parse_args,
    parser,
    print_ratio,
    setup_threads,
    write_result,
)

DATASETS = {
    "breastmnist": {"type": "npz", "path": "medmnist/breastmnist.npz"},
    "bccd": {"type": "npz", "path": "bccd/bccd_cell_crops_64.npz", "group_key": "source_image"},
}
OTHER = {"breastmnist": "bccd", "bccd": "breastmnist"}  # the set each evaluated set's backbone is trained on


def cache_root() -> Path:
    return Path(os.environ.get("HFM_CACHE") or Path.home() / ".cache" / "hfm") / "benchmarks" / "federated"


def _data_block(name: str) -> dict[str, Any]:
    block = dict(DATASETS[name])
    block["path"] = str(SHARED_DATA / block["path"])
    return block


def build_cnn(train_on: str, folder: Path, epochs: int = 8, seed: int = 0) -> Path:
    """A small supervised CNN trained on ``train_on``'s train split only, saved as a timm local folder."""
    import numpy as np
    import timm
    import torch
    import torch.nn.functional as F
    from timm.models import save_for_hf
    from tqdm.auto import tqdm

    from hfm.data.load import load_data

    splits = load_data(_data_block(train_on))
    train = splits.train
    images = np.stack([np.asarray(train.image(i)) for i in range(len(train))])
    if images.ndim == 3:
        images = np.repeat(images[..., None], 3, axis=-1)
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div(255)
    x = F.interpolate(x, size=32, mode="bilinear", antialias=True, align_corners=False)
    x = (x - 0.5) / 0.5
    y = torch.as_tensor(train.labels)
    torch.manual_seed(seed)
    args = {"channels": (16, 32, 64, 128)}
    model = timm.create_model("resnet18", pretrained=False, num_classes=splits.num_classes, **args)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    weight = len(y) / (splits.num_classes * torch.bincount(y).float())
    for _ in tqdm(range(epochs), desc=f"supervised CNN on {train_on} train", disable=epochs == 0):
        model.train()
        for idx in torch.randperm(len(y)).split(64):
            flip = x[idx].flip(-1) if torch.rand(()) < 0.5 else x[idx]
            loss = F.cross_entropy(model(flip), y[idx], weight=weight)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.reset_classifier(0)
    model.pretrained_cfg = {
        **model.pretrained_cfg,
        "input_size": (3, 32, 32),
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    }
    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_for_hf(model, str(tmp), model_args={"channels": list(args["channels"])}, safe_serialization=True)
    (tmp / "trained_on.json").write_text(
        json.dumps({"set": train_on, "split": "train", "epochs": epochs}) + "\n"
    )
    tmp.replace(folder)
    return folder


def backbone_for(dataset: str, given: str | None, epochs: int) -> str:
    if given:
        folder = Path(given.removeprefix("local-dir:"))
        if not folder.is_dir():
            sys.exit(
                f"federated.py: backbone folder {folder} does not exist; omit --backbone to build the default one"
            )
        return f"local-dir:{folder}"
    folder = cache_root() / f"cnn-{OTHER[dataset]}-e{epochs}"
    if not (folder / "config.json").is_file():
        build_cnn(OTHER[dataset], folder, epochs=epochs)
    return f"local-dir:{folder}"


def recipe_for(args: Any, dataset: str, scheme: str, strategy: str) -> dict[str, Any]:
    federation: dict[str, Any] = {
        "strategy": strategy,
        "rounds": args.rounds,
        "local_steps": args.local_steps,
        "lr": 0.05,
    }
    if strategy == "fedprox":
        federation["proximal_mu"] = args.mu
    base: dict[str, Any] = {
        "name": f"{dataset}-{scheme}-{strategy}",
        "preset": "probe/logreg",
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
    return {
        **base,
        "backbone": {"name": backbone_for(dataset, args.backbone, args.cnn_epochs)},
        "data": _data_block(dataset),
    }


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument(
        "--backbone", help="local-dir:PATH of a timm backbone (default: a CNN trained on the other set)"
    )
    p.add_argument("--datasets", default="breastmnist,bccd")
    p.add_argument(
        "--cnn-epochs",
        type=int,
        default=8,
        help="epochs of the default CNN on the other set (0: random init)",
    )
    p.add_argument("--shots", type=lambda s: [int(x) for x in s.split(",")], default=None)
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--sites", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--local-steps", type=int, default=20)
    p.add_argument("--mu", type=float, default=0.1)
    args = parse_args(p, argv)
    args.shots = args.shots or ([2] if args.quick else [1, 4])
    args.seeds = args.seeds or (1 if args.quick else 5)
    args.rounds = args.rounds or (2 if args.quick else 20)
    threads = setup_threads(args.threads or 1)  # tiny heads: one thread, or threads spin on a busy machine
    from hfm.federated.recipe import parse
    from hfm.federated.study import run

    datasets = ["synthetic"] if args.quick else args.datasets.split(",")
    out_root = cache_root() / ("quick" if args.quick else "runs")
    rows, start = [], time.perf_counter()
    settings = (
        [("dirichlet", "fedprox")]
        if args.quick
        else [(scheme, strategy) for scheme in ("iid", "dirichlet") for strategy in ("fedavg", "fedprox")]
    )
    for dataset in datasets:
        for scheme, strategy in settings:
            recipe = parse(recipe_for(args, dataset, scheme, strategy))
            result = run(recipe, out=out_root / recipe.name, progress=not args.quick, verbose=False)
            for row in result.comparison["rows"]:
                if row["test"] != "pooled":
                    continue
                local, central = row["federated - local-only"], row["federated - centralised"]
                rows.append({
                    "data": dataset, "sites": f"{args.sites} {scheme}", "strategy": strategy, "k": row["k"],
                    "seeds": row["seeds"], "federated": row["federated"], "local-only": row["local-only"],
                    "centralised": row["centralised"],
                    "fed - local": local["mean"], "fed - local CI": local["ci95"],
                    "fed - central": central["mean"], "fed - central CI": central["ci95"],
                })  # fmt: skip
    table = [
        {**{k: v for k, v in r.items() if not k.endswith("CI")},
         "fed - local [95% CI]": _ci(r["fed - local"], r["fed - local CI"]),
         "fed - central [95% CI]": _ci(r["fed - central"], r["fed - central CI"])}
        for r in rows
    ]  # fmt: skip
    for r in table:
        r.pop("fed - local"), r.pop("fed - central")
    print("pooled test balanced accuracy (mean over seeds); differences paired by seed")
    print(fmt_table(table))
    gains = [r["federated"] / r["local-only"] for r in rows if r["local-only"]]
    ratio = sum(gains) / len(gains) if gains else float("nan")
    print_ratio("federated / local-only pooled balanced accuracy (mean over rows)", ratio, "> 1", ratio > 1)
    write_result(
        "federated",
        {"machine": machine_info(threads), "seconds": round(time.perf_counter() - start, 1), "rows": rows,
         "settings": {k: getattr(args, k) for k in ("shots", "seeds", "sites", "alpha", "rounds", "local_steps", "mu")}},
        args,
    )  # fmt: skip
    return 0


def _ci(mean: float | None, ci: list[float | None]) -> str:
    if mean is None:
        return "—"
    low, high = ci
    return f"{mean:+.3f}" if low is None or high is None else f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


if __name__ == "__main__":
    sys.exit(main())
