"""The loss and mask cores of pseudo-labelling, FixMatch and FreeMatch, against their papers' formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hfm.errors import MethodError
from hfm.methods import get_method
from hfm.methods.ssl_losses import (
    FreeMatchThreshold,
    fixmatch_loss,
    freematch_fairness_loss,
    masked_cross_entropy,
)
from hfm.methods.views import StrongAugment


def _logits(n: int = 8, c: int = 3, scale: float = 1.0, seed: int = 0) -> torch.Tensor:
    return scale * torch.randn(n, c, generator=torch.Generator().manual_seed(seed))


def test_no_unlabelled_example_above_the_threshold_gives_zero_loss_and_zero_gradient() -> None:
    weak = _logits(scale=0.1)  # max probability well below 0.9 for 3 classes
    assert weak.softmax(-1).max() < 0.9
    strong = _logits(seed=1).requires_grad_()
    loss, mask = fixmatch_loss(weak, strong, threshold=0.9)
    assert not mask.any() and loss.item() == 0.0
    loss.backward()
    assert strong.grad is not None and not strong.grad.any()


def test_threshold_zero_is_cross_entropy_on_the_weak_views_argmax() -> None:
    weak, strong = _logits(), _logits(seed=1)
    loss, mask = fixmatch_loss(weak, strong, threshold=0.0)
    assert mask.all()
    torch.testing.assert_close(loss, F.cross_entropy(strong, weak.argmax(-1)))


def test_the_mask_is_max_probability_at_or_above_tau_and_the_mean_runs_over_the_whole_batch() -> None:
    weak = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 5.0], [0.2, 0.0, 0.0]])
    strong = _logits(4, seed=2)
    loss, mask = fixmatch_loss(weak, strong, threshold=0.9)
    assert mask.tolist() == [True, False, True, False]
    per = F.cross_entropy(strong, torch.tensor([0, 1, 2, 0]), reduction="none")
    torch.testing.assert_close(loss, (per[0] + per[2]) / 4)  # 1/(mu B) sum over all, not over the kept ones
    torch.testing.assert_close(masked_cross_entropy(strong, weak.argmax(-1), torch.ones(4)), per.mean())


def test_freematch_thresholds_follow_the_papers_emas() -> None:
    ema = FreeMatchThreshold(num_classes=4, momentum=0.9)
    torch.testing.assert_close(ema.thresholds(), torch.full((4,), 0.25))  # tau_0 = 1/C, p_0 = 1/C
    probs = torch.tensor([[0.7, 0.1, 0.1, 0.1], [0.1, 0.6, 0.2, 0.1], [0.8, 0.1, 0.05, 0.05]])
    ema.update(probs)
    tau = 0.9 * 0.25 + 0.1 * (0.7 + 0.6 + 0.8) / 3
    local = 0.9 * torch.full((4,), 0.25) + 0.1 * probs.mean(0)
    torch.testing.assert_close(ema.global_threshold, torch.tensor(tau))
    torch.testing.assert_close(ema.class_confidence, local)
    torch.testing.assert_close(ema.thresholds(), local / local.max() * tau)
    targets, mask = ema.mask(probs)
    assert targets.tolist() == [0, 1, 0]
    assert mask.tolist() == (probs.max(-1).values > (local / local.max() * tau)[targets]).tolist()
    # the state survives a round trip (a checkpoint)
    other = FreeMatchThreshold(num_classes=4, momentum=0.9)
    other.load_state_dict(ema.state_dict())
    torch.testing.assert_close(other.thresholds(), ema.thresholds())


def test_freematch_with_no_confident_example_has_zero_unlabelled_loss() -> None:
    method = get_method("freematch")(momentum=0.0)  # thresholds jump to this batch's mean confidence
    uniform = torch.zeros(6, 3)
    strong = _logits(6).requires_grad_()
    loss = method.unlabelled_loss((uniform, strong))  # the logits of the weak and strong views
    assert loss.item() == 0.0  # every confidence equals the threshold: none is strictly above it


def test_freematch_fairness_loss_matches_a_hand_computed_value() -> None:
    # kept strong-view probabilities [0.8, 0.2], [0.4, 0.6], [0.9, 0.1]; the fourth example is masked out
    probs = torch.tensor([[0.8, 0.2], [0.4, 0.6], [0.9, 0.1], [0.01, 0.99]])
    logits = probs.log().requires_grad_()
    mask = torch.tensor([True, True, True, False])
    p_t, h_t = torch.tensor([0.7, 0.3]), torch.tensor([0.75, 0.25])
    loss = freematch_fairness_loss(logits, mask, p_t, h_t)
    # p_bar = [0.7, 0.3], h_bar = [2/3, 1/3] -> SumNorm(p_bar / h_bar) = [7/13, 6/13];
    # SumNorm(p_t / h_t) = SumNorm([14/15, 6/5]) = [7/16, 9/16]; L_f = -(7/16 log 7/13 + 9/16 log 6/13)
    expected = -(7 / 16 * math.log(7 / 13) + 9 / 16 * math.log(6 / 13))
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()
    assert logits.grad is not None and logits.grad[:3].abs().sum() > 0 and not logits.grad[3].any()
    # no example above the threshold: no fairness term
    zero = freematch_fairness_loss(logits, torch.zeros(4, dtype=torch.bool), p_t, h_t)
    assert zero.item() == 0.0


def test_freematch_keeps_an_ema_of_the_pseudo_label_histogram_and_adds_the_weighted_fairness_term() -> None:
    ema = FreeMatchThreshold(num_classes=2, momentum=0.5)
    ema.update(torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]]))  # pseudo-labels 0, 0, 1, 0
    torch.testing.assert_close(
        ema.label_histogram, torch.tensor([0.5 * 0.5 + 0.5 * 0.75, 0.5 * 0.5 + 0.5 * 0.25])
    )
    restored = FreeMatchThreshold(num_classes=2)
    restored.load_state_dict(ema.state_dict())
    torch.testing.assert_close(restored.label_histogram, ema.label_histogram)

    weak = torch.tensor([[3.0, 0.0], [2.5, 0.0], [0.0, 3.0], [0.1, 0.0]])
    strong = _logits(4, 2, seed=3)
    losses = {}
    for weight in (0.0, 0.5):
        method = get_method("freematch")(momentum=0.0, lambda_u=2.0, fairness_weight=weight)
        losses[weight] = method.unlabelled_loss((weak, strong))
    state = FreeMatchThreshold(num_classes=2, momentum=0.0)
    state.update(weak.softmax(-1))
    targets, mask = state.mask(weak.softmax(-1))
    assert mask.any()
    consistency = 2.0 * masked_cross_entropy(strong, targets, mask)
    fairness = freematch_fairness_loss(strong, mask, state.class_confidence, state.label_histogram)
    assert fairness.item() > 0
    torch.testing.assert_close(losses[0.0], consistency)
    torch.testing.assert_close(losses[0.5], consistency + 0.5 * fairness)


def test_fairness_weight_must_not_be_negative() -> None:
    with pytest.raises(MethodError, match="fairness_weight"):
        get_method("freematch")(fairness_weight=-0.1)


def _grey(size: int = 24) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(np.repeat(rng.integers(0, 255, (size, size, 1), dtype=np.uint8), 3, axis=2))


def test_strong_augmentation_is_medical_sane_by_default_and_configurable() -> None:
    strong = StrongAugment()
    assert "Color" not in strong.ops(grey=True) and "Color" in strong.ops(grey=False)
    assert not {"Solarize", "Posterize"} & set(strong.ops(grey=False))
    torch.manual_seed(0)
    for _ in range(20):  # a grey image stays grey under every op that may be drawn
        out = np.asarray(strong(_grey()))
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    trivial = StrongAugment({"policy": "trivialaugment", "exclude": []})
    assert "Solarize" in trivial.ops(grey=False)
    with pytest.raises(MethodError, match=r"strong_augment.exclude: .*unknown op 'Hue'"):
        get_method("fixmatch")(strong_augment={"exclude": ["Hue"]})
    with pytest.raises(MethodError, match=r"weak_augment.rotation"):
        get_method("fixmatch")(weak_augment={"rotation": 500})
    with pytest.raises(MethodError, match="threshold must lie in"):
        get_method("pseudo-label")(threshold=2.0)
