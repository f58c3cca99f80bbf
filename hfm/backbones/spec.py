"""The backbone spec: the flat metadata that makes a foundation model load and behave right.

A spec is to hfm what ``pretrained_cfg`` is to timm: preprocessing, pooling and LoRA targets travel with the
model, so nothing downstream has to guess them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

Loader = Literal["timm", "transformers", "open_clip"]
Pooling = Literal["cls", "mean", "cls+mean", "pooler"]
Scaling = Literal["unit", "minmax"]
ResizeMode = Literal["shortest", "squash"]

LOADERS: tuple[str, ...] = ("timm", "transformers", "open_clip")
POOLINGS: tuple[str, ...] = ("cls", "mean", "cls+mean", "pooler")
SCALINGS: tuple[str, ...] = ("unit", "minmax")
RESIZE_MODES: tuple[str, ...] = ("shortest", "squash")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """Everything needed to load one backbone and use it exactly as its publishers intended.

    Attributes:
        name: Namespaced catalog name, e.g. ``pathology/uni``; for ad-hoc Hub models the Hub id itself.
        hub_id: Hugging Face Hub repository id.
        loader: Which library builds the model: ``timm``, ``transformers`` or ``open_clip``.
        architecture: The library-level architecture: a timm model name (``vit_large_patch16_224``), a
            transformers config ``model_type`` (``dinov2``), or an open_clip model name.
        revision: Pinned commit (or tag/branch). ``None`` means "whatever the Hub serves"; the commit actually
            downloaded is resolved and recorded wherever the backbone is used.
        loader_kwargs: Extra keyword arguments the publishers pass at load time. Callables are written as
            dotted import paths (``"timm.layers.SwiGLUPacked"``, ``"torch.nn.SiLU"``) and resolved on load.
        input_size: Square input resolution in pixels.
        mean: Per-channel normalisation mean.
        std: Per-channel normalisation standard deviation.
        interpolation: Resize interpolation (``bicubic``, ``bilinear``, ``nearest``).
        crop_pct: Resize to ``input_size / crop_pct`` then centre-crop ``input_size``.
        resize_mode: ``shortest`` resizes the short side (keeping the aspect ratio) then centre-crops, as
            torchvision's ``Resize(int)`` + ``CenterCrop``, timm's eval transform and the DINOv2/BiT processors
            do; ``squash`` resizes to the square whatever the aspect ratio, as the ViT and SigLIP processors and
            MedSAM's inference do. The two agree on square images.
        scaling: How resized pixels become numbers before ``mean``/``std``: ``unit`` divides by 255 (the
            usual ``ToTensor``); ``minmax`` maps each image's own minimum and maximum (over all channels) to
            0 and 1, as MedSAM's inference does.
        pooling: How the token sequence becomes one embedding.
        num_prefix_tokens: Class + register tokens at the start of the sequence (skipped by ``mean`` pooling).
        fc_norm: MAE-style pooling (RETFound): the model's final norm is removed, so tokens are the last
            block's output, and the pooled vector passes a fresh LayerNorm without affine (eps 1e-6), like
            ``fc_norm`` in MAE's ``models_vit.py`` with ``global_pool=True``.
        embed_dim: Size of the pooled embedding (twice the width for ``cls+mean``).
        lora_targets: Default LoRA target modules (a peft list of names, or one regex string).
        modality: ``pathology``, ``radiology``, ``ophthalmology``, ``multimodal``, ``general``, ...
        license: SPDX-like license id of the weights (``cc-by-nc-nd-4.0``, ``apache-2.0``, ...).
        gated: Whether the Hub repo requires accepting terms before download.
        trust_remote_code: Whether loading needs code from the Hub repo.
        params_m: Parameter count in millions (for display).
        citation: Short citation of the paper or model card.
        source: Where the loading facts come from (model card or code URL).
        provenance: Where each fact comes from, keyed by field name (``interpolation``, ``pooling`` ...;
            ``weights`` for the file format): a file and line, a model card or a config. Printed by
            ``hfm backbones show``; empty values are not allowed.
        description: One line on what the model is.
        twin: Overrides that shrink the architecture for the twin (width, depth, heads, image size).
        text_tower: For vision-language models, how their text tower loads (empty: image-only): ``library``
            (``open_clip`` or ``transformers``) and the facts its twin copies (``hf_model_name`` of an
            open_clip Hugging Face text model, ``context_length``, ``hf_proj_type``, ``hf_pooler_type``).
    """

    name: str
    hub_id: str
    loader: Loader
    architecture: str
    revision: str | None = None
    loader_kwargs: dict[str, Any] = field(default_factory=dict)
    input_size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 1.0
    resize_mode: ResizeMode = "shortest"
    scaling: Scaling = "unit"
    pooling: Pooling = "cls"
    num_prefix_tokens: int = 1
    fc_norm: bool = False
    embed_dim: int = 768
    lora_targets: tuple[str, ...] | str = ()
    modality: str = "general"
    license: str = "unknown"
    gated: bool = False
    trust_remote_code: bool = False
    params_m: float | None = None
    citation: str = ""
    source: str = ""
    provenance: dict[str, str] = field(default_factory=dict)
    description: str = ""
    twin: dict[str, Any] = field(default_factory=dict)
    text_tower: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.loader not in LOADERS:
            raise ValueError(f"backbone {self.name!r}: loader must be one of {LOADERS}, got {self.loader!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(
                f"backbone {self.name!r}: pooling must be one of {POOLINGS}, got {self.pooling!r}"
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"backbone {self.name!r}: mean and std need three values each")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(
                f"backbone {self.name!r}: resize_mode must be one of {RESIZE_MODES}, got {self.resize_mode!r}"
            )
        if self.scaling not in SCALINGS:
            raise ValueError(
                f"backbone {self.name!r}: scaling must be one of {SCALINGS}, got {self.scaling!r}"
            )
        if self.fc_norm and self.pooling != "mean":
            raise ValueError(f"backbone {self.name!r}: fc_norm applies to 'mean' pooling only")
        fields = {f.name for f in dataclasses.fields(self)} | {"weights"}
        unknown = sorted(set(self.provenance) - fields)
        if unknown or not all(self.provenance.values()):
            raise ValueError(f"backbone {self.name!r}: provenance keys must be spec fields, got {unknown}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready snapshot (tuples become lists)."""
        out = dataclasses.asdict(self)
        for key in ("mean", "std"):
            out[key] = list(out[key])
        if isinstance(out["lora_targets"], tuple):
            out["lora_targets"] = list(out["lora_targets"])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackboneSpec:
        """Rebuild a spec from :meth:`to_dict` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown backbone spec fields: {', '.join(unknown)}")
        kwargs = dict(data)
        for key in ("mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        if isinstance(kwargs.get("lora_targets"), list):
            kwargs["lora_targets"] = tuple(kwargs["lora_targets"])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> BackboneSpec:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)
