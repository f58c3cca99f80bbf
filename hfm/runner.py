"""Run a recipe: one backbone load and one embedding extraction, then a run per (preset, k, seed), then a summary.

Layout of a sweep folder ``OUT``::

    OUT/recipe.yaml                   the resolved recipe (presets inlined, paths absolute)
    OUT/environment.json              library versions and hardware
    OUT/<preset>/k<k>/seed<seed>/     one run: adapter/, metrics.json, predictions.csv, episode.json
    OUT/failures/<run>.txt            the traceback of each failed run
    OUT/summary.json|csv|md           preset x k, mean ± std over seeds, 95% bootstrap interval
    OUT/label_efficiency.png          the primary metric against k

A run folder is written under a temporary name and renamed when complete, so ``resume=True`` skips exactly the
runs that finished and never trusts a half-written one. A failing run is recorded and the sweep goes on.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import platform
import shutil
import sys
import time
import traceback
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hfm import recipes
from hfm._fs import move_into_place
from hfm.errors import HfmError
from hfm.metrics import evaluate
from hfm.recipes import Preset, Recipe, Shot
from hfm.report import write_summary

RUN_FILES = ("metrics.json", "predictions.csv", "episode.json", "adapter")


@dataclass
class SweepResult:
    """What a sweep did.

    Attributes:
        out_dir: The sweep folder.
        summary: The aggregated table (``summary.json`` content plus ``table``, the Markdown text).
        finished: Run folders completed by this call.
        skipped: Run folders found complete and skipped (``resume``).
        failed: ``(run name, one-line error, traceback file)`` for each run that failed.
        seconds: Wall time of the sweep.
    """

    out_dir: Path
    summary: dict[str, Any]
    finished: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str, Path]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def run_dir(out_dir: Path, preset: str, k: Shot, seed: int) -> Path:
    """The folder of one run."""
    return out_dir / preset / f"k{k}" / f"seed{seed}"


def is_finished(folder: Path) -> bool:
    """A run folder is finished when it exists under its final name with every file (it was renamed last)."""
    return folder.is_dir() and all((folder / name).exists() for name in RUN_FILES)


def environment() -> dict[str, Any]:
    """Versions of Python, hfm and the libraries that shape results, plus the hardware."""
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for dist in ("hfm-hub", "torch", "timm", "transformers", "peft", "accelerate", "open_clip_torch",
                 "numpy", "scikit-learn", "datasets", "huggingface_hub", "safetensors"):  # fmt: skip
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
    }


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_predictions(
    path: Path, ids: Sequence[str], labels: np.ndarray, proba: np.ndarray, classes: Sequence[str]
) -> None:
    """``predictions.csv``: example id, true label (index and name), predicted class, one column per class."""
    pred = proba.argmax(axis=1)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["id", "label", "label_name", "predicted", "predicted_name", *[f"prob_{c}" for c in classes]]
        )
        for i, example_id in enumerate(ids):
            writer.writerow(
                [
                    example_id,
                    int(labels[i]),
                    classes[labels[i]],
                    int(pred[i]),
                    classes[pred[i]],
                    *[repr(float(p)) for p in proba[i]],
                ]  # fmt: skip
            )


def read_predictions(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Read ``predictions.csv`` back: ids, labels ``[N]`` and probabilities ``[N, C]``."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    prob_cols = [i for i, name in enumerate(header) if name.startswith("prob_")]
    ids = [r[0] for r in body]
    labels = np.array([int(r[1]) for r in body], dtype=np.int64)
    proba = np.array([[float(r[i]) for i in prob_cols] for r in body], dtype=np.float64)
    return ids, labels, proba


class _Sweep:
    """The state shared by every run of one sweep: the recipe, the data, one backbone, cached embeddings."""

    def __init__(self, recipe: Recipe, out_dir: Path, progress: bool, resume: bool = False) -> None:
        self.recipe = recipe
        self.out_dir = out_dir
        self.progress = progress
        self.resume = resume
        self.presets = recipe.resolved_presets
        self.recipe_dict = recipe.model_dump(mode="json")
        self._splits: Any = None
        self._backbone: Any = None
        self._embeddings: dict[str, torch.Tensor] | None = None
        self._train_rows: dict[int, int] = {}
        self.fit_info: dict[str, Any] = {}

    # -- shared, loaded once ------------------------------------------------------------------------------
    @property
    def splits(self) -> Any:
        if self._splits is None:
            from hfm.data import load_data

            self._splits = load_data(self.recipe.data)
        return self._splits

    @property
    def backbone(self) -> Any:
        """The backbone, loaded once per sweep; trained tuners get a deep copy, never this one."""
        if self._backbone is None:
            from hfm.backbones import load_backbone

            block = self.recipe.backbone
            self._backbone = load_backbone(block.name, twin=block.twin, policy=block.policy)
            self._backbone.eval()
        return self._backbone

    def embeddings(self) -> dict[str, torch.Tensor]:
        """Embeddings of val, test and the train examples any episode of the sweep uses, extracted once.

        Only the union of the sweep's episodes is embedded from the train split (episodes are cheap to draw),
        so a 1-to-16-shot study on a large pool does not embed the whole pool. The embeddings module caches
        each extraction on disk, keyed by backbone, preprocessing and data fingerprint.
        """
        if self._embeddings is None:
            from hfm.embeddings import extract

            splits = self.splits
            block = self.recipe.embeddings
            rows = sorted(
                {
                    int(i)
                    for k in self.recipe.shots
                    for s in self.recipe.seeds
                    for i in self.episode(k, s).indices
                }
            )
            self._train_rows = {row: pos for pos, row in enumerate(rows)}
            parts = {"train": splits.train.take(rows), "val": splits.val, "test": splits.test}
            self._embeddings = {
                name: extract(
                    self.backbone,
                    subset,
                    batch_size=block.batch_size,
                    num_workers=block.num_workers,
                    split=name,
                    progress=self.progress,
                )
                for name, subset in parts.items()
            }
        return self._embeddings

    # -- one run ------------------------------------------------------------------------------------------
    def episode(self, k: Shot, seed: int) -> Any:
        """The (preset-independent) episode: same k and seed give the same examples for every preset."""
        from hfm.data import episode

        return episode(
            self.splits, k, seed, group_key=self.recipe.group_key, allow_fewer=self.recipe.allow_fewer
        )

    def training_config(self, preset: Preset, seed: int) -> dict[str, Any]:
        """Training settings: the preset's defaults, overridden key by key by the recipe's, plus the seed."""
        return {**preset.training, **self.recipe.training, "seed": seed}

    def checkpoint_dir(self, preset: Preset, k: Shot, seed: int) -> Path:
        """Where a trained run keeps its resumable checkpoint until the run folder is complete."""
        return self.out_dir / CHECKPOINTS / preset.name / f"k{k}" / f"seed{seed}"

    def fit_and_predict(self, preset: Preset, ep: Any, seed: int) -> tuple[Any, np.ndarray]:
        """Build the tuner's model, fit it on the episode, and return it with test probabilities."""
        from hfm.tuners import get_tuner

        splits = self.splits
        tuner = get_tuner(preset.tuner)
        torch.manual_seed(seed)
        if tuner.uses_embeddings:
            emb = self.embeddings()
            rows = torch.as_tensor([self._train_rows[int(i)] for i in ep.indices], dtype=torch.long)
            model: Any = tuner(self.backbone, splits.num_classes, **preset.params)
            model.fit_embeddings(
                emb["train"][rows],
                torch.as_tensor(splits.train.labels[ep.indices]),
                emb["val"],
                torch.as_tensor(splits.val.labels),
            )
            self.fit_info = dict(getattr(model, "fit_info", {}) or {})
            proba = model.predict_proba_embeddings(emb["test"])
        else:
            from hfm.data import Augment, ImageDataset
            from hfm.train import TrainConfig, fit

            model = tuner(copy.deepcopy(self.backbone), splits.num_classes, **preset.params)
            settings = self.training_config(preset, seed)
            augment = settings.pop("augment", None)
            checkpoints = self.checkpoint_dir(preset, ep.k, seed)
            config = TrainConfig.model_validate(
                {
                    "progress": self.progress,
                    **settings,
                    # --resume continues an interrupted run from its last epoch (same result as uninterrupted).
                    "checkpoint_dir": str(checkpoints),
                    "resume": self.resume,
                }
            )
            train = ImageDataset(
                ep.subset(splits.train),
                self.backbone.transform,
                augment=Augment(augment) if augment is not None else None,
            )
            val = ImageDataset(splits.val, self.backbone.transform) if len(splits.val) else None
            self.fit_info = fit(model, train, val, config).to_dict()
            proba = self.predict_images(model, splits.test)
        return model, np.asarray(torch.as_tensor(proba).float().cpu().numpy(), dtype=np.float64)

    def predict_images(self, model: Any, subset: Any) -> torch.Tensor:
        from torch.utils.data import DataLoader

        from hfm.data import ImageDataset

        block = self.recipe.embeddings
        loader = DataLoader(
            ImageDataset(subset, self.backbone.transform),
            batch_size=block.batch_size,
            num_workers=block.num_workers,
            shuffle=False,
        )
        out = [model.predict_proba(batch[0]) for batch in loader]
        return torch.cat(out).cpu()

    def execute(self, preset: Preset, k: Shot, seed: int, final: Path, *, write: bool = True) -> None:
        """One run, written into a temporary folder renamed to ``final`` once everything is in it.

        Under a multi-process launch every process trains and evaluates (the collectives need them all), and
        only the main process writes (``write``).
        """
        splits = self.splits
        if not write:
            self.fit_and_predict(preset, self.episode(k, seed), seed)
            return
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        try:
            start = time.perf_counter()
            ep = self.episode(k, seed)
            ep.save(tmp / "episode.json")
            model, proba = self.fit_and_predict(preset, ep, seed)
            seconds = time.perf_counter() - start
            test = evaluate(
                splits.test.labels, proba, splits.classes,
                metrics=self.recipe.metrics, n_bootstrap=self.recipe.bootstrap, seed=seed,
            )  # fmt: skip
            write_predictions(
                tmp / "predictions.csv", splits.test.ids, splits.test.labels, proba, splits.classes
            )
            record = {
                "preset": preset.name,
                "tuner": preset.tuner,
                "k": k,
                "seed": seed,
                "n_train": len(ep.indices),
                "seconds": round(seconds, 3),
                "data_fingerprint": splits.fingerprint,
                "split": "test",
                "test": test,
                "fit": self.fit_info,
            }
            model.save(tmp / "adapter", metadata=self.adapter_metadata(preset, k, seed, test))
            _write_json(tmp / "metrics.json", record)
            move_into_place(tmp, final)
            shutil.rmtree(self.checkpoint_dir(preset, k, seed), ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def adapter_metadata(self, preset: Preset, k: Shot, seed: int, test: dict[str, Any]) -> dict[str, Any]:
        splits = self.splits
        return {
            "classes": list(splits.classes),
            "recipe": self.recipe_dict,
            "recipe_name": self.recipe.name,
            "preset": preset.name,
            "seed": seed,
            "k": k,
            "data": {
                "fingerprint": splits.fingerprint,
                "source": splits.source,
                "group_key": self.recipe.group_key,
                "split_info": splits.split_info,
            },
            "metrics": {"test": {key: test[key] for key in (*self.recipe.metrics, "n", "ci") if key in test}},
        }


CHECKPOINTS = ".checkpoints"


def _run_name(preset: str, k: Shot, seed: int) -> str:
    return f"{preset}/k{k}/seed{seed}"


def _failure_path(out_dir: Path, preset: str, k: Shot, seed: int) -> Path:
    return out_dir / "failures" / f"{preset.replace('/', '__')}__k{k}__seed{seed}.txt"


def _clean_stale(out_dir: Path) -> None:
    """Remove half-written run folders left by an interrupted sweep (their names start with a dot)."""
    for tmp in out_dir.rglob(".seed*.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    for old in out_dir.rglob(".seed*.old-*"):
        shutil.rmtree(old, ignore_errors=True)


def _collect(out_dir: Path, grid: Iterable[tuple[Preset, Shot, int]]) -> list[dict[str, Any]]:
    runs = []
    for preset, k, seed in grid:
        folder = run_dir(out_dir, preset.name, k, seed)
        if is_finished(folder):
            runs.append(json.loads((folder / "metrics.json").read_text(encoding="utf-8")))
    return runs


def _rank() -> int:
    """This process's rank under a multi-process launch (torchrun, accelerate launch); 0 otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    from hfm.devices import process_info

    return process_info()[0]


def _barrier() -> None:
    """Wait for every process of a multi-process launch (no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def run(
    recipe: Recipe | str | os.PathLike[str] | dict[str, Any],
    *,
    out: str | os.PathLike[str] | None = None,
    shots: Iterable[Shot] | None = None,
    seeds: Iterable[int] | None = None,
    presets: Iterable[str] | None = None,
    twin: bool | None = None,
    resume: bool = False,
    progress: bool = True,
    verbose: bool = True,
) -> SweepResult:
    """Run a recipe: every (preset, k, seed), then the summary table and the label-efficiency plot.

    Args:
        recipe: A :class:`~hfm.recipes.Recipe`, a YAML path or a recipe mapping.
        out: Sweep folder (default: the recipe's ``output``, else ``runs/<name>``).
        shots: Override the recipe's shots (``[1, 4]``; ``"all"`` allowed).
        seeds: Override the recipe's seeds.
        presets: Run only these presets (names among the recipe's, or any resolvable preset name).
        twin: Swap the backbone for its tiny random twin (offline smoke runs of real recipes).
        resume: Skip runs whose folder is complete; redo the rest.
        progress: Show progress bars.
        verbose: Print the summary table (and failures) when done.

    Returns:
        A :class:`SweepResult`; ``result.ok`` is False when any run failed (each has a traceback file).

    Raises:
        HfmError: For mistakes that stop the whole sweep (bad recipe, unreadable data, unknown backbone).
    """
    start = time.perf_counter()
    if isinstance(recipe, Recipe):
        loaded = recipe
    elif isinstance(recipe, dict):
        loaded = recipes.parse(recipe)
    else:
        loaded = recipes.load(Path(recipe))
    loaded = recipes.with_overrides(
        loaded, out=None if out is None else Path(out), shots=shots, seeds=seeds, presets=presets, twin=twin
    )
    where = f"recipe {loaded.name!r}"
    recipes.check_data_paths(loaded, where)
    recipes.check_presets(loaded, where)
    out_dir = loaded.output_dir()
    rank = _rank()
    main = rank == 0
    progress = progress and main
    verbose = verbose and main
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _clean_stale(out_dir)
        _atomic_text(out_dir / "recipe.yaml", recipes.to_yaml(loaded))
        _write_json(out_dir / "environment.json", environment())

    sweep = _Sweep(loaded, out_dir, progress, resume)
    grid = [(p, k, s) for p in sweep.presets for k in loaded.shots for s in loaded.seeds]
    result = SweepResult(out_dir=out_dir, summary={})
    todo = []
    for preset, k, seed in grid:
        folder = run_dir(out_dir, preset.name, k, seed)
        if resume and is_finished(folder):
            result.skipped.append(folder)
        else:
            todo.append((preset, k, seed))
    _barrier()  # every process plans from the same folder state before the main one writes runs
    if todo:
        sweep.splits  # noqa: B018 - data and backbone errors stop the sweep before any run starts
        sweep.backbone  # noqa: B018
    bar = tqdm(todo, desc=f"sweep {loaded.name}", unit="run", disable=not progress)
    for preset, k, seed in bar:
        name = _run_name(preset.name, k, seed)
        bar.set_postfix_str(name)
        folder = run_dir(out_dir, preset.name, k, seed)
        failure = _failure_path(out_dir, preset.name, k, seed)
        try:
            sweep.execute(preset, k, seed, folder, write=main)
        except KeyboardInterrupt:
            raise
        except Exception as err:
            if main:
                failure.parent.mkdir(parents=True, exist_ok=True)
                failure.write_text(traceback.format_exc(), encoding="utf-8")
            line = str(err).splitlines()[0] if str(err) else type(err).__name__
            if not isinstance(err, HfmError):
                line = f"{type(err).__name__}: {line}"
            result.failed.append((name, line, failure))
            tqdm.write(f"hfm: run {name} failed: {line} (traceback: {failure})")
            continue
        if main:
            failure.unlink(missing_ok=True)
        result.finished.append(folder)
    bar.close()
    _barrier()
    result.seconds = time.perf_counter() - start
    if not main:  # the main process writes and prints the summary
        return result

    runs = _collect(out_dir, grid)
    backbone = sweep._backbone.describe() if sweep._backbone is not None else {"name": loaded.backbone.name}
    result.seconds = time.perf_counter() - start
    extra = {
        "recipe_name": loaded.name,
        "backbone": backbone,
        "data_fingerprint": sweep._splits.fingerprint if sweep._splits is not None else None,
        "runs": len(runs),
        "failed": [
            {"run": n, "error": e, "traceback": str(p.relative_to(out_dir))} for n, e, p in result.failed
        ],
        "seconds": round(result.seconds, 2),
    }
    result.summary = write_summary(
        out_dir, runs, loaded.metrics, loaded.primary_metric, title=loaded.name or "", extra=extra
    )
    if verbose:
        print(result.summary["table"], end="")
        print(f"{len(result.finished)} run(s) done, {len(result.skipped)} skipped, {len(result.failed)} failed "
              f"in {result.seconds:.1f} s; results in {out_dir}")  # fmt: skip
        for name, line, path in result.failed:
            print(f"FAILED {name}: {line} (see {path})")
    return result
