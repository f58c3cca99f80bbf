"""The training loop: determinism, resume, early stopping, NaN guard, probes on cached embeddings."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch

import hfm
from hfm.data import ImageDataset
from hfm.data.splits import Subset
from hfm.errors import TunerError
from hfm.train import TrainConfig, fit

BACKBONE = "pathology/kaiko-vitb16"


def _toy(n_per_class: int = 4, seed: int = 0) -> Subset:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(3), n_per_class)
    images = rng.integers(0, 90, size=(len(labels), 32, 32, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, :, :, label] += 150
    return Subset(ids=[f"toy/{i}" for i in range(len(labels))], labels=labels, reader=lambda i: images[i])


def _model(tuner: str = "lora", **params):
    torch.manual_seed(0)
    return hfm.get_tuner(tuner)(hfm.load_backbone(BACKBONE, twin=True), 3, **params)


def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_to_save().items()}


def test_config_is_typed_and_rejects_unknown_keys() -> None:
    with pytest.raises(pydantic.ValidationError, match="lerning_rate"):
        TrainConfig.model_validate({"lerning_rate": 1e-3})
    with pytest.raises(pydantic.ValidationError):
        TrainConfig(batch_size=0)
    assert TrainConfig().precision == "auto"


def test_same_seed_same_result_and_resume_matches_uninterrupted(tmp_path) -> None:
    """Augmented, dropout-using training: two runs agree bit for bit; an interrupted + resumed run too."""
    train = ImageDataset(_toy(), hfm.load_backbone(BACKBONE, twin=True).transform, augment=_flip)
    val = _toy(2, seed=1)
    config = dict(epochs=4, batch_size=4, grad_accum=2, progress=False, patience=None)

    reference = _model(dropout=0.1)
    result = fit(reference, train, val, TrainConfig(**config))
    assert result.epochs == 4 and result.steps == 4 * 2 and len(result.history) == 4

    again = _model(dropout=0.1)
    fit(again, train, val, TrainConfig(**config))
    assert all(
        torch.equal(a, b) for a, b in zip(_weights(reference).values(), _weights(again).values(), strict=True)
    )

    def interrupt(entry: dict) -> None:
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    ckpt = dict(config, checkpoint_dir=str(tmp_path / "ckpt"))
    with pytest.raises(KeyboardInterrupt):
        fit(_model(dropout=0.1), train, val, TrainConfig(**ckpt), on_epoch_end=interrupt)
    resumed_model = _model(dropout=0.1)
    resumed = fit(resumed_model, train, val, TrainConfig(**ckpt, resume=True))
    assert resumed.history == result.history
    for name, tensor in _weights(reference).items():
        assert torch.equal(tensor, _weights(resumed_model)[name]), name


def _flip(image):
    return image.transpose(0) if torch.rand(()) < 0.5 else image


def test_resume_refuses_another_config(tmp_path) -> None:
    config = dict(epochs=1, batch_size=6, progress=False, checkpoint_dir=str(tmp_path))
    fit(_model(), _toy(), None, TrainConfig(**config))
    with pytest.raises(TunerError, match="different training config"):
        fit(_model(), _toy(), None, TrainConfig(**dict(config, lr=0.5), resume=True))


def test_early_stopping_keeps_best_state() -> None:
    model = _model("bitfit")
    seen: list[dict] = []
    result = fit(
        model,
        _toy(),
        _toy(2, seed=1),
        TrainConfig(epochs=30, batch_size=6, lr=0.05, patience=2, metric="loss", progress=False),
        on_epoch_end=seen.append,
    )
    losses = [h["val_loss"] for h in result.history]
    assert result.best_metric == min(losses)
    assert result.stopped_early and result.epochs < 30
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert len(seen) == result.epochs


def test_nan_loss_stops_with_clear_error() -> None:
    model = _model("full")
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(TunerError, match="training loss became nan at step 1.*lower the learning rate"):
        fit(model, _toy(), None, TrainConfig(epochs=1, batch_size=6, progress=False))


def test_probe_fit_uses_cache_second_run_has_no_forward_passes() -> None:
    train, val = _toy(), _toy(2, seed=1)
    first = _model("probe")
    result = fit(first, train, val, TrainConfig(progress=False))
    assert result.extra["l2"] in first.config.l2_grid and result.best_metric is not None

    second = _model("probe")
    calls: list[int] = []
    second.backbone.register_forward_hook(lambda *_: calls.append(1))
    fit(second, train, val, TrainConfig(progress=False))
    assert calls == []
    images = torch.stack([second.backbone.transform(train.image(i)) for i in range(len(train))])
    assert torch.equal(first.predict(images), second.predict(images))
