"""Run a recipe: one backbone load and one embedding extraction, then a run per (preset, k, seed), then a summary.

The sweep folder's layout and the order of its runs live in :mod:`hfm.sweep`. Each run draws its labelled
examples and unlabelled pool (:func:`hfm.data.episodes.draw`), builds its preset's tuner and hands both to its
preset's method (:mod:`hfm.methods`), which fits the model and predicts test; the runner only evaluates and
writes.

A run folder is written under a temporary name and renamed when complete, so ``resume=True`` skips exactly the
runs that finished and never trusts a half-written one. A failing run is recorded and the sweep goes on.
"""

from __future__ import annotations

import contextlib
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

from hfm import recipes, sweep_state
from hfm._fs import ensure_dir, move_into_place
from hfm.data.episodes import Draw, draw, group_name
from hfm.errors import HfmError
from hfm.methods import get_method
from hfm.methods.base import CachedEmbeddings, Method, MethodResult, RunContext
from hfm.metrics import evaluate
from hfm.paired import labelled_only_twins
from hfm.recipes import Preset, Recipe
from hfm.report import write_summary
from hfm.sweep import DEFAULT_SAMPLER, RUN_FILES, RunKey, Shot, clean_stale, grid, is_finished, run_dir
from hfm.zeroshot.checks import label_free_presets

