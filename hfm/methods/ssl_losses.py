"""The small loss and mask cores of the end-to-end semi-supervised methods, each as its paper writes it.

Written here rather than taken from USB (``semilearn``): that library is heavy, stale on PyPI and wraps its
own models and training loop; hfm needs only these few tensor functions on its own models and loop.

Notation: ``q`` are the class probabilities of an unlabelled batch of ``mu * B`` examples under the weak view
(no gradient), ``q_hat = argmax q`` the pseudo-labels, ``logits`` the predictions the loss trains.

* Pseudo-labelling (Lee 2013, in USB's thresholded form): ``l_u = 1/(mu B) sum 1(max q >= tau) H(q_hat, p(x))``
  on the same (weak) view.
* FixMatch (Sohn et al. 2020, eq. 2): ``l_u = 1/(mu B) sum 1(max q_b >= tau) H(q_hat_b, p(y | A(u_b)))`` with
  ``q`` from the weak view and the loss on the strong view ``A(u_b)``.
* FreeMatch (Wang et al. 2023, eqs. 5-8): a self-adaptive threshold per class,
  ``tau_t = lam tau_{t-1} + (1 - lam) mean_b max q_b`` (global, from ``1/C``),
  ``p_t(c) = lam p_{t-1}(c) + (1 - lam) mean_b q_b(c)`` (local, from ``1/C``),
  ``tau_t(c) = p_t(c) / max_c' p_t(c') * tau_t``; an example counts when ``max q_b > tau_t(q_hat_b)``.
* FreeMatch's self-adaptive fairness (Wang et al. 2023, eqs. 9-11): with ``h_t = lam h_{t-1} + (1 - lam)
  Hist(q_hat)`` (the EMA of the weak views' normalised pseudo-label histogram, from ``1/C``), and over the
  *masked* examples of the batch the mean strong-view probability ``p_bar`` and the normalised histogram
  ``h_bar`` of the strong views' argmax, ``L_f = H(SumNorm(p_t / h_t), SumNorm(p_bar / h_bar))``, the
  cross-entropy of the batch's histogram-normalised mean prediction against the model's EMA. The paper writes
  it ``-H(.,.)`` with ``H(p, q) = sum p log q``; the authors' published code (TorchSSL/USB ``entropy_loss``,
  ``ent_loss_ratio`` 0.01 by default) minimises the same quantity with the usual sign. ``p_t / h_t`` and
  ``1 / h_bar`` carry no gradient; ``p_bar`` does. With no masked example the term is zero.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``1/N sum_b mask_b H(targets_b, softmax(logits_b))``: the mean over the *whole* batch, as the papers
    write it (examples below the threshold count as zeros, so a confident minority does not get a large weight).
    """
    per_example = F.cross_entropy(logits.float(), targets, reduction="none")
    return (per_example * mask.to(per_example.dtype)).mean()


