"""Text probe: a linear head on L2-normalised image embeddings that can start from class text embeddings.

The head reads ``normalise(embedding)``, the space a vision-language model compares images and text in. Set
from a :class:`~hfm.zeroshot.text.TextHead` (``weight = logit_scale * text``, ``bias = logit_bias``) it *is*
the zero-shot classifier; fitted on labelled embeddings it minimises cross-entropy plus
``0.5 * l2 * ||W - W_text||^2 + 0.5 * l2 * ||b - b_text||^2``, a pull toward the text-built weights whose
strength is chosen on the validation split (the text head itself, ``l2 = inf``, is one of the candidates). With
no text head the prior is zero and this is an ordinary L2-regularised probe on normalised features.

The head is fitted full-batch with L-BFGS, like :mod:`hfm.tuners.probe`; that module standardises features and
cannot express the zero-shot classifier, hence this one.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hfm.errors import TunerError
from hfm.metrics import score
from hfm.tuners import register_tuner
from hfm.tuners.base import AdaptedModel, TunerConfig, positive

if TYPE_CHECKING:
    from hfm.zeroshot.text import TextHead

DEFAULT_PULL_GRID: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


@dataclasses.dataclass
class TextProbeConfig(TunerConfig):
    """Text-probe parameters.

    Attributes:
        l2_grid: Strengths of the pull toward the text-built weights, tried from strongest to weakest.
        keep_text: Count the text head itself (no fit) among the candidates, so validation may keep zero-shot.
        max_iter: L-BFGS iterations per grid point.
        tol: Stop when the largest gradient entry falls below this.
        metric: Validation metric that picks the strength.
    """

    l2_grid: tuple[float, ...] = DEFAULT_PULL_GRID
    keep_text: bool = True
    max_iter: int = 200
    tol: float = 1e-4
    metric: Literal["accuracy", "balanced_accuracy"] = "balanced_accuracy"

    def check(self, tuner: str) -> None:
        positive(tuner, max_iter=self.max_iter, tol=self.tol)
        if not self.l2_grid or any(v < 0 for v in self.l2_grid):
            raise TunerError(f"tuner {tuner!r}: parameter 'l2_grid' needs non-negative values")


@register_tuner("text-probe")
class TextProbeModel(AdaptedModel):
    """Frozen backbone + L2 normalisation + linear head with a text-built prior, fitted on embeddings."""

    config_cls = TextProbeConfig
    config: TextProbeConfig
    uses_embeddings = True
    frozen_backbone_mode = True
    prior_weight: torch.Tensor
    prior_bias: torch.Tensor

    def __init__(self, backbone: Any, num_classes: int, **params: Any) -> None:
        super().__init__(backbone, num_classes, **params)
        dim = backbone.spec.embed_dim
        self.register_buffer("prior_weight", torch.zeros(num_classes, dim))
        self.register_buffer("prior_bias", torch.zeros(num_classes))
        self.fit_info: dict[str, Any] = {}
        self.text_info: dict[str, Any] = {}

    def build_head(self, in_features: int) -> nn.Module:
        head = nn.Linear(in_features, self.num_classes)
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        return head

    @property
    def linear(self) -> nn.Linear:
        """The head, typed as the linear layer it is."""
        assert isinstance(self.head, nn.Linear)
        return self.head

    def set_text_head(self, text: TextHead) -> None:
        """Make the head (and the prior it is pulled toward) the zero-shot classifier of ``text``."""
        weight = text.logit_scale * text.weight.float()
        if tuple(weight.shape) != tuple(self.linear.weight.shape):
            raise TunerError(
                f"text head is {tuple(weight.shape)}, the model's head {tuple(self.linear.weight.shape)}: "
                "the prompts' classes or the text tower do not fit this backbone"
            )
        with torch.no_grad():
            self.prior_weight.copy_(weight)
            self.prior_bias.fill_(float(text.logit_bias))
            self.linear.weight.copy_(weight)
            self.linear.bias.fill_(float(text.logit_bias))
        self.text_info = text.to_dict()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.backbone(images).float(), dim=-1)

    def predict_proba_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities from (cached) raw embeddings ``[N, embed_dim]``."""
        with torch.inference_mode():
            feats = F.normalize(x.float().to(self.prior_weight.device), dim=-1)
            return self.head(feats).float().softmax(dim=-1)

    def fit_embeddings(
        self,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        val_x: torch.Tensor | None = None,
        val_y: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Fit the head toward the labelled embeddings; choose the pull strength on validation.

        Returns:
            What was chosen: ``l2`` (``"inf"``: the text head kept), ``val_metric`` and every candidate's metric.
        """
        cfg = self.config
        device = self.prior_weight.device
        x = F.normalize(torch.as_tensor(train_x, dtype=torch.float32).to(device), dim=-1)
        y = torch.as_tensor(train_y, dtype=torch.long).to(device)
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise TunerError(f"text-probe: need train embeddings [N, D] with N labels, got {tuple(x.shape)}")
        has_val = val_x is not None and val_y is not None and len(val_y) > 0
        vx = vy = None
        if has_val:
            vx = F.normalize(torch.as_tensor(val_x, dtype=torch.float32).to(device), dim=-1)
            vy = torch.as_tensor(val_y, dtype=torch.long).to(device)
        grid: list[float] = sorted(cfg.l2_grid, reverse=True)
        if not has_val:
            grid = [grid[len(grid) // 2]]
        candidates: list[float] = ([math.inf] if cfg.keep_text and self.text_info and has_val else []) + grid

        def value() -> float:
            if vx is None or vy is None:
                return math.nan
            with torch.no_grad():
                return score(self.head(vx).argmax(-1), vy, cfg.metric, self.num_classes)

        best: tuple[float, float, dict[str, torch.Tensor]] | None = None
        scores: dict[str, float | None] = {}
        for l2 in candidates:
            with torch.no_grad():  # every strength starts from the prior (the text head, or zero)
                self.linear.weight.copy_(self.prior_weight)
                self.linear.bias.copy_(self.prior_bias)
            if math.isfinite(l2):
                self._lbfgs(x, y, l2)
            metric = value()
            scores[repr(l2)] = None if math.isnan(metric) else metric
            if best is None or metric > best[1]:  # ties keep the stronger pull
                best = (l2, metric, {k: v.detach().clone() for k, v in self.head.state_dict().items()})
        assert best is not None
        self.head.load_state_dict(best[2])
        self.fit_info = {
            "l2": "inf" if math.isinf(best[0]) else best[0],
            "val_metric": None if math.isnan(best[1]) else best[1],
            "metric": cfg.metric,
            "grid": scores,
            "text_init": bool(self.text_info),
        }
        return self.fit_info

    def _lbfgs(self, x: torch.Tensor, y: torch.Tensor, l2: float) -> None:
        head = self.linear
        params = [head.weight, head.bias]
        optimizer = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=self.config.max_iter,
            tolerance_grad=self.config.tol,
            tolerance_change=1e-9,
            history_size=10,
            line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            with torch.enable_grad():
                loss = F.cross_entropy(head(x), y)
                pull = (head.weight - self.prior_weight).pow(2).sum() + (head.bias - self.prior_bias).pow(
                    2
                ).sum()
                loss = loss + 0.5 * l2 * pull
                loss.backward()
            return loss.detach()

        with torch.enable_grad():
            head.requires_grad_(True)
            optimizer.step(closure)  # type: ignore[no-untyped-call]
        for p in params:
            p.grad = None

    def hfm_config(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        config = super().hfm_config(metadata)
        if self.text_info:
            config.setdefault("text_head", self.text_info)
        if self.fit_info:
            config.setdefault("probe_fit", self.fit_info)
        return config
