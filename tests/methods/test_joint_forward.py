"""The end-to-end semi-supervised methods forward the labelled images and all unlabelled views in ONE pass, so
BatchNorm sees one batch (its statistics and running statistics), and the losses equal the separate passes'
on a model without BatchNorm."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hfm.methods import get_method
from hfm.methods.ssl_losses import fixmatch_loss
from hfm.train import Batch, TrainConfig, cross_entropy

METHODS = {"pseudo-label": 1, "fixmatch": 2, "freematch": 2}  # name -> views per unlabelled example


def _model(batch_norm: bool) -> nn.Module:
    torch.manual_seed(0)
    norm: list[nn.Module] = [nn.BatchNorm2d(4)] if batch_norm else []
    return nn.Sequential(
        nn.Conv2d(3, 4, 3), *norm, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).train()


def _batch(views: int) -> Batch:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 8, 8, generator=generator)
    # the unlabelled images come from another distribution than the labelled ones (as a skewed pool would)
    unlabelled = tuple(torch.randn(8, 3, 8, 8, generator=generator) * 2 + 1 for _ in range(views))
    return Batch(images=images, labels=torch.tensor([0, 1, 2, 0]), unlabelled=unlabelled)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_forward_pass_per_step_so_batchnorm_sees_one_batch(name: str) -> None:
    model = _model(batch_norm=True)
    reference = copy.deepcopy(model)
    batch = _batch(METHODS[name])
    assert batch.unlabelled is not None
    calls: list[int] = []

    def forward(images: torch.Tensor) -> torch.Tensor:
        calls.append(len(images))
        return model(images)  # type: ignore[no-any-return]

    method = get_method(name)(threshold=0.0, mu=2)
    method.loss(forward, batch, TrainConfig(label_smoothing=0.1))
    assert calls == [4 + 8 * METHODS[name]]  # labelled + every view, one pass
    reference(torch.cat([batch.images, *batch.unlabelled]))
    for key in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(model[1].state_dict()[key], reference[1].state_dict()[key], rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_joint_pass_gives_the_separate_passes_loss_and_gradients_without_batchnorm(name: str) -> None:
    config = TrainConfig(label_smoothing=0.1)
    batch = _batch(METHODS[name])
    assert batch.unlabelled is not None
    params = {"threshold": 0.0, "mu": 2, "lambda_u": 0.7, "momentum": 0.5}

    joint_model = _model(batch_norm=False)
    joint = get_method(name)(**params).loss(joint_model, batch, config)
    joint.backward()

    # the same loss from one pass per part: the supervised part as hfm.train.cross_entropy computes it
    separate_model = _model(batch_norm=False)
    logits = tuple(separate_model(view) for view in batch.unlabelled)
    separate = cross_entropy(separate_model, batch, config) + get_method(name)(**params).unlabelled_loss(
        logits
    )
    separate.backward()

    torch.testing.assert_close(joint, separate)
    for (key, a), b in zip(joint_model.named_parameters(), separate_model.parameters(), strict=True):
        assert a.grad is not None and b.grad is not None and a.grad.abs().sum() > 0, key
        torch.testing.assert_close(a.grad, b.grad, msg=key)
    if (
        name == "fixmatch"
    ):  # and, spelt out from the loss core: CE + lambda_u * FixMatch(weak targets, strong)
        unlabelled = fixmatch_loss(logits[0].detach(), logits[1], threshold=0.0)[0]
        torch.testing.assert_close(joint, cross_entropy(separate_model, batch, config) + 0.7 * unlabelled)