def confident_mask(probs: torch.Tensor, threshold: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-labels ``argmax probs`` and the mask ``max probs >= threshold`` (FixMatch's ``1(max q_b >= tau)``).

    Args:
        probs: Class probabilities ``[N, C]`` (no gradient needed).
        threshold: A number, or one threshold per example ``[N]``.
    """
    confidence, targets = probs.max(dim=-1)
    return targets, confidence >= threshold


def fixmatch_loss(
    weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's unlabelled loss and its mask: targets from the weak view, cross-entropy on the strong view.

    With ``threshold = 0`` every example counts: plain cross-entropy on the weak view's argmax. With the same
    tensor as both views it is thresholded pseudo-labelling.
    """
    probs = weak_logits.detach().float().softmax(dim=-1)
    targets, mask = confident_mask(probs, threshold)
    return masked_cross_entropy(strong_logits, targets, mask), mask


class FreeMatchThreshold:
    """FreeMatch's self-adaptive thresholds: an EMA of the model's confidence, globally and per class.

    Holds state across steps; :meth:`state_dict` / :meth:`load_state_dict` let a checkpoint carry it, so a
    resumed run thresholds exactly as an uninterrupted one.

    Args:
        num_classes: Number of classes ``C`` (both EMAs start at ``1/C``).
        momentum: The EMA's ``lam`` (0.999 in the paper).
    """

    def __init__(self, num_classes: int, momentum: float = 0.999) -> None:
        self.num_classes = num_classes
        self.momentum = momentum
        self.global_threshold = torch.tensor(1.0 / num_classes)
        self.class_confidence = torch.full((num_classes,), 1.0 / num_classes)
        self.label_histogram = torch.full((num_classes,), 1.0 / num_classes)

    def update(self, probs: torch.Tensor) -> None:
        """One step of both EMAs from a batch's weak-view probabilities ``[N, C]``."""
        probs = probs.detach().float().cpu()
        lam = self.momentum
        self.global_threshold = lam * self.global_threshold + (1 - lam) * probs.max(dim=-1).values.mean()
        self.class_confidence = lam * self.class_confidence + (1 - lam) * probs.mean(dim=0)
        histogram = torch.bincount(probs.argmax(dim=-1), minlength=self.num_classes).float() / len(probs)
        self.label_histogram = lam * self.label_histogram + (1 - lam) * histogram

    def thresholds(self) -> torch.Tensor:
        """Per-class thresholds ``tau_t(c) = MaxNorm(p_t)(c) * tau_t``."""
        return self.class_confidence / self.class_confidence.max() * self.global_threshold

    def mask(self, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pseudo-labels and the mask ``max q_b > tau_t(argmax q_b)`` under the current thresholds."""
        confidence, targets = probs.max(dim=-1)
        per_class = self.thresholds().to(probs.device)
        return targets, confidence > per_class[targets]

    def state_dict(self) -> dict[str, Any]:
        return {
            "global_threshold": self.global_threshold.clone(),
            "class_confidence": self.class_confidence.clone(),
            "label_histogram": self.label_histogram.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.global_threshold = torch.as_tensor(state["global_threshold"]).clone()
        self.class_confidence = torch.as_tensor(state["class_confidence"]).clone()
        if "label_histogram" in state:  # checkpoints written before the fairness term lack it
            self.label_histogram = torch.as_tensor(state["label_histogram"]).clone()


def _sum_norm_over(values: torch.Tensor, histogram: torch.Tensor) -> torch.Tensor:
    """``SumNorm(values / histogram)``, classes with an empty histogram bin contributing zero."""
    scale = torch.where(histogram > 0, 1.0 / histogram.clamp_min(1e-12), torch.zeros_like(histogram))
    scaled = values * scale.detach()
    return scaled / scaled.sum().clamp_min(1e-12)


def freematch_fairness_loss(
    strong_logits: torch.Tensor,
    mask: torch.Tensor,
    class_confidence: torch.Tensor,
    label_histogram: torch.Tensor,
) -> torch.Tensor:
    """FreeMatch's self-adaptive fairness loss ``L_f`` (eqs. 9-11; see the module docstring).

    Args:
        strong_logits: Strong-view logits ``[N, C]`` of the unlabelled batch (the gradient flows through them).
        mask: Which examples passed the self-adaptive threshold ``[N]``.
        class_confidence: The EMA ``p_t`` of the weak views' mean probabilities ``[C]``.
        label_histogram: The EMA ``h_t`` of the weak views' pseudo-label histogram ``[C]``.

    Returns:
        A scalar; zero (with a zero gradient) when no example is masked in.
    """
    kept = strong_logits[mask.bool()].float()
    if len(kept) == 0:
        return strong_logits.float().sum() * 0.0
    probs = kept.softmax(dim=-1)
    num_classes = probs.shape[-1]
    batch_histogram = torch.bincount(probs.argmax(dim=-1), minlength=num_classes).to(probs.dtype) / len(probs)
    target = _sum_norm_over(class_confidence.to(probs).detach(), label_histogram.to(probs))
    prediction = _sum_norm_over(probs.mean(dim=0), batch_histogram)
    return -(target * torch.log(prediction + 1e-12)).sum()
