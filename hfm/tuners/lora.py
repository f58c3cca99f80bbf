"""LoRA and DoRA through peft, on the backbone's default target modules (from its spec) unless overridden.

peft has no default targets for timm models, so the spec supplies them (a regex on the attention blocks for
timm ViTs; ``q_proj``/``k_proj``/``v_proj`` for transformers 5 ViT/DINOv2). The classification head lives
outside peft and trains alongside; it is saved next to peft's own files, so the folder also loads with plain
``peft.PeftModel.from_pretrained(backbone.model, folder)``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from pathlib import Path
from typing import Any, cast

import peft
from safetensors.torch import load_file, save_file

from hfm.errors import TunerError
from hfm.tuners import register_tuner
from hfm.tuners.base import AdaptedModel, TunerConfig, positive

HEAD_NAME = "head.safetensors"
PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")


@dataclasses.dataclass
class LoraTunerConfig(TunerConfig):
    """LoRA parameters.

    Attributes:
        r: Rank of the update matrices.
        alpha: Scaling numerator (the update is scaled by ``alpha / r``).
        dropout: Dropout on the LoRA input.
        target_modules: Module names (a list) or one regex; ``None`` uses the backbone spec's ``lora_targets``.
    """

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | str | None = None

    def check(self, tuner: str) -> None:
        positive(tuner, r=self.r, alpha=self.alpha)
        if not 0.0 <= self.dropout < 1.0:
            raise TunerError(f"tuner {tuner!r}: parameter 'dropout' must be in [0, 1), got {self.dropout}")


@register_tuner("lora")
class LoraTuner(AdaptedModel):
    """Low-rank updates on the target modules of a frozen backbone, plus the head."""

    config_cls = LoraTunerConfig
    config: LoraTunerConfig
    default_lr = 5e-4
    use_dora = False

    def setup(self) -> None:
        spec = self.backbone.spec
        targets = self.config.target_modules
        if targets is None:
            targets = self.backbone.lora_targets
        if not targets:
            raise TunerError(
                f"backbone {spec.name!r} has no default LoRA targets: set 'target_modules' in the preset"
            )
        peft_config = peft.LoraConfig(
            r=self.config.r,
            lora_alpha=self.config.alpha,
            lora_dropout=self.config.dropout,
            target_modules=targets,
            use_dora=self.use_dora,
            bias="none",
        )
        self.backbone.requires_grad_(False)
        try:
            with warnings.catch_warnings():
                # transformers 5 deprecates the attribute peft still reads; nothing for a user to act on.
                warnings.filterwarnings(
                    "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
                )
                self.backbone.model = peft.get_peft_model(self.backbone.model, peft_config)
        except ValueError as err:  # peft's NoMatchingPeftModuleError is a ValueError
            raise TunerError(
                f"{self.tuner_name}: target modules {targets!r} match nothing in backbone {spec.name!r}: "
                "fix 'target_modules' in the preset"
            ) from err

    @property
    def peft_model(self) -> peft.PeftModel:
        """The peft wrapper around the library model."""
        model = self.backbone.model
        assert isinstance(model, peft.PeftModel)
        return model

    def save_weights(self, folder: Path) -> None:
        self.peft_model.save_pretrained(str(folder), safe_serialization=True)
        head = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.head.state_dict().items()}
        save_file(head, str(folder / HEAD_NAME), metadata={"format": "pt"})

    def load_weights(self, folder: Path) -> None:
        for name in (*PEFT_FILES, HEAD_NAME):
            if not (folder / name).is_file():
                raise TunerError(f"adapter folder {folder} has no {name}: it is incomplete; save it again")
        state = peft.utils.load_peft_weights(str(folder), device=str(self.device))
        result: Any = peft.set_peft_model_state_dict(self.peft_model, state)
        missing = [k for k in result.missing_keys if "lora_" in k]
        if missing or result.unexpected_keys:
            raise TunerError(
                f"LoRA weights in {folder} do not fit this backbone (missing {missing[:3]}, "
                f"unexpected {list(result.unexpected_keys)[:3]})"
            )
        self.head.load_state_dict(load_file(str(folder / HEAD_NAME), device=str(self.device)))

    def export_merged(self, folder: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
        """Write a plain adapter folder with the LoRA update merged into the backbone weights.

        The result is a ``full`` adapter (whole backbone + head as safetensors) that ``hfm.load_adapter``
        loads without peft; this model is left unchanged.
        """
        from hfm.tuners.full import FullModel

        backbone = copy.deepcopy(self.backbone)
        backbone.model = cast(peft.PeftModel, backbone.model).merge_and_unload()
        merged = FullModel(backbone, self.num_classes, merged_from=self.tuner_name)
        merged.head.load_state_dict(self.head.state_dict())
        merged.classes = list(self.classes)
        merged.to(self.device).eval()
        return merged.save(folder, metadata)


@register_tuner("dora")
class DoraTuner(LoraTuner):
    """DoRA (weight-decomposed low-rank adaptation): LoRA with a learned magnitude per output feature."""

    use_dora = True
