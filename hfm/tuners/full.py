"""Full fine-tuning: every backbone parameter and the head train (the strongest and costliest baseline)."""

from __future__ import annotations

import dataclasses

from hfm.tuners import register_tuner
from hfm.tuners.base import AdaptedModel, TunerConfig


@dataclasses.dataclass
class FullConfig(TunerConfig):
    """Full fine-tuning has no parameters of its own; the learning rate lives in the training config.

    Attributes:
        merged_from: Set when the weights came from merging another tuner (``lora``) into the backbone;
            recorded for provenance only.
    """

    merged_from: str | None = None


@register_tuner("full")
class FullModel(AdaptedModel):
    """Every parameter trains; the saved weights are the whole backbone plus the head."""

    config_cls = FullConfig
    default_lr = 1e-5
    ddp_find_unused = True

    def setup(self) -> None:
        self.backbone.requires_grad_(True)
