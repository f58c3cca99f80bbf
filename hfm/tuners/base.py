"""The one interface every tuner implements: a backbone plus a head that maps images to class logits.

An :class:`AdaptedModel` owns the backbone it is given (tuners may freeze it, wrap it with peft, or run its
blocks themselves), adds a linear classification head on the pooled embedding, and knows exactly which
parameters train. Saving writes an adapter folder (``hfm_config.json`` plus safetensors) atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hfm._fs import CONFIG_NAME, move_into_place
from hfm._params import TypedParams
from hfm.errors import HfmError, TunerError

if TYPE_CHECKING:
    from typing_extensions import Self

    from hfm.backbones.base import Backbone

WEIGHTS_NAME = "weights.safetensors"
FORMAT_VERSION = 1
_CORE_KEYS = (
    "hfm_version",
    "format_version",
    "tuner",
    "tuner_params",
    "num_classes",
    "backbone",
    "preprocessing",
)


@dataclasses.dataclass
class TunerConfig(TypedParams):
    """Base for the typed parameters of one tuner; subclasses are dataclasses with defaults for every field."""

    kind: ClassVar[str] = "tuner"
    error: ClassVar[type[HfmError]] = TunerError


def positive(tuner: str, **values: float | int) -> None:
    """Raise :class:`TunerError` unless every given value is > 0."""
    for name, value in values.items():
        if value <= 0:
            raise TunerError(f"tuner {tuner!r}: parameter {name!r} must be positive, got {value}")


class AdaptedModel(nn.Module):
    """A backbone adapted by one tuner, with a classification head.

    Subclasses set ``config_cls`` and implement :meth:`setup` (freeze / wrap the backbone); they may override
    :meth:`features` (how images become the pooled embedding) and the weight (de)serialisation.

    Attributes:
        tuner_name: Registry name (set by :func:`hfm.tuners.register_tuner`).
        config_cls: The tuner's typed parameters.
        uses_embeddings: True when the tuner is fitted on cached embeddings instead of by :func:`hfm.train.fit`.
        default_lr: Learning rate :func:`hfm.train.fit` uses when the training config leaves it unset.
        frozen_backbone_mode: Keep the backbone in eval mode while training (no dropout in frozen weights).
        ddp_find_unused: DDP must look for parameters that get no gradient (pooler layers in full tuning).
        backbone: The (possibly wrapped) backbone.
        head: Linear layer from the pooled embedding to class logits.
        classes: Class names recorded when saving (default ``"0"``, ``"1"``, ...).
    """

    tuner_name: ClassVar[str] = ""
    config_cls: ClassVar[type[TunerConfig]] = TunerConfig
    uses_embeddings: ClassVar[bool] = False
    default_lr: ClassVar[float] = 1e-3
    frozen_backbone_mode: ClassVar[bool] = False
    ddp_find_unused: ClassVar[bool] = False

    @classmethod
    def check_backbone(cls, backbone: Backbone) -> None:
        """Raise :class:`TunerError` if this tuner cannot adapt ``backbone`` (cheap: nothing is built).

        The runner calls it for every preset before a sweep writes anything; tuners that fit any backbone
        keep this default.
        """

    def __init__(self, backbone: Backbone, num_classes: int, **params: Any) -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise TunerError(f"tuner {self.tuner_name!r} needs at least 2 classes, got {num_classes}")
        self.config = self.config_cls.from_params(self.tuner_name, params)
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.classes = [str(i) for i in range(self.num_classes)]
        self.head = self.build_head(backbone.spec.embed_dim)
        self.setup()

    # -- construction -------------------------------------------------------------------------------------
    def build_head(self, in_features: int) -> nn.Module:
        """The classification head (small normal init, zero bias)."""
        head = nn.Linear(in_features, self.num_classes)
        nn.init.normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)
        return head

    def setup(self) -> None:
        """Freeze or wrap the backbone; the default freezes it entirely (only the head trains)."""
        self.backbone.requires_grad_(False)

    @property
    def params(self) -> dict[str, Any]:
        """The tuner parameters, JSON-ready (what ``hfm_config.json`` records)."""
        return self.config.to_dict()

    def train(self, mode: bool = True) -> Self:
        super().train(mode)
        if mode and self.frozen_backbone_mode:
            self.backbone.train(False)
        return self

    # -- inference ----------------------------------------------------------------------------------------
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled embedding ``[B, embed_dim]`` the head reads."""
        return self.backbone(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, num_classes]``."""
        return self.head(self.features(images))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def predict_proba(self, images: torch.Tensor) -> torch.Tensor:
        """Class probabilities ``[B, num_classes]`` (float32), computed in eval mode without gradients."""
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                logits = self(images.to(self.device))
            return logits.float().softmax(dim=-1)
        finally:
            self.train(was_training)

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class indices ``[B]``."""
        return self.predict_proba(images).argmax(dim=-1)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """Name to parameter for exactly the parameters that train."""
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    # -- weights ------------------------------------------------------------------------------------------
    def state_to_save(self) -> dict[str, torch.Tensor]:
        """Tensors that, loaded onto a freshly built model of the same tuner and backbone, restore this one."""
        state = {name: p.detach() for name, p in self.trainable_parameters().items()}
        for name, buffer in self.named_buffers():
            if not name.startswith("backbone."):
                state[name] = buffer.detach()
        return state

    def save_weights(self, folder: Path) -> None:
        """Write the weights into ``folder`` (already created)."""
        state = {k: v.to("cpu").contiguous().clone() for k, v in self.state_to_save().items()}
        save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "tuner": self.tuner_name})

    def load_weights(self, folder: Path) -> None:
        """Load weights written by :meth:`save_weights`; every expected tensor must be present."""
        path = folder / WEIGHTS_NAME
        if not path.is_file():
            raise TunerError(
                f"adapter folder {folder} has no {WEIGHTS_NAME}: it is incomplete; save it again"
            )
        self.load_tensors(load_file(str(path), device=str(self.device)))

    def load_tensors(self, state: dict[str, torch.Tensor]) -> None:
        """Load named tensors onto this model, refusing missing or unexpected names."""
        expected = set(self.state_to_save())
        missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
        if missing or unexpected:
            raise TunerError(
                f"adapter weights do not fit this {self.tuner_name!r} model (missing {missing[:3]}, "
                f"unexpected {unexpected[:3]}): was it saved by another tuner or backbone?"
            )
        own = self.state_to_save()
        wrong = [name for name in sorted(expected) if tuple(state[name].shape) != tuple(own[name].shape)]
        if wrong:
            name = wrong[0]
            raise TunerError(
                f"adapter weights do not fit this {self.tuner_name!r} model: {name} has shape "
                f"{tuple(state[name].shape)}, the model needs {tuple(own[name].shape)}; the adapter was saved "
                "for another backbone or another number of classes"
            )
        result = self.load_state_dict(state, strict=False)
        if result.unexpected_keys:  # pragma: no cover - guarded above
            raise TunerError(f"unexpected adapter tensors {result.unexpected_keys[:3]}")

    def save(self, folder: str | os.PathLike[str], metadata: dict[str, Any] | None = None) -> Path:
        """Write the adapter folder atomically: into a temporary sibling, then renamed into place.

        Args:
            folder: Destination; an existing adapter there is replaced only once the new one is complete.
            metadata: Extra ``hfm_config.json`` keys from the runner (``recipe``, ``seed``, ``k``, ``data``,
                ``metrics``, ``classes``, ...). The core keys cannot be overridden.

        Returns:
            The adapter folder.
        """
        folder = Path(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
        try:
            os.chmod(tmp, 0o755)
            self.save_weights(tmp)
            config = self.hfm_config(metadata)
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=False) + "\n")
            move_into_place(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return folder

    def hfm_config(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """The ``hfm_config.json`` content for this model."""
        from hfm import __version__

        extra = dict(metadata or {})
        clash = sorted(set(extra) & set(_CORE_KEYS))
        if clash:
            raise ValueError(f"metadata cannot override core adapter keys: {clash}")
        classes = [str(c) for c in extra.pop("classes", self.classes)]
        if len(classes) != self.num_classes:
            raise TunerError(f"{len(classes)} class names for a {self.num_classes}-class model")
        return {
            "hfm_version": __version__,
            "format_version": FORMAT_VERSION,
            "tuner": self.tuner_name,
            "tuner_params": self.params,
            "classes": classes,
            "num_classes": self.num_classes,
            "backbone": self.backbone.describe(),
            "preprocessing": self.backbone.transform.to_dict(),
            **extra,
        }
