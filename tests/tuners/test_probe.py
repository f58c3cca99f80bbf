"""The probe: L-BFGS logistic regression on embeddings, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hfm.tuners import get_tuner


def sklearn_probe(train_x, train_y, val_x, val_y, grid, class_weight=None):
    """scikit-learn's LogisticRegression with C chosen on val over the same grid (C = 1 / (l2 * n))."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_x)
    tx, vx = scaler.transform(train_x), scaler.transform(val_x)
    best = None
    for l2 in grid:
        clf = LogisticRegression(C=1.0 / (l2 * len(train_x)), max_iter=1000, class_weight=class_weight)
        clf.fit(tx, train_y)
        acc = (clf.predict(vx) == val_y).mean()
        if best is None or acc > best[0]:
            best = (acc, clf)
    assert best is not None
    return lambda x: best[1].predict(scaler.transform(x))


def synthetic_embeddings(n: int, dim: int = 32, classes: int = 4, seed: int = 0):
    centers = np.random.default_rng(123).normal(size=(classes, dim)) * 0.6
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    x = centers[y] + rng.normal(size=(n, dim)) * np.linspace(0.5, 3.0, dim) + 5.0
    return x.astype(np.float32), y


def _fit(probe, tx, ty, vx, vy):
    return probe.fit_embeddings(
        torch.from_numpy(tx), torch.from_numpy(ty), torch.from_numpy(vx), torch.from_numpy(vy)
    )


def test_probe_matches_sklearn_on_synthetic_embeddings(make_twin) -> None:
    tx, ty = synthetic_embeddings(400, seed=0)
    vx, vy = synthetic_embeddings(200, seed=1)
    sx, sy = synthetic_embeddings(1000, seed=2)
    probe = get_tuner("probe")(_embedding_backbone(make_twin, 32), 4)
    info = _fit(probe, tx, ty, vx, vy)
    ours = (probe.predict_proba_embeddings(torch.from_numpy(sx)).argmax(-1).numpy() == sy).mean()
    theirs = (sklearn_probe(tx, ty, vx, vy, probe.config.l2_grid)(sx) == sy).mean()
    assert ours > 0.6 and abs(ours - theirs) <= 0.01, (ours, theirs, info)
    assert info["l2"] in probe.config.l2_grid and 0 <= info["val_metric"] <= 1


def _embedding_backbone(make_twin, dim: int):
    """A twin whose spec claims ``dim``-wide embeddings (the probe only reads the width)."""
    backbone = make_twin("pathology/uni")
    backbone.spec = backbone.spec.replace(embed_dim=dim)
    return backbone


def test_probe_balanced_and_mlp_and_no_val(make_twin) -> None:
    tx, ty = synthetic_embeddings(300, seed=3)
    vx, vy = synthetic_embeddings(100, seed=4)
    balanced = get_tuner("probe")(_embedding_backbone(make_twin, 32), 4, class_weight="balanced")
    assert _fit(balanced, tx, ty, vx, vy)["val_metric"] > 0.5
    mlp = get_tuner("probe")(_embedding_backbone(make_twin, 32), 4, hidden_dim=16, metric="balanced_accuracy")
    assert _fit(mlp, tx, ty, vx, vy)["val_metric"] > 0.5
    fixed = get_tuner("probe")(_embedding_backbone(make_twin, 32), 4, l2=1e-3)
    info = fixed.fit_embeddings(torch.from_numpy(tx), torch.from_numpy(ty))
    assert info["l2"] == 1e-3 and info["val_metric"] is None


@pytest.mark.slow
def test_probe_matches_sklearn_on_bccd(make_twin, shared_data) -> None:
    """BCCD cell crops, features = 8x8 RGB thumbnails (192 values): same test accuracy within 1 point.

    Speed is measured by ``benchmarks/probe_fit.py`` (never asserted in a test).
    """
    from sklearn.linear_model import LogisticRegression  # noqa: F401 - import outside the timed region

    data = np.load(shared_data / "bccd" / "bccd_cell_crops_64.npz")

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        images = data[f"{split}_images"].astype(np.float32)
        thumbs = images.reshape(len(images), 8, 8, 8, 8, 3).mean(axis=(2, 4))
        return thumbs.reshape(len(images), -1), data[f"{split}_labels"].astype(np.int64)

    (tx, ty), (vx, vy), (sx, sy) = features("train"), features("val"), features("test")
    grid = (1e-1, 1e-2, 1e-3, 1e-4)
    for class_weight in (None, "balanced"):
        probe = get_tuner("probe")(
            _embedding_backbone(make_twin, tx.shape[1]), 3, l2_grid=grid, class_weight=class_weight
        )
        _fit(probe, tx, ty, vx, vy)
        ours = (probe.predict_proba_embeddings(torch.from_numpy(sx)).argmax(-1).numpy() == sy).mean()
        predict = sklearn_probe(tx, ty, vx, vy, grid, class_weight=class_weight)
        theirs = (predict(sx) == sy).mean()
        assert abs(ours - theirs) <= 0.01, (class_weight, ours, theirs)


def test_grid_patience_stops_the_walk_once_validation_turns_down(make_twin) -> None:
    """Few, noisy training examples: weak L2 overfits, so validation stops improving and the walk ends early."""
    tx, ty = synthetic_embeddings(24, seed=0)
    vx, vy = synthetic_embeddings(400, seed=1)
    grid = (10.0, 1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
    full = get_tuner("probe")(_embedding_backbone(make_twin, 32), 4, l2_grid=grid, grid_patience=None)
    full_info = _fit(full, tx, ty, vx, vy)
    assert len(full_info["grid"]) == len(grid)
    early = get_tuner("probe")(_embedding_backbone(make_twin, 32), 4, l2_grid=grid, grid_patience=1)
    early_info = _fit(early, tx, ty, vx, vy)
    walked = list(early_info["grid"].values())
    # It stops right after the first grid point that does not beat the best so far ...
    assert len(walked) < len(grid)
    assert walked[-1] <= max(walked[:-1])
    assert all(walked[i] > max(walked[:i]) for i in range(1, len(walked) - 1))
    # ... and the points it did walk score exactly as in the full walk.
    assert walked == list(full_info["grid"].values())[: len(walked)]
