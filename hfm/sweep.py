"""The layout of a sweep folder and the order of its runs: one home for what the runner, the report, the hub
folders and the cards all need to agree on.

A sweep is a grid of runs, one per :class:`RunKey` (preset, k, seed). Its folder ``OUT`` holds::

    OUT/recipe.yaml                   the resolved recipe (presets inlined, paths absolute)
    OUT/environment.json              library versions and hardware
    OUT/<preset>/k<k>/seed<seed>/     one run: adapter/, metrics.json, predictions.csv, episode.json
    OUT/.checkpoints/<run>/           a trained run's resumable checkpoint, until its folder is complete
    OUT/failures/<run>.txt            the traceback of each failed run
    OUT/summary.json|csv|md           preset x k, mean ± std over seeds, 95% bootstrap interval
    OUT/label_efficiency.png          the primary metric against k

k is ordered numerically with ``"all"`` last. The active-learning sampler is one more field of :class:`RunKey`;
the default sampler (``class-balanced``: exactly k random examples per class) keeps the paths above, any other
one adds a folder: ``OUT/<preset>/k<k>/<sampler>/seed<seed>/`` (its budget is k x the number of classes).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from hfm._fs import restore_aside

Shot = int | Literal["all"]

RUN_FILES = ("metrics.json", "predictions.csv", "episode.json", "adapter")
"""A run folder is complete when it holds all of these (it is renamed into place last)."""
CHECKPOINTS = ".checkpoints"
FAILURES = "failures"
PLOT_NAME = "label_efficiency.png"
SUMMARY_FILES = ("summary.json", "summary.csv", "summary.md")

_RUN_PATH = re.compile(r"^(?P<preset>.+)/k(?P<k>[^/]+)/seed(?P<seed>-?\d+)$")
_SAMPLER_RUN_PATH = re.compile(r"^(?P<preset>.+)/k(?P<k>[^/]+)/(?P<sampler>[^/]+)/seed(?P<seed>-?\d+)$")

DEFAULT_SAMPLER = "class-balanced"
"""The sampler of a run that names none: today's draw of exactly k random examples per class."""

T = TypeVar("T")


def k_order(k: Shot | str) -> float:
    """Sort key of a k: numbers in order, ``"all"`` (or any non-number) last."""
    if isinstance(k, int) and not isinstance(k, bool):
        return float(k)
    text = str(k)
    return float(text) if text.isdigit() else float("inf")


def sort_shots(shots: Iterable[T]) -> list[T]:
    """Shots in sweep order (``[8, "all", 1]`` -> ``[1, 8, "all"]``)."""
    return sorted(shots, key=k_order)  # type: ignore[arg-type]


def parse_k(text: str) -> Shot | str:
    """A k as written in a folder name or a table (``"8"`` -> 8; ``"all"`` stays a string)."""
    return int(text) if text.isdigit() else text


@dataclass(frozen=True)
class RunKey:
    """One run of a sweep.

    Attributes:
        preset: Preset name (``lora/r8-attn``); may contain ``/``, which become folders.
        k: Labelled examples per class.
        seed: Draw (and training) seed.
        sampler: Active-learning sampler that chose the labelled examples (default: exactly k per class).
    """

    preset: str
    k: Shot
    seed: int
    sampler: str = DEFAULT_SAMPLER

    @property
    def _parts(self) -> tuple[str, ...]:
        """The run's path parts below the sweep folder (the sampler only when it is not the default)."""
        middle = () if self.sampler == DEFAULT_SAMPLER else (self.sampler,)
        return (*self.preset.split("/"), f"k{self.k}", *middle, f"seed{self.seed}")

    @property
    def name(self) -> str:
        """The run's name in progress bars, failures and summaries: ``<preset>/k<k>[/<sampler>]/seed<seed>``."""
        return "/".join(self._parts)

    def folder(self, out_dir: Path) -> Path:
        """The run folder below the sweep folder."""
        return out_dir.joinpath(*self._parts)

    def checkpoint_dir(self, out_dir: Path) -> Path:
        """Where a trained run keeps its resumable checkpoint until its folder is complete."""
        return out_dir.joinpath(CHECKPOINTS, *self._parts)

    def failure_file(self, out_dir: Path) -> Path:
        """The traceback file of a failed run (one flat folder; ``/`` in preset names become ``__``)."""
        return out_dir / FAILURES / f"{'__'.join(self._parts)}.txt"


def grid(
    presets: Sequence[str],
    shots: Sequence[Shot],
    seeds: Sequence[int],
    label_free: Collection[str] = (),
    samplers: Sequence[str] = (DEFAULT_SAMPLER,),
) -> list[RunKey]:
    """Every run of a sweep in execution order: preset by preset, then k ascending, then sampler, then seed.

    A preset in ``label_free`` (its method needs no label: zero-shot) runs at k = 0 only, and k = 0 runs only
    those presets, with the default draw (no sampler chooses among zero labels).
    """
    return [
        RunKey(p, k, s, m)
        for p in presets
        for k in sort_shots(shots)
        if (k == 0) == (p in label_free)
        for m in ((DEFAULT_SAMPLER,) if k == 0 else samplers)
        for s in seeds
    ]


def run_dir(out_dir: Path, preset: str, k: Shot, seed: int) -> Path:
    """The folder of one run (``OUT/<preset>/k<k>/seed<seed>``)."""
    return RunKey(preset, k, seed).folder(out_dir)


def parse_run_path(relative: str) -> RunKey | None:
    """The run a folder path relative to the sweep folder names, or ``None`` when it names none."""
    match = _RUN_PATH.match(relative)
    if match is not None:
        return RunKey(match["preset"], parse_k(match["k"]), int(match["seed"]))  # type: ignore[arg-type]
    match = _SAMPLER_RUN_PATH.match(relative)
    if match is None:
        return None
    k = parse_k(match["k"])
    return RunKey(match["preset"], k, int(match["seed"]), match["sampler"])  # type: ignore[arg-type]


def is_finished(folder: Path) -> bool:
    """A run folder is finished when it exists under its final name with every file (it was renamed last)."""
    return folder.is_dir() and all((folder / name).exists() for name in RUN_FILES)


def clean_stale(out_dir: Path) -> None:
    """Remove half-written run folders left by an interrupted sweep (their names start with a dot), after
    renaming back any finished run a crash left aside mid-replacement (:func:`hfm._fs.restore_aside`)."""
    restore_aside(out_dir, "seed*")
    for tmp in out_dir.rglob(".seed*.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


__all__ = [
    "CHECKPOINTS",
    "DEFAULT_SAMPLER",
    "PLOT_NAME",
    "RUN_FILES",
    "RunKey",
    "Shot",
    "clean_stale",
    "grid",
    "is_finished",
    "k_order",
    "parse_k",
    "parse_run_path",
    "run_dir",
    "sort_shots",
]
