"""The pretrain recipe: starting backbone, images, objective, what adapts, schedule, monitor and output.

A pretrain recipe is a YAML file (or dict) validated by :class:`PretrainRecipe`; unknown keys are errors that
name the file and field, like every other hfm config.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hfm.errors import ConfigError, HfmError


class PretrainError(HfmError, ValueError):
    """Pretraining cannot start or continue (too few images, an architecture the objective cannot wrap, ...)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartBlock(_Strict):
    """The starting backbone: a loadable name, or a timm architecture built from scratch.

    Attributes:
        name: Anything :func:`hfm.load_backbone` accepts (catalog name, ``hf-hub:``, ``org/name``,
            ``local-dir:``); leave empty with ``architecture`` to start from random weights.
        twin: Load the catalog entry's tiny random twin (offline demos and tests).
        allow_pickle: Passed to :func:`hfm.load_backbone`.
        architecture: A timm architecture to build with random weights (``resnet18``, ``vit_tiny_patch16_224``).
        kwargs: Keyword arguments for ``timm.create_model`` (``img_size``, ``embed_dim``, ``depth`` ...).
        input_size: Input resolution of a from-scratch model (its preprocessing).
        mean: Normalisation mean of a from-scratch model.
        std: Normalisation standard deviation of a from-scratch model.
    """

    name: str | None = None
    twin: bool = False
    allow_pickle: bool = False
    architecture: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    input_size: int = Field(224, ge=8)
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    @model_validator(mode="after")
    def _one_start(self) -> StartBlock:
        if (self.name is None) == (self.architecture is None):
            raise ValueError("give exactly one of 'name' (a backbone to continue from) or 'architecture'")
        return self

    def label(self) -> str:
        """How the card and messages name the start."""
        if self.name is not None:
            return f"{self.name} (twin)" if self.twin else self.name
        return f"timm {self.architecture} (random init)"


class DinoBlock(_Strict):
    """DINO self-distillation (Caron et al. 2021) with lightly's head, loss and momentum update.

    Attributes:
        name: ``dino``.
        hidden_dim: Width of the projection head's hidden layers.
        bottleneck_dim: Width before the weight-normalised last layer.
        out_dim: Prototypes (softmax size).
        batch_norm: Batch norm in the head (useful for CNNs, off for ViTs).
        teacher_temp: Teacher softmax temperature after warm-up.
        warmup_teacher_temp: Teacher temperature at the start.
        warmup_teacher_temp_epochs: Epochs of linear teacher-temperature warm-up.
        student_temp: Student softmax temperature.
        center_momentum: Momentum of the teacher-output centre.
        momentum: Teacher EMA momentum at the start (cosine to ``momentum_end``).
        momentum_end: Teacher EMA momentum at the end.
        freeze_last_layer_epochs: Epochs with the head's last layer frozen (stabilises the start).
    """

    name: Literal["dino"] = "dino"
    hidden_dim: int = Field(512, ge=8)
    bottleneck_dim: int = Field(128, ge=4)
    out_dim: int = Field(2048, ge=4)
    batch_norm: bool = False
    teacher_temp: float = Field(0.04, gt=0)
    warmup_teacher_temp: float = Field(0.04, gt=0)
    warmup_teacher_temp_epochs: int = Field(0, ge=0)
    student_temp: float = Field(0.1, gt=0)
    center_momentum: float = Field(0.9, ge=0, lt=1)
    momentum: float = Field(0.996, ge=0, le=1)
    momentum_end: float = Field(1.0, ge=0, le=1)
    freeze_last_layer_epochs: int = Field(1, ge=0)


class MaeBlock(_Strict):
    """MAE masked reconstruction (He et al. 2022) for timm Vision Transformers, on lightly's masked-ViT wrappers.

    The ViT encodes the kept patches only; a new small decoder (dropped at export) predicts the pixels of the
    masked ones. One view per image (a random resized crop of ``views.global_scale`` and a horizontal flip);
    no teacher, so the exported network is the student.

    Attributes:
        name: ``mae``.
        mask_ratio: Share of the patches masked per image.
        decoder_dim: Token width of the decoder.
        decoder_depth: Transformer blocks of the decoder.
        decoder_heads: Attention heads of the decoder.
        decoder_mlp_ratio: MLP width of the decoder blocks, relative to ``decoder_dim``.
        norm_pix_loss: Normalise each target patch by its own mean and variance (the paper's better target).
    """

    name: Literal["mae"] = "mae"
    mask_ratio: float = Field(0.75, gt=0, lt=1)
    decoder_dim: int = Field(128, ge=8)
    decoder_depth: int = Field(2, ge=1)
    decoder_heads: int = Field(4, ge=1)
    decoder_mlp_ratio: float = Field(4.0, gt=0)
    norm_pix_loss: bool = True

    @model_validator(mode="after")
    def _heads_divide(self) -> MaeBlock:
        if self.decoder_dim % self.decoder_heads:
            raise ValueError("decoder_dim must be a multiple of decoder_heads")
        return self


