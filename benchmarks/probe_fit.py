"""Probe fit: hfm's probe against scikit-learn's LogisticRegression, same embeddings, same L2 search.

Both sides get the same standardised feature matrix, the same L2 grid (hfm's default, converted to sklearn's
``C = 1 / (l2 * n_train)``: hfm penalises ``l2 / 2 * ||W||^2`` on the mean loss, sklearn ``||W||^2 / 2`` on
the summed loss scaled by ``C``), and pick the strength with the best validation accuracy. The baseline is
what a user writes by hand: one ``LogisticRegression(C=..., max_iter=1000)`` per grid point.

Data sets:

* ``bccd``: the BCCD blood-cell crops from ``../shared/data`` (skipped with a message when absent). The
  "embeddings" are the crops average-pooled to 16x16x3 = 768 values: informative (the three cell types
  differ in size and stain), the same width as a ViT-B embedding, and free of any network download. A
  random-weight ViT would give weak features that make an accuracy comparison meaningless.
* ``generated``: 20,000 train (+2,000 val, +2,000 test) x 768 Gaussian class clusters with unequal feature
  scales and overlap, tuned so the best accuracy is about 0.73 (a task where the L2 choice matters).

Command: ``python benchmarks/probe_fit.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def generated(n_train: int, dim: int, n_classes: int, seed: int = 0) -> Arrays:
    """Overlapping Gaussian clusters with per-feature scales in [0.5, 2] (so standardisation matters)."""
    rng = np.random.default_rng(seed)
    n_eval = max(n_train // 10, 50)
    n = n_train + 2 * n_eval
    means = rng.normal(0.0, 0.08, (n_classes, dim))
    y = rng.integers(0, n_classes, n)
    scales = rng.uniform(0.5, 2.0, dim)
    x = (means[y] + rng.normal(0.0, 1.0, (n, dim)) * scales).astype(np.float32)
    a, b = n_train, n_train + n_eval
    return x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:]


def bccd(pool: int, limit: int | None = None) -> Arrays | None:
    """BCCD crops average-pooled to ``pool x pool x 3`` features, or ``None`` when the data is absent."""
    path = _common.SHARED_DATA / "bccd" / "bccd_cell_crops_64.npz"
    if not path.is_file():
        print(f"skip bccd: {path} not found (set HFM_SHARED_DATA to the shared data folder)")
        return None
    import torch
    import torch.nn.functional as F

    data = np.load(path)

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = data[f"{split}_images"], data[f"{split}_labels"].astype(np.int64)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
        return F.adaptive_avg_pool2d(x, pool).flatten(1).numpy(), labels

    return (*features("train"), *features("val"), *features("test"))  # type: ignore[return-value]


def balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


PROBE_PARAMS: dict[str, Any] = {}  # extra probe parameters from the command line (e.g. grid_patience)


def fit_hfm(arrays: Arrays, n_classes: int, backbone: Any) -> dict[str, Any]:
    """hfm's probe: ``fit_embeddings`` (standardises, walks the L2 grid with warm starts, picks on val)."""
    import torch

    from hfm.tuners import get_tuner

    xtr, ytr, xva, yva, xte, _ = arrays
    probe: Any = get_tuner("probe")(backbone, n_classes, **PROBE_PARAMS)  # a ProbeModel
    info = probe.fit_embeddings(
        torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xva), torch.from_numpy(yva)
    )
    pred = probe.predict_proba_embeddings(torch.from_numpy(xte)).argmax(-1).numpy()
    return {"pred": pred, "l2": info["l2"], "grid": list(probe.config.l2_grid)}


