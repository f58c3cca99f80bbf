"""Linear probe: a frozen backbone and a logistic-regression head fitted on cached embeddings.

The head is fitted full-batch with L-BFGS in torch (on the GPU when there is one) on standardised features.
The L2 strength is chosen on the validation split from a small grid, walked from strong to weak
regularisation with warm starts, which makes the whole grid cost little more than one fit.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from hfm.errors import TunerError
from hfm.metrics import score
from hfm.tuners import register_tuner
from hfm.tuners.base import AdaptedModel, TunerConfig, positive

DEFAULT_GRID: tuple[float, ...] = (1.0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


@dataclasses.dataclass
class ProbeConfig(TunerConfig):
    """Probe parameters.

    Attributes:
        l2: Fixed L2 strength (on the mean loss; sklearn's ``C`` is ``1 / (l2 * n_train)``); ``None`` chooses
            it on the validation split from ``l2_grid``.
        l2_grid: Candidate strengths, tried from strongest to weakest.
        class_weight: ``"balanced"`` weighs classes inversely to their train frequency.
        hidden_dim: Fit a one-hidden-layer MLP head of this width instead of a linear one.
        max_iter: L-BFGS iterations per grid point.
        tol: Stop when the largest gradient entry falls below this (scikit-learn's default is the same).
        metric: Validation metric that picks the L2 strength.
        grid_patience: Stop walking the grid after this many grid points in a row that do not beat the best
            validation metric so far (the weak-regularisation end is the slowest to fit and rarely wins once
            validation accuracy has stopped improving); ``None`` walks the whole grid.
    """

    l2: float | None = None
    l2_grid: tuple[float, ...] = DEFAULT_GRID
    class_weight: Literal["balanced"] | None = None
    hidden_dim: int | None = None
    max_iter: int = 200
    tol: float = 1e-4
    metric: Literal["accuracy", "balanced_accuracy"] = "accuracy"
    grid_patience: int | None = 2

    def check(self, tuner: str) -> None:
        positive(tuner, max_iter=self.max_iter, tol=self.tol)
        if self.hidden_dim is not None:
            positive(tuner, hidden_dim=self.hidden_dim)
        if self.grid_patience is not None:
            positive(tuner, grid_patience=self.grid_patience)
        if self.l2 is not None and self.l2 < 0:
            raise TunerError(f"tuner {tuner!r}: parameter 'l2' must be >= 0, got {self.l2}")
        if not self.l2_grid or any(v < 0 for v in self.l2_grid):
            raise TunerError(f"tuner {tuner!r}: parameter 'l2_grid' needs non-negative values")


@register_tuner("probe")
class ProbeModel(AdaptedModel):
    """Frozen backbone + standardisation + logistic-regression (or MLP) head, fitted on embeddings."""

    config_cls = ProbeConfig
    config: ProbeConfig
    uses_embeddings = True
    frozen_backbone_mode = True
    feat_mean: torch.Tensor
    feat_std: torch.Tensor

    def __init__(self, backbone: Any, num_classes: int, **params: Any) -> None:
        super().__init__(backbone, num_classes, **params)
        dim = backbone.spec.embed_dim
        self.register_buffer("feat_mean", torch.zeros(dim))
        self.register_buffer("feat_std", torch.ones(dim))
        self.fit_info: dict[str, Any] = {}

    def build_head(self, in_features: int) -> nn.Module:
        hidden = self.config.hidden_dim
        if hidden is None:
            head = nn.Linear(in_features, self.num_classes)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
            return head
        return nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, self.num_classes))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.standardize(self.backbone(images))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Standardise embeddings with the train statistics."""
        return (x.to(self.feat_mean.dtype) - self.feat_mean) / self.feat_std

    def predict_proba_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """Class probabilities from (cached) embeddings ``[N, embed_dim]``."""
        with torch.inference_mode():
            return self.head(self.standardize(x.to(self.feat_mean.device))).float().softmax(dim=-1)

    def _penalty(self, head: nn.Module) -> torch.Tensor:
        weights = [m.weight for m in head.modules() if isinstance(m, nn.Linear)]
        return sum((w.pow(2).sum() for w in weights), torch.zeros((), device=weights[0].device))

    def fit_embeddings(
        self,
        train_x: torch.Tensor,
        train_y: torch.Tensor,
        val_x: torch.Tensor | None = None,
        val_y: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Fit the head on embeddings; choose the L2 strength on the validation embeddings.

        Returns:
            What was chosen: ``l2``, ``val_metric`` and the metric for every grid point.
        """
        cfg = self.config
        fit_device = torch.device("cuda") if torch.cuda.is_available() else self.feat_mean.device
        x = torch.as_tensor(train_x, dtype=torch.float32).to(fit_device)
        y = torch.as_tensor(train_y, dtype=torch.long).to(fit_device)
        if x.ndim != 2 or len(x) != len(y) or len(x) == 0:
            raise TunerError(f"probe: need train embeddings [N, D] with N labels, got {tuple(x.shape)}")
        if int(y.min()) < 0 or int(y.max()) >= self.num_classes:
            raise TunerError(f"probe: train labels must lie in 0..{self.num_classes - 1}")
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False).clamp_min(1e-6)
        x = (x - mean) / std
        weight = None
        if cfg.class_weight == "balanced":
            counts = torch.bincount(y, minlength=self.num_classes).float()
            weight = torch.where(counts > 0, len(y) / (self.num_classes * counts.clamp_min(1)), 0.0)
        has_val = val_x is not None and val_y is not None and len(val_y) > 0
        grid = [cfg.l2] if cfg.l2 is not None else sorted(cfg.l2_grid, reverse=True)
        if not has_val and cfg.l2 is None:
            grid = [grid[len(grid) // 2]]  # nothing to choose with: a middle strength
        vx = vy = None
        if has_val:
            vx = (torch.as_tensor(val_x, dtype=torch.float32).to(fit_device) - mean) / std
            vy = torch.as_tensor(val_y, dtype=torch.long).to(fit_device)

        head = self.head.to(fit_device)
        best: tuple[float, float, dict[str, torch.Tensor]] | None = None
        scores: dict[str, float | None] = {}
        # Warm starts suit the convex linear head; an MLP would collapse to zero under the strongest L2 and
        # never leave that saddle, so it restarts from its initial weights at every grid point.
        initial = {k: v.detach().clone() for k, v in head.state_dict().items()}
        worse = 0
        for l2 in grid:
            if cfg.hidden_dim is not None:
                head.load_state_dict(initial)
            self._lbfgs(head, x, y, weight, l2)
            if vx is not None and vy is not None:
                with torch.no_grad():
                    value = score(head(vx).argmax(-1), vy, cfg.metric, self.num_classes)
            else:
                value = math.nan
            scores[repr(l2)] = None if math.isnan(value) else value
            if best is None or value > best[1]:
                best = (l2, value, {k: v.detach().clone() for k, v in head.state_dict().items()})
                worse = 0
            else:  # no better than the best so far (ties keep the stronger, simpler model)
                worse += 1
                if cfg.grid_patience is not None and worse >= cfg.grid_patience:
                    break
        assert best is not None
        head.load_state_dict(best[2])
        device = self.feat_mean.device
        self.head.to(device)
        self.feat_mean.copy_(mean.to(device))
        self.feat_std.copy_(std.to(device))
        self.fit_info = {
            "l2": best[0],
            "val_metric": None if math.isnan(best[1]) else best[1],
            "metric": cfg.metric,
            "grid": scores,
        }
        return self.fit_info

    def _lbfgs(
        self, head: nn.Module, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, l2: float
    ) -> None:
        params = list(head.parameters())
        optimizer = torch.optim.LBFGS(
            params,
            lr=1.0,
            max_iter=self.config.max_iter,
            tolerance_grad=self.config.tol,
            tolerance_change=1e-9,
            history_size=10,
            line_search_fn="strong_wolfe",
        )
        sample_w = torch.ones(len(y), device=x.device) if weight is None else weight[y]
        sample_w = sample_w / sample_w.sum()
        onehot = F.one_hot(y, self.num_classes).to(x.dtype)
        linear = head if isinstance(head, nn.Linear) else None

        def closure() -> torch.Tensor:
            if linear is not None:  # closed-form gradient: no autograd overhead per evaluation
                with torch.no_grad():
                    logp = torch.log_softmax(torch.addmm(linear.bias, x, linear.weight.t()), dim=-1)
                    loss = -(sample_w * (logp * onehot).sum(-1)).sum() + 0.5 * l2 * linear.weight.pow(2).sum()
                    g = (logp.exp() - onehot) * sample_w[:, None]
                    linear.weight.grad = g.t() @ x + l2 * linear.weight
                    linear.bias.grad = g.sum(0)
                return loss
            optimizer.zero_grad()
            with torch.enable_grad():
                loss = F.cross_entropy(head(x), y, weight=weight) + 0.5 * l2 * self._penalty(head)
                loss.backward()
            return loss.detach()

        optimizer.step(closure)  # type: ignore[no-untyped-call]
        for p in params:
            p.grad = None

    def hfm_config(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        config = super().hfm_config(metadata)
        if self.fit_info:
            config.setdefault("probe_fit", self.fit_info)
        return config