Objective = Annotated[DinoBlock | MaeBlock, Field(discriminator="name")]


class ViewsBlock(_Strict):
    """Multi-crop views (lightly's DINO transform), with defaults that are sane for grey medical images.

    Hue, saturation, grey-scale conversion and solarisation are off: ultrasound and radiographs are grey, and
    inverting their intensities makes images that never occur.

    Attributes:
        global_crops: Global views per image (2 in DINO; the teacher sees only these).
        global_scale: Area range of the global random resized crops.
        local_crops: Local views per image (0 for plain two-crop DINO).
        local_size: Pixel size of the local views (default half the input size; ViTs without dynamic image
            size get their local views at the input size).
        local_scale: Area range of the local crops.
        hflip: Probability of a horizontal flip.
        vflip: Probability of a vertical flip.
        jitter_prob: Probability of brightness/contrast jitter.
        brightness: Brightness jitter strength.
        contrast: Contrast jitter strength.
        saturation: Saturation jitter strength (0 for grey images).
        hue: Hue jitter strength (0 for grey images).
        blur: Probabilities of Gaussian blur on the first global, second global and local views.
        sigmas: Blur sigma range, in pixels.
    """

    global_crops: Literal[2] = 2
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_crops: int = Field(6, ge=0, le=12)
    local_size: int | None = Field(None, ge=8)
    local_scale: tuple[float, float] = (0.1, 0.4)
    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)
    jitter_prob: float = Field(0.8, ge=0, le=1)
    brightness: float = Field(0.4, ge=0)
    contrast: float = Field(0.4, ge=0)
    saturation: float = Field(0.0, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)
    blur: tuple[float, float, float] = (0.5, 0.1, 0.3)
    sigmas: tuple[float, float] = (0.1, 1.0)


class AdaptBlock(_Strict):
    """What adapts during pretraining.

    Attributes:
        mode: ``all`` parameters; ``last_blocks`` (the last ``blocks`` blocks and the final norm); ``lora``
            (peft LoRA on the spec's targets, merged before export); ``explora`` (the last ``blocks`` blocks
            in full plus LoRA everywhere else, as in ExPLoRA).
        blocks: Blocks that adapt in full for ``last_blocks`` and ``explora``.
        r: LoRA rank.
        alpha: LoRA scaling numerator.
        head_warmup_epochs: Epochs that train only the new projection head, backbone frozen: continuing from
            public weights without the original heads collapses when random heads push the backbone first.
    """

    mode: Literal["all", "last_blocks", "lora", "explora"] = "all"
    blocks: int = Field(1, ge=1)
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    head_warmup_epochs: int = Field(0, ge=0)


class ScheduleBlock(_Strict):
    """How long and how fast.

    Attributes:
        epochs: Passes over the images.
        batch_size: Images per step and process.
        lr: Peak AdamW learning rate (after warm-up; cosine decay to ``min_lr``).
        min_lr: Learning rate at the end.
        warmup_epochs: Epochs of linear learning-rate warm-up.
        weight_decay: AdamW decay on matrices.
        max_grad_norm: Gradient clipping norm (``None``: none).
        precision: ``auto`` (bf16 on a capable GPU, fp32 on the CPU), ``fp32`` or ``bf16``.
        seed: Seed of the image order, the views and the heads' initialisation.
        num_workers: DataLoader worker processes making the views.
        progress: Show progress bars.
    """

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(5e-4, gt=0)
    min_lr: float = Field(1e-6, ge=0)
    warmup_epochs: int = Field(1, ge=0)
    weight_decay: float = Field(0.04, ge=0)
    max_grad_norm: float | None = Field(3.0, gt=0)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    progress: bool = True


