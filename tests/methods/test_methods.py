"""Methods: the open registry, a method registered from outside hfm used through a preset in a real sweep, the
pool seam, and the checks that refuse combinations a method cannot run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hfm.errors import ConfigError, MethodError
from hfm.hub.cards import render_card
from hfm.methods import get_method, list_methods, register_method
from hfm.methods.base import MethodConfig, MethodResult, Needs, RunContext
from hfm.methods.supervised import Supervised
from hfm.runner import read_predictions, run, run_dir
from hfm.train import Batch, Forward, TrainConfig
from hfm.tuners.base import AdaptedModel

CALLS: dict[str, int] = {"loss": 0}


@dataclasses.dataclass
class SmoothConfig(MethodConfig):
    smoothing: float = 0.1

    def check(self, name: str) -> None:
        if not 0 <= self.smoothing < 1:
            raise MethodError(f"method {name!r}: smoothing must lie in [0, 1), got {self.smoothing}")


@register_method("test-smooth-ce")
class SmoothCE(Supervised):
    """Supervised training with the method's own label smoothing: one class, no change to hfm."""

    config_cls = SmoothConfig

    def loss(self, forward: Forward, batch: Batch, config: TrainConfig) -> torch.Tensor:
        CALLS["loss"] += 1
        logits = forward(batch.images).float()
        return F.cross_entropy(logits, batch.labels, label_smoothing=self.config.smoothing)  # type: ignore[attr-defined]


@register_method("test-pool-size")
class PoolSize(Supervised):
    """Fits like supervised and reads the pool's cached embeddings (declared in ``needs``)."""

    needs = Needs(inputs="embeddings", pool=True)

    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        pool = ctx.embeddings().of(ctx.draw.pool)
        assert pool.shape[0] == len(ctx.draw.pool) > 0
        result = super().fit(model, ctx)
        return dataclasses.replace(result, n_unlabelled=int(pool.shape[0]))


def _recipe(out: Path, presets: list[Any], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "methods",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": {
            "type": "synthetic",
            "n_classes": 3,
            "n_per_class": 6,
            "n_val_per_class": 3,
            "n_test_per_class": 5,
        },  # fmt: skip
        "presets": presets,
        "shots": [2],
        "seeds": [0],
        "training": {"max_steps": 3, "batch_size": 4, "lr": 1e-2},
        "bootstrap": 0,
        "output": str(out),
    }
    data.update(changes)
    return data


def test_registry_lists_builtins_and_refuses_unknown_names() -> None:
    assert "supervised" in list_methods() and get_method("supervised") is Supervised
    with pytest.raises(MethodError, match="unknown method 'nope': use one of .*supervised"):
        get_method("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_method("supervised")(SmoothCE)
    with pytest.raises(MethodError, match="smoothing must lie"):
        SmoothCE(smoothing=1.5)


def test_method_from_outside_hfm_runs_through_a_preset(tmp_path: Path) -> None:
    """A tiny method defined here, named by a preset, trains beside plain supervised on the same draw."""
    smooth = {"name": "lora/smooth", "tuner": "lora", "params": {"r": 4}, "method": {"name": "test-smooth-ce",
              "params": {"smoothing": 0.3}}}  # fmt: skip
    plain = {"name": "lora/plain", "tuner": "lora", "params": {"r": 4}}
    CALLS["loss"] = 0
    result = run(_recipe(tmp_path / "out", [plain, smooth]), progress=False, verbose=False)
    assert result.ok, result.failed
    assert CALLS["loss"] == 3  # every training step of the smooth preset, none of the plain one
    a, b = (run_dir(tmp_path / "out", p, 2, 0) for p in ("lora/plain", "lora/smooth"))
    assert (
        json.loads((a / "episode.json").read_text())["ids"]
        == json.loads((b / "episode.json").read_text())["ids"]
    )
    record = json.loads((b / "metrics.json").read_text())
    assert (record["method"], record["method_params"], record["n_unlabelled"]) == (
        "test-smooth-ce", {"smoothing": 0.3}, 0)  # fmt: skip
    assert json.loads((a / "metrics.json").read_text())["method"] == "supervised"
    config = json.loads((b / "adapter" / "hfm_config.json").read_text())
    assert config["method"] == {"name": "test-smooth-ce", "params": {"smoothing": 0.3}, "n_unlabelled": 0}
    assert not np.allclose(
        read_predictions(a / "predictions.csv")[2], read_predictions(b / "predictions.csv")[2]
    )
    assert "Method: `test-smooth-ce` (smoothing=0.3); unlabelled examples used: 0" in str(render_card(b))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["method"] for r in summary["rows"]] == ["supervised", "test-smooth-ce"]
    table = (tmp_path / "out" / "summary.md").read_text().split("\n\n", 1)[1]
    assert table.strip() in str(
        render_card(tmp_path / "out")
    )  # one summary: the card shows the sweep's table


def test_a_method_that_reads_the_pool_gets_it_embedded(tmp_path: Path) -> None:
    preset = {"name": "probe/pool", "tuner": "probe", "method": "test-pool-size"}
    result = run(_recipe(tmp_path / "out", [preset]), progress=False, verbose=False)
    assert result.ok, result.failed
    folder = run_dir(tmp_path / "out", "probe/pool", 2, 0)
    drawn = json.loads((folder / "episode.json").read_text())
    assert drawn["pool"]["size"] == 3 * 6 - 3 * 2  # train minus the labelled examples (no groups here)
    assert json.loads((folder / "metrics.json").read_text())["n_unlabelled"] == drawn["pool"]["size"]


def test_a_trainable_tuner_gets_its_own_backbone_whatever_the_method_reads(tmp_path: Path) -> None:
    """A method on cached embeddings with a LoRA tuner: peft wraps a copy, never the sweep's shared backbone."""
    seen: list[bool] = []

    @register_method("test-embeddings-with-lora")
    class EmbeddingsWithLora(Supervised):
        needs = Needs(inputs="embeddings")

        def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
            seen.append(model.backbone is not ctx.backbone and not hasattr(ctx.backbone.model, "peft_config"))
            assert ctx.embeddings().of(ctx.draw.indices).shape[0] == len(ctx.draw.indices)
            return MethodResult(proba=ctx.predict(model, ctx.splits.test).double().numpy())

    preset = {"name": "lora/emb", "tuner": "lora", "params": {"r": 4}, "method": "test-embeddings-with-lora"}
    assert run(_recipe(tmp_path / "out", [preset]), progress=False, verbose=False).ok
    assert seen == [True]


def test_combinations_a_method_cannot_run_are_refused_before_any_run(tmp_path: Path) -> None:
    @register_method("test-images-only")
    class ImagesOnly(Supervised):
        needs = Needs(inputs="images")

    @register_method("test-bags")
    class Bags(Supervised):
        needs = Needs(unit="bag")

    for method, hint in (("test-images-only", "trains on images"), ("test-bags", "learns from bags")):
        preset = {"name": "probe/x", "tuner": "probe", "method": method}
        with pytest.raises(ConfigError, match=rf"presets\.0 \(probe/x\): method: .*{hint}"):
            run(_recipe(tmp_path / method, [preset]), progress=False, verbose=False)
        assert not (tmp_path / method / "probe").exists()
