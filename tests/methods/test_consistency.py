"""End-to-end semi-supervised methods through a sweep: the pool they train on, reproducibility, exact resume,
and the pool-size checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tuners.conftest import toy_subset  # tests/ is on sys.path (rootdir-relative packages)

import hfm
from hfm.data import ImageDataset
from hfm.data.splits import Subset
from hfm.errors import MethodError
from hfm.methods import get_method
from hfm.methods.consistency import FixMatch
from hfm.runner import read_predictions, run, run_dir
from hfm.train import TrainConfig

SEEN: dict[str, list[str]] = {}


class RecordingFixMatch(FixMatch):
    """FixMatch that records the pool it was handed (ids only)."""

    def train(self, model: Any, train: Any, val: Any, pool: Subset, config: TrainConfig) -> dict[str, Any]:
        SEEN["pool"], SEEN["labelled"] = list(pool.ids), list(train.subset.ids)
        return super().train(model, train, val, pool, config)


hfm.methods.register_method("test-recording-fixmatch")(RecordingFixMatch)


def _recipe(out: Path, presets: list[Any]) -> dict[str, Any]:
    return {
        "name": "fixmatch",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": {
            "type": "synthetic",
            "n_classes": 3,
            "n_per_class": 8,
            "n_val_per_class": 2,
            "n_test_per_class": 4,
        },  # fmt: skip
        "presets": presets,
        "shots": [2],
        "seeds": [0],
        "training": {"max_steps": 3, "batch_size": 3},
        "bootstrap": 0,
        "output": str(out),
    }


def _fixmatch(name: str = "fixmatch/test", method: str = "fixmatch") -> dict[str, Any]:
    return {"name": name, "tuner": "lora", "params": {"r": 4}, "training": {"lr": 1e-2},
            "method": {"name": method, "params": {"threshold": 0.0, "mu": 2}}}  # fmt: skip


def test_fixmatch_trains_on_exactly_the_pool_beside_its_labelled_only_twin(tmp_path: Path) -> None:
    plain = {"name": "lora/test", "tuner": "lora", "params": {"r": 4}, "training": {"lr": 1e-2}}
    presets = [plain, _fixmatch("fixmatch/test", "test-recording-fixmatch")]
    assert run(_recipe(tmp_path / "a", presets), progress=False, verbose=False).ok
    folder = run_dir(tmp_path / "a", "fixmatch/test", 2, 0)
    drawn = json.loads((folder / "episode.json").read_text())
    assert (
        drawn["ids"]
        == json.loads((run_dir(tmp_path / "a", "lora/test", 2, 0) / "episode.json").read_text())["ids"]
    )
    assert sorted(SEEN["labelled"]) == sorted(drawn["ids"]) and not set(SEEN["pool"]) & set(drawn["ids"])
    assert len(SEEN["pool"]) == drawn["pool"]["size"] == 3 * 8 - 3 * 2
    record = json.loads((folder / "metrics.json").read_text())
    assert record["n_unlabelled"] == drawn["pool"]["size"] and record["fit"]["unlabelled_batch_size"] == 6
    assert json.loads((folder / "adapter" / "hfm_config.json").read_text())["method"]["n_unlabelled"] == 18
    first = read_predictions(folder / "predictions.csv")[2]
    assert not np.allclose(
        first, read_predictions(run_dir(tmp_path / "a", "lora/test", 2, 0) / "predictions.csv")[2]
    )
    # a seed reproduces pool, batches and model: the same sweep again gives the same predictions
    assert run(_recipe(tmp_path / "b", presets[1:]), progress=False, verbose=False).ok
    np.testing.assert_array_equal(
        first, read_predictions(run_dir(tmp_path / "b", "fixmatch/test", 2, 0) / "predictions.csv")[2]
    )


def _train(
    method: Any, checkpoint: Path | None = None, *, resume: bool = False, stop_after: int | None = None
):
    torch.manual_seed(0)
    backbone = hfm.load_backbone("pathology/uni", twin=True)
    model = hfm.get_tuner("lora")(backbone, 3, r=4)
    labelled = ImageDataset(toy_subset(2), backbone.transform)
    pool = toy_subset(4, seed=1)
    calls = [0]
    loss = method.loss

    def counting(forward, batch, config):  # type: ignore[no-untyped-def]
        calls[0] += 1
        if stop_after is not None and calls[0] > stop_after:
            raise KeyboardInterrupt
        return loss(forward, batch, config)

    method.loss = counting
    config = TrainConfig(
        epochs=4, batch_size=3, lr=1e-2, patience=None, progress=False, warmup_ratio=0,
        checkpoint_dir=None if checkpoint is None else str(checkpoint), resume=resume,
    )  # fmt: skip
    method.train(model, labelled, None, pool, config)
    return model


def test_freematch_resumes_exactly_with_its_unlabelled_loader_and_thresholds(tmp_path: Path) -> None:
    params = {"mu": 2, "momentum": 0.5}
    reference = get_method("freematch")(**params)
    model = _train(reference)
    interrupted = get_method("freematch")(**params)
    with pytest.raises(KeyboardInterrupt):
        _train(interrupted, tmp_path / "ckpt", stop_after=5)  # two steps per epoch: stops inside epoch 3
    resumed = get_method("freematch")(**params)
    again = _train(resumed, tmp_path / "ckpt", resume=True)
    assert reference.thresholds is not None and resumed.thresholds is not None
    torch.testing.assert_close(
        resumed.thresholds.state_dict(), reference.thresholds.state_dict(), rtol=0, atol=0
    )
    for name, tensor in model.state_to_save().items():
        assert torch.equal(tensor, again.state_to_save()[name]), name


def test_an_empty_pool_is_refused_and_a_small_one_warned_about() -> None:
    method = get_method("fixmatch")(mu=7)
    backbone = hfm.load_backbone("pathology/uni", twin=True)
    model = hfm.get_tuner("lora")(backbone, 3, r=4)
    config = TrainConfig(max_steps=1, batch_size=3, progress=False)
    with pytest.raises(MethodError, match="the unlabelled pool is empty"):
        method.train(model, toy_subset(1), None, toy_subset(1).take([]), config)
    with pytest.warns(
        UserWarning, match=r"pool has 6 images, fewer than mu x batch_size = 21; each step uses all 6"
    ):
        info = method.train(model, toy_subset(1), None, toy_subset(2), config)
    assert info["unlabelled_batch_size"] == 6
