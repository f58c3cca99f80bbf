"""Classification metrics, seeded bootstrap intervals and summaries over seeds.

Every metric is computed from integer labels and class probabilities and matches scikit-learn on the same
predictions (``tests/test_metrics.py`` checks it). The bootstrap is vectorised: each metric is computed from
per-resample confusion matrices or weighted counts, so 1000 resamples of a few thousand examples take well
under a second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "auroc", "ece")
"""Scalar metrics hfm reports; per-class recall and the confusion matrix always come with them."""

ECE_BINS = 15


def check_metric_names(names: Sequence[str]) -> list[str]:
    """Return ``names`` as a list, raising ``ValueError`` for one hfm does not compute."""
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}: use {', '.join(METRICS)}")
    return list(names)


def score(pred: Any, target: Any, metric: str, num_classes: int) -> float:
    """Accuracy or balanced accuracy of predicted labels (mean recall over the classes present in ``target``).

    The one implementation behind model selection (the probe's L2 grid, early stopping) and the reported
    metrics. Takes arrays or tensors (on any device).

    Raises:
        ValueError: For a metric other than ``accuracy`` or ``balanced_accuracy``.
    """
    if metric not in ("accuracy", "balanced_accuracy"):
        raise ValueError(f"score() computes accuracy or balanced_accuracy, not {metric!r}")
    y, p = _labels(target), _labels(pred)
    if len(y) == 0:
        return math.nan
    cm = _confusions(y, p, np.arange(len(y))[None, :], num_classes)
    return float(_from_confusions(cm)[metric][0])


def _labels(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.int64).reshape(-1)


# ---- per-resample kernels: every function takes a leading resample axis ---------------------------------------
def _confusions(y: np.ndarray, pred: np.ndarray, idx: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices ``[B, C, C]`` (rows true, columns predicted) for resample indices ``idx [B, N]``."""
    b = idx.shape[0]
    flat = np.arange(b)[:, None] * n_classes * n_classes + y[idx] * n_classes + pred[idx]
    counts = np.bincount(flat.ravel(), minlength=b * n_classes * n_classes)
    return counts.reshape(b, n_classes, n_classes).astype(np.float64)


def _from_confusions(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, balanced accuracy, macro-F1 and per-class recall from confusion matrices ``[B, C, C]``."""
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(axis=2)
    predicted = cm.sum(axis=1)
    total = cm.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / np.where(support > 0, support, 1), np.nan)
        denom = support + predicted  # 2tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / np.where(denom > 0, denom, 1), 0.0)
        balanced = np.nanmean(recall, axis=1)
    return {
        "accuracy": tp.sum(axis=1) / total,
        "balanced_accuracy": balanced,
        "macro_f1": f1.mean(axis=1),
        "recall": recall,
    }


def _binary_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted Mann-Whitney AUC per resample; ties count one half (as scikit-learn's trapezoidal ROC).

    Args:
        score: Scores ``[N]``.
        positive: Boolean ``[N]``.
        weights: How many times each example appears in each resample, ``[B, N]``.
    """
    uniq, inverse = np.unique(score, return_inverse=True)
    m = len(uniq)
    b = weights.shape[0]
    offsets = (np.arange(b)[:, None] * m + inverse[None, :]).ravel()
    pos_w = np.bincount(offsets, weights=(weights * positive[None, :]).ravel(), minlength=b * m).reshape(b, m)
    neg_w = np.bincount(offsets, weights=(weights * ~positive[None, :]).ravel(), minlength=b * m).reshape(
        b, m
    )
    neg_below = np.cumsum(neg_w, axis=1) - neg_w
    n_pos, n_neg = pos_w.sum(axis=1), neg_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (pos_w * (neg_below + 0.5 * neg_w)).sum(axis=1) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), auc, np.nan)


