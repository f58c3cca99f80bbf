"""The federated recipe: sites, a shared backbone and preset, k per class at every site, and the strategy.

```yaml
name: fed-breastmnist
backbone: {name: radiology/rad-dino, twin: true}
data: {type: npz, path: ../shared/data/medmnist/breastmnist.npz}
split: {scheme: dirichlet, sites: 4, alpha: 0.5}     # simulated sites of one source
# partition: {by: hospital}                         # or one site per value of a column of the source
# sites: [{name: a, data: {...}}, {name: b, data: {...}}]   # or each site's own source
# sites: [{name: a, data: {...}, where: {hospital: A}}, ...] # or the rows of one value of a shared source
preset: probe/logreg
shots: [4]                                          # k per class, drawn at each site from its own train split
seeds: [0, 1, 2]
federation: {strategy: fedprox, proximal_mu: 0.1, rounds: 20}
```

Every key is checked, and every error is one line naming the file and the field, like :mod:`hfm.recipes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hfm import recipes
from hfm.errors import ConfigError
from hfm.metrics import METRICS
from hfm.recipes import BackboneBlock, HubTarget, Preset, distinct_seeds, known_metrics


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SplitBlock(_Strict):
    """One source split into simulated sites (see :func:`hfm.federated.sites.simulate`)."""

    scheme: Literal["iid", "dirichlet"] = "iid"
    sites: int = Field(ge=2, le=64)
    alpha: float = Field(0.5, gt=0)
    seed: int = Field(0, ge=0)


class PartitionBlock(_Strict):
    """One source partitioned by a column: one site per value (see :func:`hfm.federated.sites.by_column`).

    Attributes:
        by: The site column (hospital, scanner): an npz array ``{split}_<by>``, or a csv / dicom / hf column. It is
            separate from the source's group column, which still drives the leakage-safe split.
        values: The values that become sites, in this order (default: every value present, sorted). A real
            deployment lists them, since the server never reads the data.
    """

    by: str = Field(min_length=1)
    values: list[str] | None = Field(None, min_length=2)

    @field_validator("values", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value

    @field_validator("values")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"partition values must be distinct, got {value}")
        return value


class SiteSource(_Strict):
    """One site: its own data source, or the rows of a shared source whose columns have given values.

    Attributes:
        name: The site's name (stays local; the card states counts unless ``names_in_card``).
        data: The data block.
        where: Keep only the examples whose column has this value, e.g. ``{hospital: A}`` (columns as for
            :class:`PartitionBlock`).
    """

    name: str = Field(min_length=1, pattern=r"^[\w.\-]+$")
    data: dict[str, Any]
    where: dict[str, str] | None = Field(None, min_length=1)

    @field_validator("where", mode="before")
    @classmethod
    def _values_as_text(cls, value: Any) -> Any:
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else value


class FederationBlock(_Strict):
    """How the sites train together.

    Attributes:
        strategy: ``fedavg`` (weighted mean of the sites' adapters) or ``fedprox`` (the same mean; each site adds
            ``proximal_mu / 2 * ||w - w_global||^2`` to its loss, which holds skewed sites near the global model).
        proximal_mu: FedProx's proximal weight.
        rounds: Federated rounds.
        local_epochs: Epochs per round at each site for tuners trained end to end (LoRA, prompts, ...).
        local_steps: Full-batch steps per round at each site for the probe head (on the site's own embeddings).
        lr: Learning rate of the probe head's local steps (end-to-end tuners use the training block).
        l2: L2 strength of the probe head (on the mean loss).
        min_sites: Fewest sites whose update must arrive for a round to count.
        personal_head: Per-site heads (FedPer-style personalisation, a second way to cope with label skew): the
            head never leaves its site, only the rest of the adapter (LoRA matrices, prompts, biases) is averaged,
            and each site's adapter is the shared part with its own head. Needs a tuner trained end to end (the
            probe is only a head).
        names_in_card: State the site names in the card (default: counts only).
        engine: What runs the sites of ``hfm federate``: ``local`` (hfm's in-process grid, one site after another,
            deterministic, no extra dependency) or ``flower`` (Flower's simulation engine,
            ``flwr.simulation.run_simulation`` on Ray: one virtual SuperNode per site, sites train in parallel
            worker processes; needs ``hfm-hub[federated-ray]``). Both run the same ``ClientApp`` and strategy.
    """

    strategy: Literal["fedavg", "fedprox"] = "fedavg"
    proximal_mu: float = Field(0.0, ge=0)
    rounds: int = Field(10, ge=1)
    local_epochs: int = Field(1, ge=1)
    local_steps: int = Field(50, ge=1)
    lr: float = Field(0.05, gt=0)
    l2: float = Field(1e-3, ge=0)
    min_sites: int = Field(2, ge=1)
    personal_head: bool = False
    names_in_card: bool = False
    engine: Literal["local", "flower"] = "local"

    @model_validator(mode="after")
    def _mu_for_fedprox(self) -> FederationBlock:
        if self.strategy == "fedavg" and self.proximal_mu > 0:
            raise ValueError("proximal_mu applies to strategy fedprox only; set strategy: fedprox or drop it")
        if self.engine == "flower" and self.personal_head:
            raise ValueError(
                "personal_head runs on engine: local only (Flower's engine trains each site in a worker process "
                "that does not hand its own head back); drop one of them"
            )
        return self


class FederatedRecipe(_Strict):
    """A federated few-shot study (see the module docstring)."""

    name: str | None = None
    description: str = ""
    backbone: BackboneBlock
    data: dict[str, Any] | None = None
    split: SplitBlock | None = None
    partition: PartitionBlock | None = None
    sites: list[SiteSource] | None = None
    preset: str | Preset
    shots: list[int] = Field(min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    federation: FederationBlock = Field(default_factory=lambda: FederationBlock.model_validate({}))
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: list[str] = Field(default_factory=lambda: list(METRICS), min_length=1)
    primary_metric: str = "balanced_accuracy"
    bootstrap: int = Field(default=1000, ge=0)
    output: str | None = None
    hub: HubTarget | None = None

    @field_validator("backbone", mode="before")
    @classmethod
    def _backbone_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("shots", "seeds", mode="before")
    @classmethod
    def _one(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @field_validator("shots")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(isinstance(k, bool) or k < 1 for k in value) or len(set(value)) != len(value):
            raise ValueError(
                f"shots must be distinct positive integers (k per class at each site), got {value}"
            )
        return sorted(value)

    _seeds = field_validator("seeds")(staticmethod(distinct_seeds))
    _known_metrics = field_validator("metrics")(staticmethod(known_metrics))

    @model_validator(mode="after")
    def _sites_given_once(self) -> FederatedRecipe:
        shared = self.data is not None or self.split is not None or self.partition is not None
        if self.sites is not None and shared:
            raise ValueError(
                "give either sites (one data block per site) or data + split / partition, not both"
            )
        if self.split is not None and self.partition is not None:
            raise ValueError("give either split (simulated sites) or partition (one site per column value)")
        if self.sites is None and (self.data is None or (self.split is None and self.partition is None)):
            raise ValueError(
                "give sites (one data block per site), or data and split (simulated sites), "
                "or data and partition (one site per value of a column)"
            )
        if self.sites is not None:
            if len(self.sites) < 2:
                raise ValueError("a federation needs at least 2 sites")
            names = [s.name for s in self.sites]
            if len(set(names)) != len(names):
                raise ValueError(f"site names must be distinct, got {names}")
        if self.primary_metric not in self.metrics:
            raise ValueError(f"primary_metric {self.primary_metric!r} must be one of metrics {self.metrics}")
        if self.n_sites and self.federation.min_sites > self.n_sites:
            raise ValueError(
                f"federation.min_sites {self.federation.min_sites} exceeds the {self.n_sites} sites"
            )
        return self

    @property
    def n_sites(self) -> int:
        """How many sites the recipe names (0: a partition without listed values, known once data is read)."""
        if self.sites is not None:
            return len(self.sites)
        if self.partition is not None:
            return len(self.partition.values or [])
        return self.split.sites if self.split else 0

    @property
    def resolved_preset(self) -> Preset:
        if not isinstance(self.preset, Preset):
            raise ConfigError(
                f"preset {self.preset!r} was not resolved; load recipes with hfm.federated.load()"
            )
        return self.preset

    def output_dir(self) -> Path:
        """The study folder."""
        return Path(self.output) if self.output else Path("runs") / (self.name or "federated")


def parse(
    data: Any, *, source: str = "<recipe>", base_dir: Path | None = None, name: str | None = None
) -> FederatedRecipe:
    """Validate a federated recipe mapping; resolve its preset and the local paths of its data blocks."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: a federated recipe is a mapping with keys {', '.join(FederatedRecipe.model_fields)}"
        )
    base = (base_dir or Path.cwd()).resolve()
    try:
        recipe = FederatedRecipe.model_validate(data)
    except ValidationError as err:
        raise ConfigError(recipes._format_error(err, source, FederatedRecipe)) from None
    recipe.name = recipe.name or name or "federated"
    if isinstance(recipe.preset, str):
        try:
            recipe.preset = recipes.load_preset(recipe.preset, base_dir=base)
        except ConfigError as err:
            raise ConfigError(f"{source}: preset: {err}") from None
    recipes.validate_training(recipe.training, source, "training")
    if recipe.federation.personal_head:
        from hfm.tuners import get_tuner

        if get_tuner(recipe.resolved_preset.tuner).uses_embeddings:
            raise ConfigError(
                f"{source}: federation.personal_head: the {recipe.resolved_preset.tuner} tuner is only a head, so "
                "nothing would be shared; use a tuner trained end to end (lora, vpt, bitfit, full) or drop it"
            )
    if recipe.data is not None:
        recipe.data = recipes.validate_source(recipes._resolve_paths(recipe.data, base), source)
    for i, site in enumerate(recipe.sites or []):
        site.data = recipes.validate_source(recipes._resolve_paths(site.data, base), f"{source}: sites.{i}")
    return recipe


def load(path: str | Path) -> FederatedRecipe:
    """Load and validate a federated recipe YAML file (one-line :class:`ConfigError` on any problem)."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(f"{file}: is a folder; pass a federated recipe .yaml file")
    return parse(recipes._read_yaml(file), source=str(file), base_dir=file.resolve().parent, name=file.stem)


def data_blocks(recipe: FederatedRecipe) -> list[dict[str, Any]]:
    """Every data block the recipe reads (one, or one per site)."""
    return [recipe.data] if recipe.data is not None else [s.data for s in recipe.sites or []]


def check_paths(recipe: FederatedRecipe, source: str) -> None:
    """Local data paths must exist (a missing shared-data folder is a clear one-line error)."""
    for block in data_blocks(recipe):
        for key in recipes.path_keys(block):
            value = block.get(key)
            if isinstance(value, str) and Path(value).is_absolute() and not Path(value).exists():
                raise ConfigError(f"{source}: data.{key}: {value} does not exist")


def to_yaml(recipe: FederatedRecipe) -> str:
    """The resolved recipe as YAML (preset inlined, paths absolute), for ``OUT/recipe.yaml``."""
    import yaml

    return yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
