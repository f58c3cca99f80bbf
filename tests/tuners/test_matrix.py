"""The (twin family x tuner x method) matrix: train a few steps, loss falls, only intended parameters change,
save + load_adapter gives identical predictions, and LoRA folders load with plain peft.

A new tuner adds its name to ``TUNERS`` (conftest); a new method that trains through :func:`hfm.train.fit` adds
its name to ``METHODS``; a method that also trains on an unlabelled pool adds its name to ``POOL_METHODS``.
"""

from __future__ import annotations

import math

import peft
import pytest
import torch
import torch.nn.functional as F

import hfm
from hfm.data.dataset import ImageDataset
from hfm.methods import get_method
from hfm.train import TrainConfig, fit

from .conftest import FAMILIES, TUNERS

LR = {"lora": 1e-2, "dora": 1e-2, "vpt": 5e-2, "full": 1e-3, "bitfit": 1e-2}
#: Methods whose training goes through train.fit with labelled images only.
METHODS = ("supervised",)
#: Methods that train end to end on labelled images and the unlabelled pool (rows of their own, with a pool).
POOL_METHODS = ("fixmatch",)
#: Trainable tensors that legitimately get no gradient in a classification forward pass.
UNUSED = ("mask_token", "pooler.")


def _batch(subset, backbone) -> tuple[torch.Tensor, torch.Tensor]:
    data = ImageDataset(subset, backbone.transform)
    images = torch.stack([data[i][0] for i in range(len(data))])
    return images, torch.as_tensor(subset.labels)


def _loss(model, images, labels) -> float:
    model.eval()
    with torch.no_grad():
        return float(F.cross_entropy(model(images), labels))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("tuner", TUNERS)
@pytest.mark.parametrize("family", list(FAMILIES))
def test_train_save_load(family: str, tuner: str, method: str, toy, tmp_path) -> None:
    torch.manual_seed(0)
    backbone = hfm.load_backbone(FAMILIES[family], twin=True)
    model = hfm.get_tuner(tuner)(backbone, 3)
    images, labels = _batch(toy, backbone)
    before_loss = _loss(model, images, labels)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainable = set(model.trainable_parameters())

    config = TrainConfig(
        epochs=3, batch_size=6, lr=LR.get(tuner), patience=None, progress=False, warmup_ratio=0
    )
    trainer = get_method(method)()
    trainer.check(type(model))
    fit(model, toy, None, config, loss=trainer.loss, method=method)

    after_loss = _loss(model, images, labels)
    assert after_loss < before_loss if tuner != "probe" else after_loss < math.log(3)
    changed = {k for k, v in model.state_dict().items() if k in before and not torch.equal(before[k], v)}
    buffers = {k for k, _ in model.named_buffers()}
    assert changed - buffers <= trainable, "a frozen parameter changed"
    unchanged = {k for k in trainable - changed if not any(u in k for u in UNUSED)}
    assert not unchanged, f"trainable parameters that did not train: {sorted(unchanged)[:5]}"

    folder = model.save(tmp_path / "adapter", metadata={"classes": ["r", "g", "b"], "seed": 0})
    loaded = hfm.load_adapter(folder)
    assert loaded.classes == ["r", "g", "b"]
    assert type(loaded) is type(model)
    assert torch.equal(model.predict_proba(images), loaded.predict_proba(images))

    if tuner in ("lora", "dora"):
        base = hfm.load_backbone(FAMILIES[family], twin=True)
        plain = peft.PeftModel.from_pretrained(base.model, str(folder))
        wrapped = model.backbone.model
        model.eval()
        with torch.no_grad():
            if base.family == "timm":
                expected, got = wrapped.forward_features(images), plain.forward_features(images)
            else:
                expected = wrapped(pixel_values=images).last_hidden_state
                got = plain(pixel_values=images).last_hidden_state
        assert torch.equal(expected, got)


@pytest.mark.parametrize("method", POOL_METHODS)
@pytest.mark.parametrize("tuner", [t for t in TUNERS if t != "probe"])
@pytest.mark.parametrize("family", ["timm-vit", "hf-dinov2"])
def test_pool_method_trains_save_load(family: str, tuner: str, method: str, toy, tmp_path) -> None:
    """Every trainable tuner with a method that reads an unlabelled pool: only its parameters train, and the
    saved adapter predicts exactly like the trained model."""
    from .conftest import toy_subset

    torch.manual_seed(0)
    backbone = hfm.load_backbone(FAMILIES[family], twin=True)
    model = hfm.get_tuner(tuner)(backbone, 3)
    images, _ = _batch(toy, backbone)
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    trainable = set(model.trainable_parameters())
    trainer = get_method(method)(threshold=0.0, mu=2)
    trainer.check(type(model))
    config = TrainConfig(
        epochs=2, batch_size=6, lr=LR.get(tuner), patience=None, progress=False, warmup_ratio=0
    )
    info = trainer.train(model, toy, None, toy_subset(6, seed=1), config)
    assert info["unlabelled_batch_size"] == 12 and info["steps"] == 4
    changed = {k for k, v in model.state_dict().items() if k in before and not torch.equal(before[k], v)}
    assert changed - {k for k, _ in model.named_buffers()} <= trainable, "a frozen parameter changed"
    assert changed & trainable, "nothing trained"
    loaded = hfm.load_adapter(
        model.save(tmp_path / "adapter", metadata={"classes": ["r", "g", "b"], "seed": 0})
    )
    assert torch.equal(model.predict_proba(images), loaded.predict_proba(images))
