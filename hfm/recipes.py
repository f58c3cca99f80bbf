"""Recipes and presets: typed schemas, YAML loading with one-line errors, preset resolution by name.

A *preset* (``adapters/<tuner>/<name>.yaml``) names a tuner, its hyper-parameters and training defaults that suit
it. A *recipe* names a backbone, a data source, one or several presets, the few-shot protocol (shots, seeds),
training settings, metrics, an output folder and optionally a Hub target. Unknown keys are errors everywhere, and
every error names the file, the field and what is allowed.

Presets are found by name (``lora/r8-attn``) in, in order: ``./adapters`` (the working directory), the
repository's ``adapters/`` (in a checkout) and the copy installed with the package (``hfm/_data/adapters``), so
recipes work outside a checkout. A preset may also be a path to a YAML file, or written inline in the recipe.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hfm.data.registry import get_source, list_sources, parse_source
from hfm.errors import ConfigError, TunerError
from hfm.metrics import METRICS
from hfm.policy import LoadPolicy
from hfm.sweep import DEFAULT_SAMPLER, Shot, grid, sort_shots
from hfm.tuners import is_known_tuner, list_tuners
from hfm.zeroshot.prompts import PromptsBlock, resolve_file

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ADAPTERS = PACKAGE_ROOT.parent / "adapters"
PACKAGE_ADAPTERS = PACKAGE_ROOT / "_data" / "adapters"


def distinct_seeds(value: list[int]) -> list[int]:
    """Validator of a ``seeds`` field: distinct non-negative integers."""
    if any(s < 0 for s in value) or len(set(value)) != len(value):
        raise ValueError(f"seeds must be distinct non-negative integers, got {value}")
    return value


def known_metrics(value: list[str]) -> list[str]:
    """Validator of a ``metrics`` field: names hfm computes."""
    for name in value:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}: use {', '.join(METRICS)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class MethodBlock(_Strict):
    """How a preset uses labelled and unlabelled data (see :mod:`hfm.methods`).

    Attributes:
        name: Registered method name (default ``supervised``: labelled examples only).
        params: Keyword arguments of the method.
    """

    name: str = Field(default="supervised", min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class Preset(_Strict):
    """A tuner with its hyper-parameters and training defaults, and the method that trains it.

    Attributes:
        name: ``<tuner>/<name>`` for shipped presets (the run folder name below the sweep folder).
        tuner: Registered tuner name.
        description: One line on what it is for.
        params: Keyword arguments of the tuner (rank, prompts, ...).
        training: Training defaults that suit this tuner (learning rate, epochs); the recipe's own
            ``training`` block overrides them key by key.
        method: How labelled and unlabelled data are used (a name, or ``{name, params}``); ``supervised``
            when absent, so presets of different methods compare on the same draws in one sweep.
    """

    name: str = Field(min_length=1)
    tuner: str
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    method: MethodBlock = Field(default_factory=MethodBlock)

    @field_validator("method", mode="before")
    @classmethod
    def _method_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _name_is_a_folder(cls, value: str) -> str:
        parts = value.split("/")
        if any(p in ("", ".", "..") for p in parts) or "\\" in value:
            raise ValueError(
                f"preset name {value!r} must be like 'lora/r8-attn' (no empty, '.' or '..' parts)"
            )
        return value

    @field_validator("tuner")
    @classmethod
    def _known_tuner(cls, value: str) -> str:
        if not is_known_tuner(value):  # imports no tuner module (nor peft) just to validate
            raise ValueError(f"unknown tuner {value!r}: use one of {', '.join(list_tuners())}")
        return value


class BackboneBlock(_Strict):
    """Which foundation model to adapt.

    Attributes:
        name: Catalog name (``radiology/rad-dino``), Hub id or ``hf-hub:``/``local-dir:`` reference.
        revision: Commit, tag or branch to pin (``None``: the catalog's pin, else what the Hub serves).
        twin: Use the tiny random-weight twin of the same family (offline smoke runs).
        trust_remote_code: Allow code from the Hub repo; only for models that need it, asked for by name.
        allow_pickle: Allow pickled weights (read with ``torch.load(weights_only=True)``) for models that
            publish no safetensors, asked for by name.
    """

    name: str = Field(min_length=1)
    revision: str | None = None
    twin: bool = False
    trust_remote_code: bool = False
    allow_pickle: bool = False

    @property
    def policy(self) -> LoadPolicy:
        """The revision and opt-ins as the one object the backbone loaders take."""
        return LoadPolicy(
            revision=self.revision, trust_remote_code=self.trust_remote_code, allow_pickle=self.allow_pickle
        )


class HubTarget(_Strict):
    """Where to publish the adapters of a sweep."""

    repo_id: str = Field(pattern=r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
    private: bool = True


class EmbeddingsBlock(_Strict):
    """How the frozen backbone embeds images for the probe (one extraction per sweep)."""

    batch_size: int = Field(default=64, gt=0)
    num_workers: int = Field(default=0, ge=0)


class BagsBlock(_Strict):
    """How a ``unit: bag`` recipe reads bags (each group of the data block is a bag).

    Attributes:
        labels: A bag-label table (CSV ``bag_id,label``; relative to the recipe): the label of every bag, for
            bags whose images do not share one label or have none. Without it a bag's label is its images'.
    """

    labels: str | None = None


class UnlabelledBlock(_Strict):
    """A separate source of unlabelled images for the semi-supervised methods (:mod:`hfm.data.unlabelled`).

    Attributes:
        data: Any data source block; ``{type: images, root: ...}`` reads a plain folder of images. Local paths
            are relative to the recipe. Its images join the draw's pool.
        max_images: At most this many of its images per run, sampled with the run's seed (default: all).
    """

    data: dict[str, Any]
    max_images: int | None = Field(default=None, ge=1)


class Recipe(_Strict):
    """A few-shot study: backbone x data x presets x shots x seeds.

    Attributes:
        name: Recipe name (default: the file name without ``.yaml``); the default output is ``runs/<name>``.
        description: What the study is for.
        backbone: The backbone block (a plain string is taken as its ``name``).
        data: The data source block (``{"type": "npz", "path": ...}``); local paths are relative to the recipe.
        presets: Preset names, YAML paths or inline presets (one or several).
        shots: Labelled examples per class, e.g. ``[1, 2, 4, 8, 16, "all"]``; ``0`` runs the presets whose
            method needs no label (zero-shot).
        seeds: Episode (and training) seeds.
        allow_fewer: Allow classes with fewer than k training examples (use them all) instead of failing.
        training: Training settings for the tuners that train end to end (override preset defaults).
        metrics: Metrics to report; ``primary_metric`` is the one tabulated first and plotted.
        bootstrap: Resamples of the test split for the 95% intervals (0: none).
        output: Sweep folder (relative to the working directory); default ``runs/<name>``.
        hub: Optional Hub target the adapters are published to.
        embeddings: Batch size and workers of the embedding extraction.
        unit: ``image`` (one label per image), or ``bag``: each group of the data block is a bag with one
            label, drawn k bags per class and learnt by a bag method (``method: mil``).
        bags: Where bag labels come from (``unit: bag``).
        prompts: Class prompts for methods that read text (zero-shot, text-init); see :mod:`hfm.zeroshot.prompts`.
        samplers: Active-learning samplers to compare (simulation: the known labels play the annotator). The
            default ``class-balanced`` is the draw of exactly k per class; any other sampler's budget is
            k x the number of classes labels in total.
        rounds: Query rounds each sampler's budget is spread over (``1``: all at once).
        labelled: A labels CSV (``id,label``, from ``hfm select``) that replaces every draw: the runs train on
            exactly those labels (recorded as k = ``all``).
        unlabelled: A separate source of unlabelled images added to each run's pool (semi-supervised methods).
    """

    name: str | None = None
    description: str = ""
    backbone: BackboneBlock
    data: dict[str, Any]
    presets: list[str | Preset] = Field(min_length=1)
    shots: list[Shot] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    allow_fewer: bool = False
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: list[str] = Field(default_factory=lambda: list(METRICS), min_length=1)
    primary_metric: str = "balanced_accuracy"
    bootstrap: int = Field(default=1000, ge=0)
    output: str | None = None
    hub: HubTarget | None = None
    embeddings: EmbeddingsBlock = Field(default_factory=EmbeddingsBlock)
    unit: Literal["image", "bag"] = "image"
    bags: BagsBlock = Field(default_factory=BagsBlock)
    prompts: PromptsBlock | None = None
    samplers: list[str] = Field(default_factory=lambda: [DEFAULT_SAMPLER], min_length=1)
    rounds: int = Field(default=1, ge=1)
    labelled: str | None = None
    unlabelled: UnlabelledBlock | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_top_level_group_key(cls, value: Any) -> Any:
        if isinstance(value, dict) and "group_key" in value:
            raise ValueError(
                "group_key: groups are named in the data block only (group_key for npz, group_column for "
                "csv, folder and hf sources) and honoured whenever the source has them; "
                "remove the top-level group_key"
            )
        return value

    @field_validator("backbone", mode="before")
    @classmethod
    def _backbone_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("presets", mode="before")
    @classmethod
    def _one_preset(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, dict)) else value

    @field_validator("shots", mode="before")
    @classmethod
    def _one_shot(cls, value: Any) -> Any:
        return [value] if isinstance(value, (int, str)) else value

    @field_validator("seeds", mode="before")
    @classmethod
    def _one_seed(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @field_validator("shots")
    @classmethod
    def _positive_shots(cls, value: list[Shot]) -> list[Shot]:
        for k in value:
            if k != "all" and (isinstance(k, bool) or k < 0):
                raise ValueError(f"shots must be non-negative integers or 'all' (0: zero-shot), got {k!r}")
        if len(set(value)) != len(value):
            raise ValueError("shots must not repeat")
        return sort_shots(value)

    _unique_seeds = field_validator("seeds")(staticmethod(distinct_seeds))
    _known_metrics = field_validator("metrics")(staticmethod(known_metrics))

    @field_validator("data")
    @classmethod
    def _typed_source(cls, value: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(value.get("type"), str):
            raise ValueError(f"the data block needs a 'type' ({', '.join(list_sources())})")
        return value

    @field_validator("samplers", mode="before")
    @classmethod
    def _one_sampler(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("samplers")
    @classmethod
    def _known_samplers(cls, value: list[str]) -> list[str]:
        from hfm.methods.samplers import get_sampler

        for name in value:
            get_sampler(name)  # MethodError (a ValueError) names the known samplers
        if len(set(value)) != len(value):
            raise ValueError("samplers must not repeat")
        return value

    @model_validator(mode="after")
    def _sampler_budgets(self) -> Recipe:
        if any(s != DEFAULT_SAMPLER for s in self.samplers) and "all" in self.shots:
            raise ValueError("shots: 'all' has no budget for a sampler; use numbers (labels per class)")
        if self.labelled and self.shots != ["all"]:
            raise ValueError("shots: a labelled set replaces the draw; set shots to [all]")
        return self

    @model_validator(mode="after")
    def _primary_in_metrics(self) -> Recipe:
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary_metric {self.primary_metric!r} must be one of metrics {self.metrics}")
        return self

    @property
    def resolved_presets(self) -> list[Preset]:
        """The presets as objects (inline ones as written; names resolved when the recipe was loaded)."""
        out: list[Preset] = []
        for p in self.presets:
            if isinstance(p, str):
                raise ConfigError(f"preset {p!r} was not resolved; load recipes with hfm.recipes.load()")
            out.append(p)
        return out

    def output_dir(self) -> Path:
        """The sweep folder."""
        return Path(self.output) if self.output else Path("runs") / (self.name or "recipe")


# ---- presets ---------------------------------------------------------------------------------------------
def preset_dirs(extra: Iterable[Path] = ()) -> list[Path]:
    """Folders searched for presets by name, most specific first (duplicates removed)."""
    candidates = [*extra, Path.cwd() / "adapters", REPO_ADAPTERS, PACKAGE_ADAPTERS]
    seen: set[Path] = set()
    out = []
    for folder in candidates:
        resolved = folder.resolve()
        if resolved not in seen and resolved.is_dir():
            seen.add(resolved)
            out.append(folder)
    return out


def list_presets() -> list[str]:
    """Every preset name findable from here, sorted."""
    names: set[str] = set()
    for folder in preset_dirs():
        for path in folder.rglob("*.yaml"):
            names.add(path.relative_to(folder).with_suffix("").as_posix())
    return sorted(names)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping; keep one", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read it ({err.strerror})") from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}; fix the YAML syntax") from None


def _format_error(err: ValidationError, source: str, model: type[BaseModel], prefix: str = "") -> str:
    """One line: file, dotted field path, what went wrong and what is allowed."""
    errors = err.errors()
    # A union (``str | Preset``) reports one error per member; the type mismatches are noise next to the
    # real problem in the member the value was meant for.
    mismatch = ("string_type", "int_type", "int_parsing", "model_type", "dict_type", "literal_error")
    relevant = [e for e in errors if e["type"] not in mismatch] or errors
    first = relevant[0]
    loc = [str(p) for p in first["loc"] if not str(p).startswith(("function-", "tagged-union"))]
    # pydantic names union members in the path (``presets.0.str``); keep the user's field names only.
    loc = [p for p in loc if p not in ("str", "Preset", "int", "literal['all']")]
    field = prefix + ".".join(loc) if loc else (prefix.rstrip(".") or "(top level)")
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        message = f"unknown key; allowed keys: {', '.join(allowed)}" if allowed else "unknown key"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = first["msg"].removeprefix("Value error, ")
    more = len(relevant) - 1
    tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{source}: {field}: {message}{tail}"


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> list[str]:
    """The field names of the (nested) model at ``loc``."""
    current: Any = model
    for part in loc:
        if part.isdigit():
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        nested = [
            a
            for a in (getattr(annotation, "__args__", None) or (annotation,))
            if isinstance(a, type) and issubclass(a, BaseModel)
        ]
        for arg in getattr(annotation, "__args__", ()) or ():
            nested += [
                a for a in getattr(arg, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)
            ]
        if not nested:
            return []
        current = nested[0]
    return list(getattr(current, "model_fields", {}))


def load_preset(name_or_path: str | Path, *, base_dir: Path | None = None) -> Preset:
    """A preset by name (``lora/r8-attn``) or by YAML path (absolute, or relative to ``base_dir``).

    Raises:
        ConfigError: When it cannot be found (lists the available names) or is invalid.
    """
    text = str(name_or_path)
    path: Path | None = None
    if text.endswith((".yaml", ".yml")):
        candidate = Path(text).expanduser()
        if not candidate.is_absolute() and base_dir is not None:
            candidate = base_dir / candidate
        path = candidate
        name = (
            candidate.stem
            if candidate.parent.name in ("", ".")
            else f"{candidate.parent.name}/{candidate.stem}"
        )
    else:
        name = text
        extra = [base_dir / "adapters"] if base_dir is not None else []
        for folder in preset_dirs(extra):
            candidate = folder / f"{name}.yaml"
            if candidate.is_file():
                path = candidate
                break
        if path is None:
            available = ", ".join(list_presets()) or "none found"
            raise ConfigError(
                f"preset {name!r} not found in ./adapters or the installed presets; use one of: {available}"
            )
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset is a mapping with keys tuner, params, training, description")
    data = {"name": name, **data}
    try:
        preset = Preset.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, str(path), Preset)) from None
    validate_training(preset.training, str(path), "training")
    return preset


# ---- recipes ---------------------------------------------------------------------------------------------
def path_keys(data: dict[str, Any]) -> list[str]:
    """Keys of a data block holding local paths: its source's fields typed ``Path`` (none if unknown)."""
    kind = data.get("type")
    return get_source(kind).path_fields() if isinstance(kind, str) and kind in list_sources() else []


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Make relative local paths of a source block absolute, relative to the recipe file's folder."""
    out = dict(data)
    for key in path_keys(data):
        value = out.get(key)
        if isinstance(value, str) and value and not value.startswith(("hf://", "http://", "https://")):
            expanded = Path(os.path.expanduser(value))  # every Path-typed source field is local
            out[key] = str(expanded if expanded.is_absolute() else (base_dir / expanded).resolve())
    return out


def validate_training(training: dict[str, Any], source: str, field: str) -> None:
    """Check a (partial) training block against :class:`hfm.train.TrainConfig` and its ``augment`` block.

    Every training setting has a default, so a partial block (a preset's defaults, a recipe's overrides) is
    checked on its own; merging two valid blocks gives a valid one.
    """
    from hfm.data.augment import AugmentConfig
    from hfm.train import TrainConfig

    settings = dict(training)
    augment = settings.pop("augment", None)
    for model, value, prefix in (
        (TrainConfig, settings, f"{field}."),
        (AugmentConfig, augment, f"{field}.augment."),
    ):
        if value is None:
            continue
        try:
            model.model_validate(value)
        except ValidationError as err:
            raise ConfigError(_format_error(err, source, model, prefix=prefix)) from None


def validate_source(data: dict[str, Any], source: str) -> dict[str, Any]:
    """Check a data block with its registered source's schema (:func:`hfm.data.registry.parse_source`).

    Returns the block as JSON-ready dict with defaults filled in, as it will be recorded in the run.
    """
    try:
        parsed = parse_source(data, where="data")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return parsed.model_dump(mode="json", exclude_none=True)


def parse(
    data: Any, *, source: str = "<recipe>", base_dir: Path | None = None, name: str | None = None
) -> Recipe:
    """Validate a recipe mapping, resolve its presets and local data paths.

    Args:
        data: The recipe as a mapping (YAML already parsed).
        source: What to call it in errors (the file path).
        base_dir: Folder relative paths (data, preset files) are resolved against; default the working directory.
        name: Default recipe name when the mapping has none.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a recipe is a mapping with keys {', '.join(Recipe.model_fields)}")
    base = (base_dir or Path.cwd()).resolve()
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_format_error(err, source, Recipe)) from None
    if recipe.name is None:
        recipe.name = name or "recipe"
    resolved: list[str | Preset] = []
    for i, preset in enumerate(recipe.presets):
        if isinstance(preset, Preset):
            resolved.append(preset)
            continue
        try:
            resolved.append(load_preset(preset, base_dir=base))
        except ConfigError as err:
            raise ConfigError(f"{source}: presets.{i}: {err}") from None
    names = [p.name for p in resolved if isinstance(p, Preset)]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise ConfigError(
            f"{source}: presets: {duplicate!r} appears twice; give inline presets distinct names"
        )
    recipe.presets = resolved
    validate_training(recipe.training, source, "training")
    recipe.data = validate_source(_resolve_paths(recipe.data, base), source)
    if recipe.unlabelled is not None:
        try:
            block = parse_source(_resolve_paths(recipe.unlabelled.data, base), where="unlabelled.data")
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
        recipe.unlabelled.data = block.model_dump(mode="json", exclude_none=True)
    if recipe.bags.labels is not None and not Path(recipe.bags.labels).is_absolute():
        recipe.bags.labels = str((base / os.path.expanduser(recipe.bags.labels)).resolve())
    if recipe.prompts is not None:
        recipe.prompts = resolve_file(recipe.prompts, base, source)
    if recipe.labelled:
        recipe.labelled = str((base / os.path.expanduser(recipe.labelled)).resolve())
    return recipe


def load(path: str | Path) -> Recipe:
    """Load and validate a recipe YAML file.

    Raises:
        ConfigError: One line with the file, the field path and what is allowed.
    """
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{file}: is a folder; pass a recipe .yaml file")
    data = _read_yaml(file)
    return parse(data, source=str(file), base_dir=file.resolve().parent, name=file.stem)


def to_yaml(recipe: Recipe) -> str:
    """The resolved recipe (presets inlined, paths absolute) as YAML, for ``OUT/recipe.yaml``."""
    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def with_overrides(
    recipe: Recipe,
    *,
    out: str | Path | None = None,
    shots: Iterable[Shot] | None = None,
    seeds: Iterable[int] | None = None,
    presets: Iterable[str] | None = None,
    twin: bool | None = None,
    labelled: str | Path | None = None,
) -> Recipe:
    """A copy of ``recipe`` with command-line overrides applied and re-validated.

    ``presets`` selects presets by name among the recipe's, or adds presets resolvable by name.
    """
    data = recipe.model_dump(mode="python")
    if out is not None:
        data["output"] = str(out)
    if shots is not None:
        data["shots"] = list(shots)
    if seeds is not None:
        data["seeds"] = list(seeds)
    if twin is not None:
        data["backbone"]["twin"] = twin
    if labelled is not None:
        data["labelled"] = str(Path(labelled).resolve())
        data["shots"] = ["all"]
    if presets is not None:
        own = {p["name"]: p for p in data["presets"]}
        chosen: list[Any] = []
        for name in presets:
            chosen.append(own[name] if name in own else load_preset(name).model_dump())
        data["presets"] = chosen
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise ConfigError(
            _format_error(err, f"recipe {recipe.name!r} (command-line override)", Recipe)
        ) from None


# ---- validation without running --------------------------------------------------------------------------
def check_backbone(block: BackboneBlock, source: str) -> str:
    """Check the backbone name: a catalog entry, an ``hf-hub:``/``local-dir:`` reference or an ``org/name`` id."""
    from hfm.backbones.catalog import UnknownBackboneError, find_spec, get_spec

    name = block.name
    if name.startswith("local-dir:"):
        folder = Path(name.removeprefix("local-dir:")).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"{source}: backbone.name: local folder {folder} does not exist")
        return name
    if name.startswith("hf-hub:"):
        return name
    try:
        spec = find_spec(name)
    except UnknownBackboneError as err:
        raise ConfigError(f"{source}: backbone.name: {err}") from None
    if spec is not None:
        return spec.name
    if block.twin:
        raise ConfigError(
            f"{source}: backbone.name: {name!r} is not a catalog entry, and twins exist only for catalog entries "
            "(`hfm backbones list`); drop twin: true or name a catalog entry"
        )
    if name.count("/") == 1 and all(name.split("/")):
        return name  # an ad-hoc Hub id; whether it exists is only known online
    try:
        get_spec(name)
    except UnknownBackboneError as err:
        raise ConfigError(f"{source}: backbone.name: {err}") from None
    return name  # pragma: no cover - get_spec raised


def check_presets(recipe: Recipe, source: str) -> None:
    """Check each preset's tuner and method parameters against their typed configs, and that they combine."""
    from hfm.errors import MethodError
    from hfm.methods import get_method
    from hfm.tuners import get_tuner

    for i, preset in enumerate(recipe.resolved_presets):
        tuner = get_tuner(preset.tuner)
        try:
            tuner.config_cls.from_params(preset.tuner, preset.params)
        except TunerError as err:
            raise ConfigError(f"{source}: presets.{i} ({preset.name}): params: {err}") from None
        try:
            method = get_method(preset.method.name)(**preset.method.params)
            method.check(tuner)
        except MethodError as err:
            raise ConfigError(f"{source}: presets.{i} ({preset.name}): method: {err}") from None
        if method.needs.unit != recipe.unit:
            raise ConfigError(
                f"{source}: presets.{i} ({preset.name}): method {preset.method.name!r} learns from "
                f"{method.needs.unit}s but the recipe's unit is {recipe.unit!r}: "
                + (
                    "set unit: bag and use method mil"
                    if method.needs.unit == "bag"
                    else "use method mil for bags"
                )
            )
    from hfm.zeroshot.checks import check_recipe

    check_recipe(recipe, source)


def check_data_paths(recipe: Recipe, source: str) -> None:
    """Local paths of the data block (and of the unlabelled source) must exist: a missing folder is a clear error."""
    blocks = [("data", recipe.data)]
    if recipe.unlabelled is not None:
        blocks.append(("unlabelled.data", recipe.unlabelled.data))
    for field, block in blocks:
        for key in path_keys(block):
            value = block.get(key)
            if isinstance(value, str) and Path(value).is_absolute() and not Path(value).exists():
                hint = (
                    " (the real data sets sit beside the checkout in ../shared/data; they are not part of hfm)"
                    if "shared" in Path(value).parts
                    else ""
                )
                raise ConfigError(f"{source}: {field}.{key}: {value} does not exist{hint}")


def check(path: str | Path) -> str:
    """Validate a recipe without running it; return a one-line description of what it would run.

    Checks the schema, that presets resolve and their parameters fit their tuners, the data source block, that
    local data paths exist, and that the backbone name is known. Nothing is downloaded or loaded.

    Raises:
        ConfigError: The first problem, in one line naming the file and the field.
    """
    recipe = load(path)
    source = str(path)
    backbone = check_backbone(recipe.backbone, source)
    check_presets(recipe, source)
    check_data_paths(recipe, source)
    from hfm.zeroshot.checks import label_free_presets

    n_runs = len(
        grid(
            [p.name for p in recipe.resolved_presets],
            recipe.shots,
            recipe.seeds,
            label_free_presets(recipe),
            recipe.samplers,
        )
    )
    twin = " (twin)" if recipe.backbone.twin else ""
    names = ", ".join(p.name for p in recipe.resolved_presets)
    shots = ",".join(str(k) for k in recipe.shots)
    return f"{backbone}{twin} on {recipe.data['type']} data; {names}; k={shots}; {len(recipe.seeds)} seed(s): {n_runs} runs"
