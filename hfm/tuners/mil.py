"""The MIL adapter: a frozen backbone, instance standardisation and a bag aggregator with its head.

It is the tuner of bag methods (``method: mil``): the backbone embeds every instance once (the sweep's cache),
and only the aggregator (:mod:`hfm.mil.aggregators`) trains. It saves, loads and publishes like every adapter;
called on a batch of images it reads them as one bag.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import nn

from hfm.errors import TunerError
from hfm.mil.aggregators import AGGREGATORS, Aggregator, build_aggregator
from hfm.tuners import register_tuner
from hfm.tuners.base import AdaptedModel, TunerConfig, positive


@dataclasses.dataclass
class MilConfig(TunerConfig):
    """MIL adapter parameters.

    Attributes:
        aggregator: ``abmil`` (gated attention), ``clam_sb`` (attention plus instance clustering), or the
            ``mean`` / ``max`` pooling baselines.
        hidden_dim: Size of the encoded instances.
        att_dim: Size of the attention network.
        dropout: Dropout on the encoded instances while training.
    """

    aggregator: Literal["abmil", "clam_sb", "mean", "max"] = "abmil"
    hidden_dim: int = 128
    att_dim: int = 64
    dropout: float = 0.25

    def check(self, tuner: str) -> None:
        positive(tuner, hidden_dim=self.hidden_dim, att_dim=self.att_dim)
        if self.aggregator not in AGGREGATORS:
            raise TunerError(f"tuner {tuner!r}: unknown aggregator {self.aggregator!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise TunerError(f"tuner {tuner!r}: parameter 'dropout' must be in [0, 1), got {self.dropout}")


@register_tuner("mil")
class MilModel(AdaptedModel):
    """Frozen backbone + standardisation + bag aggregator; fitted on cached instance embeddings."""

    config_cls = MilConfig
    config: MilConfig
    uses_embeddings = True
    frozen_backbone_mode = True
    aggregates_bags = True
    head: Aggregator
    feat_mean: torch.Tensor
    feat_std: torch.Tensor

    def __init__(self, backbone: Any, num_classes: int, **params: Any) -> None:
        super().__init__(backbone, num_classes, **params)
        dim = backbone.spec.embed_dim
        self.register_buffer("feat_mean", torch.zeros(dim))
        self.register_buffer("feat_std", torch.ones(dim))

    def build_head(self, in_features: int) -> nn.Module:
        cfg = self.config
        return build_aggregator(
            cfg.aggregator,
            in_features,
            self.num_classes,
            hidden_dim=cfg.hidden_dim,
            att_dim=cfg.att_dim,
            dropout=cfg.dropout,
        )

    def set_standardisation(self, instances: torch.Tensor) -> None:
        """Standardise instance embeddings with these (train) statistics from now on."""
        self.feat_mean.copy_(instances.mean(dim=0))
        if len(instances) > 1:
            self.feat_std.copy_(instances.std(dim=0).clamp_min(1e-6))
        else:
            self.feat_std.fill_(1.0)

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised embeddings (any leading shape)."""
        return (x.to(self.feat_mean.dtype) - self.feat_mean) / self.feat_std

    def bag_logits(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Bag logits ``[B, C]`` and instance weights ``[B, N]`` from raw embeddings ``[B, N, D]``."""
        return self.head.forward_with_attention(self.standardize(x.to(self.feat_mean.device)), mask)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits ``[1, C]`` of the batch of images read as one bag."""
        return self.bag_logits(self.backbone(images).unsqueeze(0))[0]