__all__ = [
    "RUN_FILES",
    "SweepResult",
    "is_finished",
    "read_predictions",
    "run",
    "run_dir",
    "write_predictions",
]


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
        self._embeddings: CachedEmbeddings | None = None
        self._methods: dict[str, Method] = {}
        self._bags: Any = None
        self._text: Any = None
        self._draws: dict[tuple[Shot, int, str], Draw] = {}
        self._train_embeddings: Any = None
        self._unlabelled: Any = None
        self.parallel = "single"  # how the sweep executes (hfm.parallel.choose_mode), kept in each run record

    # -- shared, loaded once ------------------------------------------------------------------------------
    @property
    def splits(self) -> Any:
        if self._splits is None:
            from hfm.data import load_data
            from hfm.data.images import loading_progress

            with loading_progress(self.progress):
                splits = load_data(self.recipe.data)
            if self.recipe.unit == "bag":  # bag mistakes stop the sweep before any run, like data mistakes
                from hfm.data.bags import bag_splits

                splits, self._bags = bag_splits(splits, self.recipe.bags.labels)
            self._splits = splits
            if self.recipe.labelled:  # the labels CSV's labels replace the source's on its examples
                from hfm.labelling import labelled_run

                self._splits = labelled_run(self._splits, self.recipe.labelled, 0)[0]
            if self.recipe.unlabelled is not None:  # its mistakes, too, stop the sweep before any run
                from hfm.data.unlabelled import load_unlabelled

                with loading_progress(self.progress):
                    self._unlabelled = load_unlabelled(
                        self.recipe.unlabelled.data, self._splits.classes, self.recipe.unlabelled.max_images
                    )
        return self._splits

    @property
    def unlabelled(self) -> Any:
        """The recipe's separate unlabelled source (:class:`hfm.data.unlabelled.UnlabelledSource`) or ``None``."""
        _ = self.splits  # loaded with the data
        return self._unlabelled

    @property
    def backbone(self) -> Any:
        """The backbone, loaded once per sweep; trained tuners get a deep copy, never this one."""
        if self._backbone is None:
            from hfm.backbones import load_backbone

            block = self.recipe.backbone
            self._backbone = load_backbone(block.name, twin=block.twin, policy=block.policy)
            self._backbone.eval()
        return self._backbone

    def method(self, preset: Preset) -> Method:
        """The preset's method, built once per preset."""
        if preset.name not in self._methods:
            self._methods[preset.name] = get_method(preset.method.name)(**preset.method.params)
        return self._methods[preset.name]

    def _embeds_pool(self) -> bool:
        """Whether a preset's method reads the pool through cached embeddings (then the pool is embedded)."""
        from hfm.tuners import get_tuner

        return any(
            self.method(p).needs.pool and self.method(p).uses_embeddings(get_tuner(p.tuner))
            for p in self.presets
        )

    def embeddings(self) -> CachedEmbeddings:
        """Embeddings of val, test and the train examples any draw of the sweep uses, extracted once.

        Only the union of the sweep's labelled examples is embedded from the train split (draws are cheap), so
        a 1-to-16-shot study on a large pool does not embed the whole pool, unless a method reads the pool's
        embeddings. The embeddings module caches each extraction on disk, keyed by backbone, preprocessing
        and data fingerprint.
        """
        if self._embeddings is None:
            from hfm.embeddings import extract

            splits = self.splits
            block = self.recipe.embeddings
            pool = self._embeds_pool()
            rows: set[int] = set()
            for k in self.recipe.shots:
                for s in self.recipe.seeds:
                    for sampler in self.recipe.samplers:
                        drawn = self.draw(k, s, sampler)
                        rows.update(int(i) for i in drawn.indices)
                        if pool:
                            rows.update(int(i) for i in drawn.pool)
            ordered = sorted(rows)
            parts = {"train": splits.train.take(ordered), "val": splits.val, "test": splits.test}
            if self._train_embeddings is not None:  # a sampler embedded the whole train split already
                del parts["train"]
            emb = {
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
            if self._train_embeddings is not None:
                emb["train"] = torch.as_tensor(self._train_embeddings[ordered])
            extra: list[int] = []
            if pool and self.unlabelled is not None:  # every run's share of the separate source
                extra = sorted({int(i) for s in self.recipe.seeds for i in self.unlabelled.positions(s)})
                emb["unlabelled"] = extract(
                    self.backbone,
                    self.unlabelled.images.take(extra),
                    batch_size=block.batch_size,
                    num_workers=block.num_workers,
                    split="unlabelled",
                    progress=self.progress,
                )
            self._embeddings = CachedEmbeddings(
                train=emb["train"],
                rows={row: pos for pos, row in enumerate(ordered)},
                val=emb["val"],
                test=emb["test"],
                unlabelled=emb.get("unlabelled"),
                unlabelled_rows={row: pos for pos, row in enumerate(extra)},
            )
        return self._embeddings

    def text_head(self) -> Any:
        """The class prompts' text head (methods that declare ``needs.text``), built once per sweep."""
        if self._text is None:
            from hfm.zeroshot.text import sweep_text_head

            block = self.recipe.backbone
            self._text = sweep_text_head(
                self.backbone, self.recipe.prompts, self.splits.classes, block.policy
            )
        return self._text

    # -- one run ------------------------------------------------------------------------------------------
    def draw(self, k: Shot, seed: int, sampler: str = DEFAULT_SAMPLER) -> Draw:
        """The (preset-independent) draw: same k, seed and sampler give the same examples and pool for every preset.

        The default sampler draws exactly k per class; any other chooses k x classes labels in the recipe's rounds
        on the train split's embeddings (the known labels play the annotator); a labelled set replaces both.
        """
        key = (k, seed, sampler)
        if key not in self._draws:
            if self.recipe.unit == "bag":  # exactly k bags per class (hfm.data.bags.bag_draw)
                from hfm.data.bags import bag_draw

                self._draws[key] = bag_draw(
                    self.splits, self._bags, k, seed, allow_fewer=self.recipe.allow_fewer
                )
            elif self.recipe.labelled:
                from hfm.labelling import labelled_run

                self._draws[key] = labelled_run(self.splits, self.recipe.labelled, seed)[1]
            elif sampler == DEFAULT_SAMPLER:
                self._draws[key] = draw(self.splits, k, seed, allow_fewer=self.recipe.allow_fewer)
            else:
                from hfm.methods.samplers import simulate

                budget = int(k) * self.splits.num_classes
                self._draws[key] = simulate(
                    self.splits,
                    self.train_embeddings(),
                    sampler,
                    budget,
                    seed,
                    k=k,
                    rounds=self.recipe.rounds,
                )
        return self._draws[key]

    def train_embeddings(self) -> Any:
        """Embeddings of the whole train split (what a sampler chooses from), extracted once and cached on disk."""
        if self._train_embeddings is None:
            from hfm.embeddings import extract

            block = self.recipe.embeddings
            self._train_embeddings = extract(
                self.backbone, self.splits.train, batch_size=block.batch_size, num_workers=block.num_workers,
                split="train", progress=self.progress,
            ).numpy()  # fmt: skip
        return self._train_embeddings

    def training_config(self, preset: Preset, seed: int) -> dict[str, Any]:
        """Training settings: the preset's defaults, overridden key by key by the recipe's, plus the seed."""
        return {**preset.training, **self.recipe.training, "seed": seed}

    def fit_and_predict(self, preset: Preset, run: RunKey, drawn: Draw) -> tuple[Any, MethodResult]:
        """Build the tuner's model and let the preset's method fit it on the draw and predict test."""
        from hfm.tuners import get_tuner

        tuner = get_tuner(preset.tuner)
        method = self.method(preset)
        cached = method.uses_embeddings(tuner)
        torch.manual_seed(run.seed)
        if cached:
            self.embeddings()  # extracted once, after the seed and before the model, as it always was
        # A tuner fitted on cached embeddings never changes its backbone; any other tuner wraps or trains it, so
        # it gets its own copy whatever the method reads.
        backbone = self.backbone if tuner.uses_embeddings else copy.deepcopy(self.backbone)
        model: Any = tuner(backbone, self.splits.num_classes, **preset.params)
        ctx = RunContext(
            splits=self.splits,
            draw=drawn,
            seed=run.seed,
            backbone=self.backbone,
            training=self.training_config(preset, run.seed),
            batch_size=self.recipe.embeddings.batch_size,
            num_workers=self.recipe.embeddings.num_workers,
            checkpoint_dir=run.checkpoint_dir(self.out_dir),
            resume=self.resume,
            progress=self.progress,
            embed=self.embeddings,
            text=self.text_head,
            unlabelled=self.unlabelled if method.needs.pool else None,
        )
        return model, method.fit(model, ctx)

    def execute(self, preset: Preset, run: RunKey, *, write: bool = True) -> None:
        """One run, written into a temporary folder renamed to its final name once everything is in it.

        Under a multi-process launch every process trains and evaluates (the collectives need them all), and
        only the main process writes (``write``).
        """
        splits = self.splits
        if not write:
            self.fit_and_predict(preset, run, self.draw(run.k, run.seed, run.sampler))
            return
        final = run.folder(self.out_dir)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.mkdir()
        try:
            start = time.perf_counter()
            drawn = self.draw(run.k, run.seed, run.sampler)
            drawn.save(tmp / "episode.json", splits.train)
            model, result = self.fit_and_predict(preset, run, drawn)
            seconds = time.perf_counter() - start
            ids = list(result.ids) if result.ids is not None else splits.test.ids
            labels = result.labels if result.labels is not None else splits.test.labels
            test = evaluate(
                labels, result.proba, splits.classes,
                metrics=self.recipe.metrics, n_bootstrap=self.recipe.bootstrap, seed=run.seed,
            )  # fmt: skip
            write_predictions(tmp / "predictions.csv", ids, labels, result.proba, splits.classes)
            if result.write is not None:
                result.write(tmp)
            method = self.method_record(preset, result)
            record = {
                "preset": preset.name,
                "tuner": preset.tuner,
                "method": method["name"],
                "method_params": method["params"],
                "k": run.k,
                "seed": run.seed,
                "n_train": len(drawn.episode),
                "unit": self.recipe.unit,
                "sampler": run.sampler,
                "queries": query_summary(drawn),
                "n_unlabelled": method["n_unlabelled"],
                "seconds": round(seconds, 3),
                "data_fingerprint": splits.fingerprint,
                "split": "test",
                "test": test,
                "fit": result.info,
                "provenance": self.provenance(preset),
                "parallel": self.parallel,
            }
            metadata = self.adapter_metadata(preset, run, test, method)
            metadata["queries"] = query_summary(drawn)
            model.save(tmp / "adapter", metadata=metadata)
            _write_json(tmp / "metrics.json", record)
            move_into_place(tmp, final)
            shutil.rmtree(run.checkpoint_dir(self.out_dir), ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def provenance(self, preset: Preset) -> dict[str, Any]:
        """What a run of ``preset`` depends on (:func:`hfm.sweep_state.run_provenance`)."""
        splits = self.splits
        contents = [part.content_fingerprint() for part in (splits.train, splits.val, splits.test)]
        return sweep_state.run_provenance(
            self.recipe,
            preset,
            data_fingerprint=splits.fingerprint,
            data_content=None if None in contents else "/".join(str(c) for c in contents),
            backbone_revision=getattr(self._backbone, "revision", None),
        )

    def method_record(self, preset: Preset, result: MethodResult) -> dict[str, Any]:
        """The method as runs, adapters and cards record it: name, parameters, unlabelled examples used."""
        record = {
            "name": preset.method.name,
            "params": self.method(preset).params,
            "n_unlabelled": int(result.n_unlabelled),
        }
        if isinstance(result.info.get("pool"), dict):  # a method that used the pool: its size and fingerprint
            record["pool"] = result.info["pool"]
        return record

    def adapter_metadata(
        self, preset: Preset, run: RunKey, test: dict[str, Any], method: dict[str, Any]
    ) -> dict[str, Any]:
        splits = self.splits
        return {
            "classes": list(splits.classes),
            "recipe": self.recipe_dict,
            "recipe_name": self.recipe.name,
            "preset": preset.name,
            "method": method,
            "seed": run.seed,
            "k": run.k,
            "data": {
                "fingerprint": splits.fingerprint,
                "source": splits.source,
                "group_key": group_name(splits),
                "split_info": splits.split_info,
                **({"unit": "bag", "bags": self._bags.describe()} if self._bags is not None else {}),
            },
            "metrics": {"test": {key: test[key] for key in (*self.recipe.metrics, "n", "ci") if key in test}},
        }


def query_summary(drawn: Draw) -> list[dict[str, Any]]:
    """The draw's query rounds without ids: round, strategy and how many examples each chose."""
    return [{"round": r.round, "strategy": r.strategy, "n": len(r.indices)} for r in drawn.rounds]


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
    labelled: str | os.PathLike[str] | None = None,
    parallel: str = "auto",
    runs_per_device: int = 1,
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
        labelled: A labels CSV (``id,label``, see :mod:`hfm.labelling`) whose examples replace every draw.
        parallel: Under several workers: ``runs`` (each trains whole runs alone), ``data`` (every process trains
            every run together, DDP) or ``auto`` (``runs`` when more than one run is left); see
            :mod:`hfm.parallel`.
        runs_per_device: Worker processes per device, each training its own runs (run-parallel).

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
        loaded,
        out=None if out is None else Path(out),
        shots=shots,
        seeds=seeds,
        presets=presets,
        twin=twin,
        labelled=None if labelled is None else Path(labelled),
    )
    where = f"recipe {loaded.name!r}"
    recipes.check_data_paths(loaded, where)
    recipes.check_presets(loaded, where)
    out_dir = loaded.output_dir()
    rank = _rank()
    main = rank == 0
    lock: Any = contextlib.nullcontext()
    if main:  # one writer per folder; a command that fails before its first run leaves no new folder behind
        created = not out_dir.exists()
        ensure_dir(out_dir, "output folder")
        lock = sweep_state.SweepLock(out_dir, remove_if_empty=created)
    try:
        with lock:
            return _sweep(
                loaded, out_dir, start, main=main, resume=resume, progress=progress, verbose=verbose,
                parallel=parallel, runs_per_device=runs_per_device,
            )  # fmt: skip
    except OSError as err:  # the folder's own files (lock, recipe, summary) on a full or read-only disk
        full = sweep_state.storage_failure(err, out_dir)
        if full is None:
            raise
        raise full from None


def _preflight(sweep: _Sweep, *, backbone: bool = True) -> None:
    """What stops a sweep before anything is written: the data, every draw (k against each class), and with
    ``backbone`` the backbone, each tuner's fit to it and the class prompts' text tower."""
    sweep.splits  # noqa: B018 - data errors
    for k in sweep.recipe.shots:  # a k larger than a class: draws are cheap, every one is made now
        for seed in sweep.recipe.seeds:
            sweep.draw(k, seed)
    if backbone:
        from hfm.tuners import get_tuner

        for preset in sweep.presets:  # a tuner that cannot adapt this backbone (VPT off its ViTs)
            get_tuner(preset.tuner).check_backbone(sweep.backbone)
        if any(sweep.method(p).needs.text for p in sweep.presets):
            sweep.text_head()  # prompt and text-tower errors


def preflight(recipe: Recipe | str | os.PathLike[str], *, progress: bool = False) -> None:
    """Everything ``hfm run`` checks before its first run, without running or writing anything: the data
    (every image decoded), every draw, the backbone (from the cache or its twin; nothing is downloaded when
    ``HF_HUB_OFFLINE`` is set) and each preset's fit to it. ``hfm validate --data`` calls this.

    Raises:
        HfmError: The first problem, in one line.
    """
    loaded = recipe if isinstance(recipe, Recipe) else recipes.load(Path(recipe))
    _preflight(_Sweep(loaded, loaded.output_dir(), progress, resume=False))


def _sweep(
    loaded: Recipe,
    out_dir: Path,
    start: float,
    *,
    main: bool,
    resume: bool,
    progress: bool,
    verbose: bool,
    parallel: str = "auto",
    runs_per_device: int = 1,
) -> SweepResult:
    """The body of :func:`run`, under the folder's lock: check, then write, then run, then summarise."""
    progress = progress and main
    verbose = verbose and main
    if main:
        clean_stale(out_dir)

    sweep = _Sweep(loaded, out_dir, progress, resume)
    by_name = {p.name: p for p in sweep.presets}
    runs_of = grid(list(by_name), loaded.shots, loaded.seeds, label_free_presets(loaded), loaded.samplers)
    result = SweepResult(out_dir=out_dir, summary={})
    todo = []
    for key in runs_of:
        if resume and is_finished(key.folder(out_dir)):
            result.skipped.append(key.folder(out_dir))
        else:
            todo.append(key)
    _barrier()  # every process plans from the same folder state before the main one writes runs
    _preflight(sweep, backbone=bool(todo))
    if resume:  # finished runs are reused only when made from this data, backbone and preset
        sweep_state.check_resume(out_dir, [(key, sweep.provenance(by_name[key.preset])) for key in runs_of])
    folder_recipe = sweep_state.merged_recipe(loaded, sweep_state.read_folder_recipe(out_dir))
    if main:
        _atomic_text(out_dir / "recipe.yaml", recipes.to_yaml(folder_recipe))
        _write_json(out_dir / "environment.json", environment())
    from hfm.parallel import choose_mode, run_parallel, world_size

    sweep.parallel = choose_mode(
        parallel, world=world_size(), runs_per_device=runs_per_device, runs=len(todo)
    )
    if sweep.parallel == "runs":  # every worker trains whole runs alone; nothing is left for the loop below
        done, failed = run_parallel(sweep, todo, runs_per_device=runs_per_device, progress=progress)
        result.finished += [key.folder(out_dir) for key in done]
        result.failed += failed
        todo = []
    bar = tqdm(todo, desc=f"sweep {loaded.name}", unit="run", disable=not progress)
    for key in bar:
        name = key.name
        bar.set_postfix_str(name)
        failure = key.failure_file(out_dir)
        try:
            sweep.execute(by_name[key.preset], key, write=main)
        except KeyboardInterrupt:
            raise
        except Exception as err:
            full = sweep_state.storage_failure(err, out_dir)
            if full is not None:  # every later run would fail the same way; what finished is kept
                raise full from None
            if main:
                sweep_state.write_failure(failure, traceback.format_exc(), out_dir)
            line = str(err).splitlines()[0] if str(err) else type(err).__name__
            if not isinstance(err, HfmError):
                line = f"{type(err).__name__}: {line}"
            result.failed.append((name, line, failure))
            tqdm.write(f"hfm: run {name} failed: {line} (traceback: {failure})")
            continue
        if main:
            failure.unlink(missing_ok=True)
        result.finished.append(key.folder(out_dir))
    bar.close()
    _barrier()
    result.seconds = time.perf_counter() - start
    if not main:  # the main process writes and prints the summary
        return result

    runs = sweep_state.matching_runs(
        out_dir, folder_recipe, {p.name: sweep.provenance(p) for p in folder_recipe.resolved_presets}
    )  # every finished run of the folder that matches, not only this command's
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
        "parallel": sweep.parallel,
    }
    result.summary = write_summary(
        out_dir, runs, loaded.metrics, loaded.primary_metric, title=loaded.name or "", extra=extra,
        baselines=labelled_only_twins(sweep.presets),
    )  # fmt: skip
    if len(loaded.samplers) > 1:
        from hfm import sampler_report

        sampler_report.write(out_dir, runs, loaded.primary_metric)
    if verbose:
        print(result.summary["table"], end="")
        if result.summary.get("gains_table"):
            print("\n" + result.summary["gains_table"], end="")
        print(f"{len(result.finished)} run(s) done, {len(result.skipped)} skipped, {len(result.failed)} failed "
              f"in {result.seconds:.1f} s; results in {out_dir}")  # fmt: skip
        for name, line, path in result.failed:
            print(f"FAILED {name}: {line} (see {path})")
    return result