def _auroc(y: np.ndarray, proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Binary AUROC on the positive class, or one-vs-rest macro AUROC, per resample (NaN when undefined)."""
    n_classes = proba.shape[1]
    if n_classes == 2:
        return _binary_auc(proba[:, 1], y == 1, weights)
    per_class = np.stack([_binary_auc(proba[:, c], y == c, weights) for c in range(n_classes)], axis=1)
    # scikit-learn's OvR macro is undefined unless every class is present; mirror that.
    return np.where(np.isnan(per_class).any(axis=1), np.nan, per_class.mean(axis=1))


def _ece(y: np.ndarray, proba: np.ndarray, weights: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """Expected calibration error of the top-label confidence with equal-width bins, per resample.

    ECE = sum over bins of (bin weight / total) * |accuracy in bin - mean confidence in bin|, with bin ``i``
    holding confidences in ``(i/n, (i+1)/n]`` (Guo et al., 2017).
    """
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    b = weights.shape[0]
    offsets = (np.arange(b)[:, None] * n_bins + bins[None, :]).ravel()

    def per_bin(values: np.ndarray) -> np.ndarray:
        w = (weights * values[None, :]).ravel()
        return np.bincount(offsets, weights=w, minlength=b * n_bins).reshape(b, n_bins)

    count = per_bin(np.ones_like(conf))
    gap = np.abs(per_bin(correct) - per_bin(conf))  # |sum correct - sum conf| = count * |acc - conf|
    return gap.sum(axis=1) / count.sum(axis=1)


def _scalar_metrics(
    y: np.ndarray, proba: np.ndarray, idx: np.ndarray, weights: np.ndarray, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """Each named metric and per-class recall for every resample (``idx [B, N]``, ``weights [B, N]``)."""
    n_classes = proba.shape[1]
    pred = proba.argmax(axis=1)
    cm = _confusions(y, pred, idx, n_classes)
    out = _from_confusions(cm)
    result = {name: out[name] for name in names if name in out}
    result["recall"] = out["recall"]
    result["confusion"] = cm
    if "auroc" in names:
        result["auroc"] = _auroc(y, proba, weights)
    if "ece" in names:
        result["ece"] = _ece(y, proba, weights)
    return result


def _validate(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != len(y):
        raise ValueError(f"expected probabilities of shape ({len(y)}, n_classes), got {p.shape}")
    if len(y) == 0:
        raise ValueError("no examples to evaluate")
    if y.min() < 0 or y.max() >= p.shape[1]:
        raise ValueError(f"labels must lie in [0, {p.shape[1] - 1}]")
    return y, p


def _clean(value: float) -> float | None:
    """JSON-friendly float: NaN (an undefined metric) becomes ``None``."""
    return None if value is None or math.isnan(value) else float(value)


def evaluate(
    y_true: Any,
    proba: Any,
    classes: Sequence[str],
    *,
    metrics: Sequence[str] = METRICS,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """All metrics on one split with bootstrap intervals, ready for ``metrics.json``.

    Args:
        y_true: Integer labels ``[N]``.
        proba: Class probabilities ``[N, C]`` (rows sum to one); the prediction is their argmax.
        classes: Class names, ``len(classes) == C``.
        metrics: Scalar metrics to report (see :data:`METRICS`).
        n_bootstrap: Resamples of the examples (with replacement) for the intervals; 0 disables them.
        seed: Seed of the resampling, so intervals are reproducible.
        level: Coverage of the percentile interval.

    Returns:
        ``{"n", "classes", <metric>: value, "per_class_recall": {class: recall}, "confusion_matrix",
        "ci": {<metric>: [low, high]}, "bootstrap": {...}}``. Undefined values (e.g. AUROC with one class
        present) are ``None``.
    """
    names = check_metric_names(metrics)
    y, p = _validate(y_true, proba)
    if len(classes) != p.shape[1]:
        raise ValueError(f"{len(classes)} class names for {p.shape[1]} probability columns")
    n = len(y)
    point = _scalar_metrics(y, p, np.arange(n)[None, :], np.ones((1, n)), names)
    result: dict[str, Any] = {"n": n, "classes": list(classes)}
    for name in names:
        result[name] = _clean(float(point[name][0]))
    result["per_class_recall"] = {
        c: _clean(float(r)) for c, r in zip(classes, point["recall"][0], strict=True)
    }
    result["confusion_matrix"] = point["confusion"][0].astype(np.int64).tolist()
    if n_bootstrap > 0:
        result["ci"] = bootstrap_intervals(y, p, names, n_bootstrap=n_bootstrap, seed=seed, level=level)
        result["bootstrap"] = {"resamples": n_bootstrap, "seed": seed, "level": level, "method": "percentile"}
    return result


def bootstrap_intervals(
    y_true: Any,
    proba: Any,
    metrics: Sequence[str] = METRICS,
    *,
    n_bootstrap: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chunk: int = 250,
) -> dict[str, list[float | None]]:
    """Percentile bootstrap intervals ``{metric: [low, high]}`` over resamples of the examples.

    Resamples where a metric is undefined (a class missing for AUROC) are left out of that metric's interval.
    Work is done ``chunk`` resamples at a time to bound memory on large test sets.
    """
    names = check_metric_names(metrics)
    y, p = _validate(y_true, proba)
    n = len(y)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[np.ndarray]] = {name: [] for name in names}
    done = 0
    while done < n_bootstrap:
        b = min(chunk, n_bootstrap - done)
        idx = rng.integers(0, n, size=(b, n))
        weights = np.bincount((np.arange(b)[:, None] * n + idx).ravel(), minlength=b * n).reshape(b, n)
        values = _scalar_metrics(y, p, idx, weights.astype(np.float64), names)
        for name in names:
            draws[name].append(values[name])
        done += b
    tail = (1.0 - level) / 2 * 100
    out: dict[str, list[float | None]] = {}
    for name in names:
        drawn = np.concatenate(draws[name])
        drawn = drawn[~np.isnan(drawn)]
        if len(drawn) == 0:
            out[name] = [None, None]
        else:
            low, high = np.percentile(drawn, [tail, 100 - tail])
            out[name] = [float(low), float(high)]
    return out


def summarize(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) over seeds, ignoring undefined values."""
    finite = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(finite) == 0:
        return {"mean": None, "std": None, "n": 0}
    std = float(finite.std(ddof=1)) if len(finite) > 1 else 0.0
    return {"mean": float(finite.mean()), "std": std, "n": len(finite)}