class MonitorBlock(_Strict):
    """The no-harm gate and collapse detector, on the labelled train split (never val or test).

    Every ``every`` epochs the exported network (the teacher) embeds up to ``max_images`` train images with
    the backbone's own preprocessing; the score is leave-one-out cosine k-NN balanced accuracy on their labels.
    The best state is kept; training stops when the score falls below the starting backbone's by more than
    ``tolerance``, or when the embedding spread falls below ``min_spread`` (collapse).

    Attributes:
        enabled: Run the monitor.
        every: Epochs between checks.
        k: Neighbours of the k-NN vote.
        max_images: Train images scored (a stratified, seeded subsample).
        tolerance: How far below the starting score the score may fall before the gate stops the run.
        min_spread: Spread of the L2-normalised embeddings (std per dimension times sqrt(dim), 1 for isotropic
            embeddings) below which the embeddings count as collapsed.
    """

    enabled: bool = True
    every: int = Field(1, ge=1)
    k: int = Field(20, ge=1)
    max_images: int = Field(1000, ge=4)
    tolerance: float = Field(0.05, ge=0)
    min_spread: float = Field(0.02, ge=0)


class PretrainRecipe(_Strict):
    """A whole pretrain recipe.

    Attributes:
        name: Short name (the card's title).
        description: One line for the card.
        backbone: The starting backbone.
        data: A data source block (:func:`hfm.load_data`) or a list of them; only their train splits are
            read. Labels are ignored by the objective; the first source's feed the monitor.
        objective: The self-supervised objective: DINO (the default; ``name`` may be left out) or MAE.
        views: The augmented views.
        adapt: What adapts.
        schedule: Epochs, batch, learning rate, seed.
        monitor: The no-harm gate and collapse detector.
        export: Which network is exported: the EMA ``teacher`` (DINO's better one) or the ``student`` (the
            only one MAE has, and its default).
        output: The backbone folder to write.
    """

    name: str = "pretrain"
    description: str = ""
    backbone: StartBlock
    data: list[dict[str, Any]]
    objective: Objective = Field(default_factory=lambda: DinoBlock.model_validate({}))
    views: ViewsBlock = Field(default_factory=lambda: ViewsBlock.model_validate({}))
    adapt: AdaptBlock = Field(default_factory=lambda: AdaptBlock.model_validate({}))
    schedule: ScheduleBlock = Field(default_factory=lambda: ScheduleBlock.model_validate({}))
    monitor: MonitorBlock = Field(default_factory=lambda: MonitorBlock.model_validate({}))
    export: Literal["teacher", "student"] = "teacher"
    output: str = "runs/pretrain/backbone"

    @model_validator(mode="before")
    @classmethod
    def _dino_by_default(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and isinstance(data.get("objective"), dict)
            and "name" not in data["objective"]
        ):
            data = {**data, "objective": {**data["objective"], "name": "dino"}}
        return data

    @model_validator(mode="after")
    def _mae_exports_the_student(self) -> PretrainRecipe:
        if self.objective.name == "mae":
            if "export" in self.model_fields_set and self.export == "teacher":
                raise ValueError("objective mae has no teacher: export 'student'")
            self.export = "student"
        return self

    def fingerprint(self) -> str:
        """Hash of everything that changes the weights (a checkpoint only resumes the same pretraining)."""
        keep = self.model_dump(mode="json", exclude={"output", "description"})
        keep["schedule"].pop("progress", None)
        keep["schedule"].pop("num_workers", None)
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _location(err: ValidationError) -> str:
    first = err.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(top level)"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    return f"field '{field}': {message}"


def parse_recipe(
    data: Any, *, source: str = "pretrain recipe", base_dir: Path | None = None
) -> PretrainRecipe:
    """Validate a recipe dict; relative data paths and the output resolve against ``base_dir``.

    Raises:
        ConfigError: One line naming the source and the first bad field.
    """
    if isinstance(data, PretrainRecipe):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of recipe fields, got {type(data).__name__}")
    data = dict(data)
    if isinstance(data.get("backbone"), str):
        data["backbone"] = {"name": data["backbone"]}
    if isinstance(data.get("data"), dict):
        data["data"] = [data["data"]]
    if base_dir is not None and isinstance(data.get("data"), list):
        from hfm.recipes import _resolve_paths

        data["data"] = [_resolve_paths(dict(d), base_dir) if isinstance(d, dict) else d for d in data["data"]]
    try:
        recipe = PretrainRecipe.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"{source}: {_location(err)}") from err
    if not recipe.data:
        raise ConfigError(f"{source}: field 'data': give at least one data source")
    from hfm.recipes import validate_source

    recipe.data = [validate_source(dict(block), source) for block in recipe.data]
    return recipe


def load_recipe(path: str | Path) -> PretrainRecipe:
    """Read and validate a pretrain recipe YAML file (relative data paths resolve against its folder)."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"pretrain recipe {file} does not exist")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{file}: not valid YAML ({str(err).splitlines()[0]})") from err
    return parse_recipe(data, source=str(file), base_dir=file.parent)
