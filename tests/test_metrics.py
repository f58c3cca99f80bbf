"""Every metric equals scikit-learn's on the same predictions; bootstrap intervals are seeded and sane."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    recall_score,
    roc_auc_score,
)

from hfm.metrics import ECE_BINS, bootstrap_intervals, check_metric_names, evaluate, summarize


def _predictions(n: int, n_classes: int, seed: int, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, size=n)
    logits = rng.normal(size=(n, n_classes)) + 1.5 * np.eye(n_classes)[y]
    if ties:
        logits = np.round(logits)  # many identical scores
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def _reference_ece(y: np.ndarray, proba: np.ndarray, n_bins: int = ECE_BINS) -> float:
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y
    total = 0.0
    for i in range(n_bins):
        low, high = i / n_bins, (i + 1) / n_bins
        in_bin = (conf > low) & (conf <= high) if i > 0 else (conf <= high)
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return total


@pytest.mark.parametrize(("n_classes", "ties"), [(2, False), (2, True), (3, False), (5, True)])
@pytest.mark.parametrize("seed", [0, 1])
def test_metrics_equal_sklearn(n_classes: int, ties: bool, seed: int) -> None:
    y, proba = _predictions(200, n_classes, seed, ties)
    pred = proba.argmax(axis=1)
    classes = [f"c{i}" for i in range(n_classes)]
    m = evaluate(y, proba, classes, n_bootstrap=0)
    labels = list(range(n_classes))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", labels=labels, zero_division=0))
    if n_classes == 2:
        auc = roc_auc_score(y, proba[:, 1])
    else:
        auc = roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels)
    assert m["auroc"] == pytest.approx(auc)
    recalls = recall_score(y, pred, average=None, labels=labels, zero_division=0)
    assert [m["per_class_recall"][c] for c in classes] == pytest.approx(list(recalls))
    assert m["confusion_matrix"] == confusion_matrix(y, pred, labels=labels).tolist()
    assert m["ece"] == pytest.approx(_reference_ece(y, proba))
    assert m["n"] == 200 and m["classes"] == classes


def test_class_never_predicted_or_absent() -> None:
    # class 2 never appears in y_true; class 1 never predicted: sklearn's conventions apply.
    y = np.array([0, 0, 1, 1, 0, 1])
    proba = np.array([[0.8, 0.1, 0.1]] * 4 + [[0.1, 0.1, 0.8]] * 2)
    pred = proba.argmax(axis=1)
    m = evaluate(y, proba, ["a", "b", "c"], n_bootstrap=0)
    with pytest.warns(UserWarning):
        expected_bal = balanced_accuracy_score(y, pred)
    assert m["balanced_accuracy"] == pytest.approx(expected_bal)
    assert m["macro_f1"] == pytest.approx(
        f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0)
    )
    assert m["per_class_recall"]["c"] is None  # no support: undefined, not zero
    assert m["auroc"] is None  # OvR AUROC is undefined with a class absent


def test_bootstrap_is_seeded_and_covers_point() -> None:
    y, proba = _predictions(300, 3, 7)
    a = bootstrap_intervals(y, proba, n_bootstrap=400, seed=3)
    b = bootstrap_intervals(y, proba, n_bootstrap=400, seed=3)
    c = bootstrap_intervals(y, proba, n_bootstrap=400, seed=4)
    assert a == b and a != c
    point = evaluate(y, proba, ["x", "y", "z"], n_bootstrap=0)
    for name, (low, high) in a.items():
        assert low is not None and high is not None
        assert low <= point[name] <= high, name
        assert high - low < 0.25


def test_bootstrap_matches_loop_over_resamples() -> None:
    """The vectorised resampling equals computing each resample with scikit-learn."""
    y, proba = _predictions(60, 2, 11)
    n_boot, seed = 50, 5
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y), size=(n_boot, len(y)))
    accs = [accuracy_score(y[i], proba[i].argmax(axis=1)) for i in idx]
    aucs = [roc_auc_score(y[i], proba[i, 1]) for i in idx]
    ci = bootstrap_intervals(y, proba, ["accuracy", "auroc"], n_bootstrap=n_boot, seed=seed, chunk=7)
    assert ci["accuracy"] == pytest.approx(list(np.percentile(accs, [2.5, 97.5])))
    assert ci["auroc"] == pytest.approx(list(np.percentile(aucs, [2.5, 97.5])))


def test_bootstrap_intervals_bracket_the_point_estimate_on_a_large_split() -> None:
    y, proba = _predictions(2000, 4, 0)
    result = evaluate(y, proba, list("abcd"), n_bootstrap=1000)
    for name in ("accuracy", "balanced_accuracy", "macro_f1"):
        low, high = result["ci"][name]
        assert low <= result[name] <= high
        assert high - low < 0.1  # 2000 examples: a narrow interval


def test_summarize_and_names() -> None:
    s = summarize([0.5, 0.7, None])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert summarize([0.4]) == {"mean": 0.4, "std": 0.0, "n": 1}
    assert summarize([None])["mean"] is None
    with pytest.raises(ValueError, match="unknown metric 'acc'"):
        check_metric_names(["acc"])


def test_bad_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        evaluate([0, 1], np.ones((3, 2)) / 2, ["a", "b"])
    with pytest.raises(ValueError, match="class names"):
        evaluate([0, 1], np.ones((2, 2)) / 2, ["a"])
    with pytest.raises(ValueError, match="labels must lie"):
        evaluate([0, 2], np.ones((2, 2)) / 2, ["a", "b"])


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy"])
def test_score_is_the_metric_evaluate_reports(metric: str) -> None:
    """Model selection (probe grid, early stopping) and the reported metrics share one implementation."""
    import torch

    import hfm.train
    import hfm.tuners.probe
    from hfm.metrics import score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 60)
    proba = rng.dirichlet(np.ones(4), 60)
    expected = evaluate(y, proba, ["a", "b", "c", "d"], n_bootstrap=0)[metric]
    pred = torch.as_tensor(proba.argmax(1))
    assert score(pred, torch.as_tensor(y), metric, 4) == pytest.approx(expected, abs=1e-12)
    assert hfm.train.score is score and hfm.tuners.probe.score is score
