"""BitFit: only bias terms and normalisation parameters of the backbone train, with the head.

After Ben Zaken et al., "BitFit: Simple parameter-efficient fine-tuning for transformer-based masked
language-models" (ACL 2022); normalisation scales and shifts are included as is common for ViTs.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from hfm.tuners import register_tuner
from hfm.tuners.base import AdaptedModel, TunerConfig

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm, nn.RMSNorm)


def is_norm(module: nn.Module) -> bool:
    """Whether a module is a normalisation layer (torch's own or a library's ``*Norm`` class)."""
    return isinstance(module, _NORMS) or type(module).__name__.endswith(("Norm", "Norm2d", "NormAct"))


@dataclasses.dataclass
class BitFitConfig(TunerConfig):
    """BitFit parameters.

    Attributes:
        norms: Also train normalisation weights (LayerNorm scale); biases always train.
    """

    norms: bool = True


@register_tuner("bitfit")
class BitFitModel(AdaptedModel):
    """Biases (and normalisation parameters) of the backbone plus the head train."""

    config_cls = BitFitConfig
    config: BitFitConfig
    default_lr = 1e-3
    ddp_find_unused = True

    def setup(self) -> None:
        self.backbone.requires_grad_(False)
        for module in self.backbone.modules():
            norm = self.config.norms and is_norm(module)
            for name, param in module.named_parameters(recurse=False):
                if name == "bias" or name.endswith("_bias") or norm:
                    param.requires_grad_(True)
