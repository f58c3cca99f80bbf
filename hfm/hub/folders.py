"""Read what a local folder holds before it is published: an adapter, one run, or a whole sweep.

* adapter folder: ``hfm_config.json`` plus weights (what ``AdaptedModel.save`` writes);
* run folder: ``adapter/``, ``metrics.json``, ``episode.json`` (and ``predictions.csv``, which stays local);
* sweep folder: ``recipe.yaml``, ``summary.*``, ``label_efficiency.png`` and ``<preset>/k<k>/seed<seed>/`` runs.

A sweep publishes one adapter (one preset, one k): by default the largest k of the preset that scores best there
on the primary metric, and the run of the lowest seed, not the best one (the card reports the mean over seeds).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hfm._fs import CONFIG_NAME
from hfm.errors import HubError
from hfm.sweep import PLOT_NAME, SUMMARY_FILES, k_order, parse_k, parse_run_path

# Files an adapter folder may publish (peft's own README.md is replaced by the card).
ADAPTER_SUFFIXES = (".json", ".safetensors")


@dataclass
class RunRecord:
    """One (preset, k, seed) run of a sweep, or a lone run folder."""

    preset: str
    k: int | str
    seed: int
    folder: Path | None
    metrics: dict[str, Any]

    @property
    def episode_file(self) -> Path | None:
        path = self.folder / "episode.json" if self.folder else None
        return path if path is not None and path.is_file() else None


@dataclass
class Publication:
    """Everything a card and a push need from a local folder.

    Attributes:
        kind: ``adapter``, ``run`` or ``sweep``.
        root: The folder the user named.
        adapter_dir: The adapter folder that is published.
        config: Its ``hfm_config.json``.
        runs: The runs behind the published numbers (every seed of the published preset and k, and for a
            sweep every other run too, for the summary table).
        preset: Preset of the published adapter.
        k: Shots per class of the published adapter.
        recipe: The recipe as a dict (from the sweep's ``recipe.yaml`` or the adapter config).
        plot: The label-efficiency plot, when there is one.
        extra_files: Further files to publish, ``{path_in_repo: local path}`` (metrics, episodes, summaries).
    """

    kind: str
    root: Path
    adapter_dir: Path
    config: dict[str, Any]
    runs: list[RunRecord] = field(default_factory=list)
    preset: str = ""
    k: int | str = ""
    recipe: dict[str, Any] = field(default_factory=dict)
    plot: Path | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    extra_files: dict[str, Path] = field(default_factory=dict)

    @property
    def tuner(self) -> str:
        return str(self.config.get("tuner", "unknown"))

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.config.get("backbone", {}).get("spec", {}))

    @property
    def seeds(self) -> list[int]:
        """Seeds of the published preset and k."""
        return sorted({r.seed for r in self.runs if r.preset == self.preset and str(r.k) == str(self.k)})

    def adapter_files(self) -> dict[str, Path]:
        """The adapter's own files at the repo root (so ``hfm.load_adapter(repo_id)`` finds them)."""
        out: dict[str, Path] = {}
        for path in sorted(self.adapter_dir.rglob("*")):
            if path.is_file() and path.suffix in ADAPTER_SUFFIXES:
                out[path.relative_to(self.adapter_dir).as_posix()] = path
        return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise HubError(f"cannot read {path}: {err}; re-run or re-save the adapter") from err
    if not isinstance(data, dict):
        raise HubError(f"{path} does not hold a JSON object; re-save the adapter")
    return data


def split_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The test-split metrics inside a ``metrics.json`` (flat, or under ``test``)."""
    inner = metrics.get("test")
    return inner if isinstance(inner, dict) else metrics


def _config_metrics(config: dict[str, Any]) -> dict[str, Any]:
    metrics = config.get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def _run_from_folder(folder: Path, config: dict[str, Any]) -> RunRecord:
    metrics_file = folder / "metrics.json"
    metrics = _read_json(metrics_file) if metrics_file.is_file() else _config_metrics(config)
    preset = str(config.get("preset") or config.get("tuner") or "adapter")
    match = parse_run_path("/".join(folder.parts[-3:])) if len(folder.parts) >= 3 else None
    if match and not config.get("preset"):
        preset = match.preset
    preset = str(metrics.get("preset") or preset)
    k = metrics.get("k", config.get("k", match.k if match else ""))
    seed = metrics.get("seed", config.get("seed", match.seed if match else 0))
    return RunRecord(preset=preset, k=parse_k(str(k)), seed=int(seed), folder=folder, metrics=metrics)


def _primary_metric(recipe: dict[str, Any]) -> str:
    return str(recipe.get("primary_metric") or "balanced_accuracy")


def _mean(runs: list[RunRecord], metric: str) -> float:
    values = [split_metrics(r.metrics).get(metric) for r in runs]
    finite = [float(v) for v in values if isinstance(v, (int, float))]
    return sum(finite) / len(finite) if finite else float("-inf")


def inspect_folder(
    folder: str | Path, *, preset: str | None = None, k: int | str | None = None, seed: int | None = None
) -> Publication:
    """Work out what ``folder`` is and what publishing it means.

    Args:
        folder: An adapter, run or sweep folder.
        preset: For a sweep, the preset to publish (default: the best one at the chosen k).
        k: For a sweep, the shots per class to publish (default: the largest).
        seed: For a sweep, the seed whose adapter is published (default: the lowest).

    Raises:
        HubError: When the folder holds no adapter or the choice does not exist.
    """
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        raise HubError(f"{folder} is not a folder; pass an adapter, run or sweep folder")
    if (root / CONFIG_NAME).is_file():
        config = _read_json(root / CONFIG_NAME)
        run = _run_from_folder(root, config)
        run.folder = None  # a bare adapter folder has no run files beside it
        return Publication(
            kind="adapter",
            root=root,
            adapter_dir=root,
            config=config,
            runs=[run] if run.metrics else [],
            preset=run.preset,
            k=run.k,
            recipe=dict(config.get("recipe") or {}),
        )
    if (root / "adapter" / CONFIG_NAME).is_file():
        config = _read_json(root / "adapter" / CONFIG_NAME)
        run = _run_from_folder(root, config)
        pub = Publication(
            kind="run",
            root=root,
            adapter_dir=root / "adapter",
            config=config,
            runs=[run],
            preset=run.preset,
            k=run.k,
            recipe=dict(config.get("recipe") or {}),
        )
        for name in ("metrics.json", "episode.json"):
            if (root / name).is_file():
                pub.extra_files[name] = root / name
        sweep_env = root.parents[2] / "environment.json" if len(root.parents) > 2 else None
        if sweep_env is not None and sweep_env.is_file():
            pub.environment = _read_json(sweep_env)
        return pub
    return _inspect_sweep(root, preset=preset, k=k, seed=seed)


def _inspect_sweep(root: Path, *, preset: str | None, k: int | str | None, seed: int | None) -> Publication:
    runs: list[RunRecord] = []
    for config_path in sorted(root.rglob(f"adapter/{CONFIG_NAME}")):
        run_dir = config_path.parent.parent
        if parse_run_path(run_dir.relative_to(root).as_posix()) is not None:
            runs.append(_run_from_folder(run_dir, _read_json(config_path)))
    if not runs:
        raise HubError(
            f"{root} holds no adapter: expected hfm_config.json, adapter/hfm_config.json or "
            "<preset>/k<k>/seed<seed>/adapter/ runs; train one with `hfm run RECIPE`"
        )
    recipe_file = root / "recipe.yaml"
    recipe: dict[str, Any] = {}
    if recipe_file.is_file():
        loaded = yaml.safe_load(recipe_file.read_text(encoding="utf-8"))
        recipe = loaded if isinstance(loaded, dict) else {}
    metric = _primary_metric(recipe)
    chosen_k = parse_k(str(k)) if k is not None else max((r.k for r in runs), key=k_order)
    at_k = [r for r in runs if str(r.k) == str(chosen_k)]
    if not at_k:
        raise HubError(f"no run with k={k} in {root}; available: {sorted({str(r.k) for r in runs})}")
    presets = sorted({r.preset for r in at_k})
    if preset is None:
        chosen_preset = max(presets, key=lambda p: _mean([r for r in at_k if r.preset == p], metric))
    elif preset in presets:
        chosen_preset = preset
    else:
        raise HubError(
            f"no run of preset {preset!r} at k={chosen_k} in {root}; available: {', '.join(presets)}"
        )
    group = sorted((r for r in at_k if r.preset == chosen_preset), key=lambda r: r.seed)
    picked = group[0] if seed is None else next((r for r in group if r.seed == seed), None)
    if picked is None or picked.folder is None:
        raise HubError(
            f"no seed {seed} for {chosen_preset} at k={chosen_k}; available: {[r.seed for r in group]}"
        )
    config = _read_json(picked.folder / "adapter" / CONFIG_NAME)
    pub = Publication(
        kind="sweep",
        root=root,
        adapter_dir=picked.folder / "adapter",
        config=config,
        runs=runs,
        preset=chosen_preset,
        k=chosen_k,
        recipe=recipe or dict(config.get("recipe") or {}),
        plot=root / PLOT_NAME if (root / PLOT_NAME).is_file() else None,
    )
    for run in group:
        assert run.folder is not None
        rel = run.folder.relative_to(root).as_posix()
        for name in ("metrics.json", "episode.json"):
            if (run.folder / name).is_file():
                pub.extra_files[f"runs/{rel}/{name}"] = run.folder / name
    if (root / "environment.json").is_file():
        pub.environment = _read_json(root / "environment.json")
    for name in (*SUMMARY_FILES, "recipe.yaml", "environment.json"):
        if (root / name).is_file():
            pub.extra_files[name] = root / name
    return pub
