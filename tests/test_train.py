"""The training loop: determinism, resume, early stopping, NaN guard, probes on cached embeddings."""

from __future__ import annotations

import numpy as np
import pydantic
import pytest
import torch

import hfm
from hfm.data import ImageDataset
from hfm.data.splits import Subset
from hfm.errors import DataError, TunerError
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


class _Unlabelled(torch.utils.data.Dataset):
    """Pool images without their labels: ``(image, position)`` per example, as a semi-supervised method builds."""

    def __init__(self, subset: Subset, transform) -> None:
        self.images = ImageDataset(subset, transform)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i][0], i


def test_a_method_can_feed_an_unlabelled_loader_and_resume_exactly(tmp_path) -> None:
    """A toy entropy-minimisation method: every step sees an unlabelled batch; seeded; resumes exactly."""
    from hfm.train import Batch, cross_entropy

    transform = hfm.load_backbone(BACKBONE, twin=True).transform
    pool = _Unlabelled(_toy(3, seed=2), transform)
    seen: list[list[int]] = []

    def entropy_min(forward, batch: Batch, config: TrainConfig) -> torch.Tensor:
        assert batch.unlabelled is not None
        images, positions = batch.unlabelled
        assert images.shape == (4, 3, 32, 32)
        seen.append(positions.tolist())
        proba = forward(images).float().softmax(-1)
        entropy = -(proba * proba.clamp_min(1e-8).log()).sum(-1).mean()
        return cross_entropy(forward, batch, config) + 0.5 * entropy

    config = dict(epochs=3, batch_size=4, progress=False, patience=None)
    kwargs = dict(loss=entropy_min, method="entropy-min", unlabelled=pool, unlabelled_batch_size=4)
    reference = _model()
    fit(reference, _toy(), None, TrainConfig(**config), **kwargs)
    assert len(seen) == 3 * 3  # one unlabelled batch per labelled batch (12 labelled / 4, three epochs)
    # a fresh permutation of the 9-image pool per pass; batches never repeat an image within a pass
    assert sorted(seen[0] + seen[1]) == sorted(set(seen[0] + seen[1]))
    first = list(seen)
    seen.clear()
    plain = _model()
    fit(plain, _toy(), None, TrainConfig(**config))
    assert not seen
    after, base = _weights(reference), _weights(plain)
    assert any(not torch.equal(after[name], base[name]) for name in after)  # the unlabelled loss mattered

    def interrupt(entry: dict) -> None:
        if entry["epoch"] == 2:
            raise KeyboardInterrupt

    ckpt = dict(config, checkpoint_dir=str(tmp_path / "ckpt"))
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), _toy(), None, TrainConfig(**ckpt), on_epoch_end=interrupt, **kwargs)
    assert seen == first[:6]
    with pytest.raises(TunerError, match="different training config, tuner or method"):
        fit(_model(), _toy(), None, TrainConfig(**ckpt, resume=True))  # supervised cannot resume it
    resumed = _model()
    fit(resumed, _toy(), None, TrainConfig(**ckpt, resume=True), **kwargs)
    assert seen[6:] == first[6:]
    for name, tensor in _weights(reference).items():
        assert torch.equal(tensor, _weights(resumed)[name]), name
    with pytest.raises(DataError, match="unlabelled pool has 9 examples, fewer than one unlabelled batch"):
        fit(_model(), _toy(), None, TrainConfig(**config), **dict(kwargs, unlabelled_batch_size=10))
