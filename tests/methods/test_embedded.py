"""Semi-supervised methods on cached embeddings: label spreading, label propagation, self-training."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hfm.errors import ConfigError, MethodError
from hfm.hub.cards import render_card
from hfm.methods import get_method
from hfm.methods.graph import LabelPropagationMethod, LabelSpreadingMethod
from hfm.methods.self_training import SelfTraining
from hfm.runner import read_predictions, run, run_dir

EMBEDDING_METHODS = ("label-spreading", "label-propagation", "self-training")


def chains(n: int = 60, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two classes, each a chain of points in 8-D running from near one class's start to near the other's.

    Each chain's far end lies closer to the other class's start than to its own, so one labelled example per
    class (at the start) misleads a nearest-labelled rule but not a diffusion along the chain.
    """
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)
    x = np.zeros((2 * n, 8))
    x[:n, 0], x[:n, 1], x[:n, 3] = 1 - t, t, 0.3 * t  # class 0: from e0 towards e1 (+ a little e3)
    x[n:, 1], x[n:, 0], x[n:, 4] = 1 - t, t, 0.3 * t  # class 1: from e1 towards e0 (+ a little e4)
    x += rng.normal(0, 0.01, x.shape)
    return x, np.repeat([0, 1], n)


@pytest.mark.parametrize("cls", [LabelSpreadingMethod, LabelPropagationMethod])
def test_graph_methods_label_a_pool_along_its_structure(cls: type) -> None:
    x, y = chains()
    labelled = np.array([0, 60])  # the start of each chain
    pool = np.setdiff1d(np.arange(len(y)), labelled)
    proba = cls().pool_labels(x[labelled], y[labelled], x[pool], 2, 0)
    assert proba.shape == (len(pool), 2)
    assert (proba.argmax(1) == y[pool]).mean() > 0.9
    # The nearest labelled example gets the far ends wrong: the graph, not proximity, did the work.
    nearest = np.linalg.norm(x[pool][:, None] - x[labelled][None], axis=-1).argmin(1)
    assert (nearest == y[pool]).mean() < 0.75


def test_a_class_missing_from_the_labelled_set_gets_no_pool_label() -> None:
    x, y = chains()
    proba = LabelSpreadingMethod().pool_labels(x[[0, 1]], y[[0, 1]], x[2:], 3, 0)
    assert proba.shape == (len(y) - 2, 3) and not proba[:, 1:].any()


def test_self_training_labels_only_the_pool_examples_it_was_confident_about() -> None:
    x, y = chains()
    labelled, pool = np.array([0, 1, 60, 61]), np.setdiff1d(np.arange(len(y)), [0, 1, 60, 61])
    method = SelfTraining(threshold=0.9, max_iter=1, l2=1.0)
    proba = method.pool_labels(x[labelled], y[labelled], x[pool], 2, 0)
    labelled_rows = proba.max(1) > 0
    assert 0 < labelled_rows.sum() < len(pool)  # one round at a high threshold labels some, not all
    assert (proba[labelled_rows].max(1) >= 0.9).all()
    more = SelfTraining(threshold=0.9, max_iter=10, l2=1.0).pool_labels(
        x[labelled], y[labelled], x[pool], 2, 0
    )
    assert (more.max(1) > 0).sum() > labelled_rows.sum()  # further rounds label what the first left out


def test_bad_parameters_and_tuners_are_refused() -> None:
    from hfm.tuners import get_tuner

    with pytest.raises(MethodError, match="alpha must lie in"):
        get_method("label-spreading")(alpha=1.5)
    with pytest.raises(MethodError, match="threshold must lie in"):
        get_method("self-training")(threshold=1.0)
    for name in EMBEDDING_METHODS:
        with pytest.raises(MethodError, match="fits a probe on cached embeddings.*use tuner probe"):
            get_method(name)().check(get_tuner("lora"))


def _recipe(out: Path, presets: list[Any], **data: Any) -> dict[str, Any]:
    return {
        "name": "semi",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": {
            "type": "synthetic",
            "n_classes": 3,
            "n_per_class": 12,
            "n_val_per_class": 3,
            "n_test_per_class": 5,
            **data,
        },  # fmt: skip
        "presets": presets,
        "shots": [2],
        "seeds": [0],
        "bootstrap": 0,
        "output": str(out),
    }


def test_each_embedding_preset_runs_beside_the_probe_on_the_same_draw_and_uses_the_pool(
    tmp_path: Path,
) -> None:
    # A random twin is unsure of everything: self-training gets a threshold its probabilities can reach.
    low = {
        "name": "self-training/low",
        "tuner": "probe",
        "method": {"name": "self-training", "params": {"threshold": 0.34}},
    }
    presets: list[Any] = ["probe/logreg", "label-spreading/knn", "label-propagation/knn", low]
    result = run(_recipe(tmp_path / "out", presets), progress=False, verbose=False)
    assert result.ok, result.failed
    base = run_dir(tmp_path / "out", "probe/logreg", 2, 0)
    drawn = json.loads((base / "episode.json").read_text())
    assert drawn["pool"]["size"] == 3 * 12 - 3 * 2
    for preset in ("label-spreading/knn", "label-propagation/knn", "self-training/low"):
        folder = run_dir(tmp_path / "out", preset, 2, 0)
        assert json.loads((folder / "episode.json").read_text())["ids"] == drawn["ids"]
        record = json.loads((folder / "metrics.json").read_text())
        assert record["n_unlabelled"] == drawn["pool"]["size"]
        assert record["fit"]["pseudo_labelled"] > 0
        config = json.loads((folder / "adapter" / "hfm_config.json").read_text())
        assert config["method"]["n_unlabelled"] == drawn["pool"]["size"]
        assert config["method"]["pool"] == drawn["pool"]  # size and fingerprint
        assert f"pool fingerprint `{drawn['pool']['fingerprint']}`" in str(render_card(folder))
    spread = run_dir(tmp_path / "out", "label-spreading/knn", 2, 0)
    assert not np.allclose(
        read_predictions(base / "predictions.csv")[2], read_predictions(spread / "predictions.csv")[2]
    )


def test_a_preset_pairing_the_lora_tuner_with_label_spreading_is_refused_before_any_run(
    tmp_path: Path,
) -> None:
    preset = {"name": "lora/spread", "tuner": "lora", "method": "label-spreading"}
    with pytest.raises(ConfigError, match=r"presets\.0 \(lora/spread\): method: .*use tuner probe"):
        run(_recipe(tmp_path / "out", [preset]), progress=False, verbose=False)