def fit_sklearn(arrays: Arrays, grid: list[float]) -> dict[str, Any]:
    """The hand-written baseline: standardise, one LogisticRegression per grid point, best on val."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xtr, ytr, xva, yva, xte, _ = arrays
    scaler = StandardScaler().fit(xtr)
    str_, sva, ste = scaler.transform(xtr), scaler.transform(xva), scaler.transform(xte)
    best: tuple[float, float, Any] | None = None
    for l2 in sorted(grid, reverse=True):
        model = LogisticRegression(C=1.0 / (l2 * len(ytr)), max_iter=1000).fit(str_, ytr)
        value = float(model.score(sva, yva))
        if best is None or value > best[1]:
            best = (l2, value, model)
    assert best is not None
    return {"pred": best[2].predict(ste), "l2": best[0]}


def compare(name: str, arrays: Arrays, reps: int) -> dict[str, Any]:
    """Time both fits in interleaved rounds; report medians, the speed-up and test accuracies."""
    n_classes = int(max(arrays[1].max(), arrays[3].max(), arrays[5].max())) + 1
    # The probe needs a backbone for its spec only (it is never called on cached embeddings): a tiny twin
    # whose width matches the features, built once outside the timed region.
    backbone = _common.vit_backbone(quick=True, embed_dim=int(arrays[0].shape[1]), depth=1)
    small = tuple(a[:200] for a in arrays)  # warm-up on a slice: first-call costs without a full fit
    grid = fit_hfm(small, n_classes, backbone)["grid"]  # type: ignore[arg-type]
    fit_sklearn(small, grid[:1])  # type: ignore[arg-type]
    out: dict[str, dict[str, Any]] = {}
    times = _common.interleaved(
        {
            "hfm": lambda: out.__setitem__("hfm", fit_hfm(arrays, n_classes, backbone)),
            "sklearn": lambda: out.__setitem__("sklearn", fit_sklearn(arrays, grid)),
        },
        reps=reps,
        warmup=0,
    )
    y_test = arrays[5]
    acc = {k: float(np.mean(v["pred"] == y_test)) for k, v in out.items()}
    bacc = {k: balanced_accuracy(v["pred"], y_test) for k, v in out.items()}
    speedup = _common.paired_ratio(times["sklearn"], times["hfm"])
    gap = abs(acc["hfm"] - acc["sklearn"]) * 100
    row = {
        "data": name,
        "n_train": len(arrays[1]),
        "dim": int(arrays[0].shape[1]),
        "classes": n_classes,
        "hfm_s": _common.median(times["hfm"]),
        "sklearn_s": _common.median(times["sklearn"]),
        "speedup": speedup,
        "hfm_acc": acc["hfm"],
        "sklearn_acc": acc["sklearn"],
        "acc_gap_points": gap,
        "hfm_bal_acc": bacc["hfm"],
        "sklearn_bal_acc": bacc["sklearn"],
        "hfm_l2": out["hfm"]["l2"],
        "sklearn_l2": out["sklearn"]["l2"],
    }
    print(_common.fmt_table([row]))
    _common.print_ratio(f"{name} speed-up sklearn/hfm", speedup, ">= 5", speedup >= 5)
    _common.print_ratio(f"{name} accuracy gap (points)", gap, "<= 1", gap <= 1)
    return {**row, "hfm_times_s": times["hfm"], "sklearn_times_s": times["sklearn"]}


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument(
        "--grid-patience",
        default="default",
        help="the probe's grid_patience: an integer, 'none' to walk the whole grid like the baseline, "
        "or 'default' (the probe's default)",
    )
    args = _common.parse_args(p, argv)
    if args.grid_patience != "default":
        PROBE_PARAMS["grid_patience"] = None if args.grid_patience == "none" else int(args.grid_patience)
    threads = _common.setup_threads(args.threads)
    reps = args.reps or (1 if args.quick else 3)
    start = time.perf_counter()
    rows = []
    if args.quick:
        sets: list[tuple[str, Arrays | None]] = [
            ("generated", generated(1000, 64, 5)),
            ("bccd", bccd(4, 300)),
        ]
    else:
        sets = [("bccd", bccd(16)), ("generated", generated(20_000, 768, 10))]
    for name, arrays in sets:
        if arrays is not None:
            rows.append(compare(name, arrays, reps))
    payload = {
        "machine": _common.machine_info(threads),
        "reps": reps,
        "probe_params": PROBE_PARAMS,
        "results": rows,
    }
    payload["wall_s"] = time.perf_counter() - start
    _common.write_result("probe_fit", payload, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
