"""Run-parallel sweeps: many processes (and several per device) each train whole runs alone, from one queue.

A label-efficiency sweep is many small runs. Training each of them data-parallel over every process of a
``torchrun`` launch (``--parallel data``) splits a 16-image batch into slivers and leaves the sweep as slow as on
one device; run-parallel execution (``--parallel runs``, the default under a multi-process launch when more than
one run is left) gives each process whole runs instead:

1. Every process loads the data and the backbone; the sweep's embeddings are extracted once, sharded over the
   processes and gathered (:func:`hfm.embeddings.extract`), and written to the embedding cache.
2. Each process (and, with ``runs_per_device > 1``, each of its extra worker processes on the same device)
   takes the next unclaimed run from a shared queue, trains it alone inside :func:`hfm.devices.run_alone` (no
   DDP, no collective) and writes its run folder atomically, as a single-process sweep does.
3. When every run has an outcome, the main process writes the summary (the runner does that, unchanged).

The queue is a folder of claim files in the sweep folder (``OUT/.queue/<token>/``): a worker claims a run by
creating ``<run>.claim`` with ``O_CREAT | O_EXCL``, which exactly one creator wins (also on NFSv3 or later, per
``open(2)``), and records its outcome in ``<run>.done``. A lock-file queue was chosen over the
``torch.distributed`` store of the rendezvous because it needs no process group: the extra worker processes of
``runs_per_device`` (spawned, outside the launch) and a plain single-process ``hfm run --runs-per-device 2`` join
it as they are, and a sweep folder must be shared by every node anyway (the main process reads every run to write
the summary). Uneven run costs balance themselves: whoever is free takes the next run.

Runs are claimed in the sweep's order and each is trained exactly as in one process (its seed is set before its
model is built, training reseeds every step), so predictions are those of a single-process sweep. A worker that
dies loses only the run it held: its claim is marked failed by its parent (extra workers), or the launcher stops
the job (a launched process); ``--resume`` then redoes exactly the runs without a finished folder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import socket
import time
import traceback
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from tqdm.auto import tqdm

from hfm.devices import process_info, run_alone
from hfm.errors import ConfigError, HfmError
from hfm.sweep import RunKey

if TYPE_CHECKING:
    from hfm.recipes import Recipe
    from hfm.runner import _Sweep

Parallel = Literal["auto", "runs", "data"]
PARALLEL_CHOICES = ("auto", "runs", "data")
QUEUE = ".queue"
_POLL_S = 0.2
_LAUNCH_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK")


def world_size() -> int:
    """Processes of this launch (torchrun, accelerate launch); 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def choose_mode(parallel: str, *, world: int, runs_per_device: int, runs: int) -> str:
    """How a sweep executes: ``single`` (one process), ``data`` (every process trains every run, DDP) or
    ``runs`` (each worker trains whole runs alone).

    ``auto`` is ``runs`` when there are several workers (processes x ``runs_per_device``) and more than one run
    left, else ``data`` under a launcher and ``single`` without.

    Raises:
        ConfigError: For an unknown mode, a ``runs_per_device`` below 1, or ``data`` with several runs per
            device.
    """
    if parallel not in PARALLEL_CHOICES:
        raise ConfigError(f"parallel must be one of {', '.join(PARALLEL_CHOICES)}, got {parallel!r}")
    if runs_per_device < 1:
        raise ConfigError(f"runs per device must be at least 1, got {runs_per_device}")
    if parallel == "data":
        if runs_per_device > 1:
            raise ConfigError("--runs-per-device needs run-parallel execution: drop --parallel data")
        return "data" if world > 1 else "single"
    workers = world * runs_per_device
    if parallel == "runs":
        return "runs" if workers > 1 else "single"
    if workers > 1 and runs > 1:
        return "runs"
    return "data" if world > 1 else "single"


class ClaimQueue:
    """The runs of one sweep invocation, handed out one at a time to whichever worker asks first.

    Args:
        out_dir: The sweep folder (shared by every worker).
        token: This invocation's id (the same in every worker); claims of other invocations never interfere.
        runs: The runs to hand out, in the order they are handed out.
    """

    def __init__(self, out_dir: Path, token: str, runs: Sequence[RunKey]) -> None:
        self.folder = out_dir / QUEUE / token
        self.runs = list(runs)
        self._next = 0

    @staticmethod
    def _stem(key: RunKey) -> str:
        return f"{key.preset.replace('/', '__')}__k{key.k}__seed{key.seed}"

    def claim(self, who: str) -> RunKey | None:
        """The next run nobody has claimed, now claimed by ``who``; ``None`` when every run is taken."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while self._next < len(self.runs):
            key = self.runs[self._next]
            self._next += 1  # runs before this one are claimed by someone: never look at them again
            try:
                fd = os.open(
                    self.folder / f"{self._stem(key)}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644
                )
            except FileExistsError:
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(who)
            return key
        return None

    def finish(self, key: RunKey, who: str, error: str | None) -> None:
        """Record ``key``'s outcome (``error``: its one-line failure, ``None`` when it finished)."""
        path = self.folder / f"{self._stem(key)}.done"
        tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
        tmp.write_text(json.dumps({"run": key.name, "by": who, "error": error}), encoding="utf-8")
        os.replace(tmp, path)

    def claimed_by(self, who: str) -> list[RunKey]:
        """Runs ``who`` claimed."""
        found = []
        for key in self.runs:
            path = self.folder / f"{self._stem(key)}.claim"
            if path.is_file() and path.read_text(encoding="utf-8") == who:
                found.append(key)
        return found

    def outcomes(self) -> dict[RunKey, dict[str, Any]]:
        """The recorded outcome of every run that has one."""
        found = {}
        for key in self.runs:
            path = self.folder / f"{self._stem(key)}.done"
            if path.is_file():
                found[key] = json.loads(path.read_text(encoding="utf-8"))
        return found


def _failure_line(err: BaseException) -> str:
    line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return line if isinstance(err, HfmError) else f"{type(err).__name__}: {line}"


def _who(rank: int, worker: int) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:rank{rank}:worker{worker}"


def work(sweep: _Sweep, queue: ClaimQueue, device: torch.device, who: str) -> None:
    """Take runs from ``queue`` until none is left; train and write each alone on ``device``."""
    by_name = {p.name: p for p in sweep.presets}
    with run_alone(device):
        while (key := queue.claim(who)) is not None:
            failure = key.failure_file(sweep.out_dir)
            try:
                sweep.execute(by_name[key.preset], key, write=True)
            except KeyboardInterrupt:
                raise
            except Exception as err:
                failure.parent.mkdir(parents=True, exist_ok=True)
                failure.write_text(traceback.format_exc(), encoding="utf-8")
                line = _failure_line(err)
                tqdm.write(f"hfm: run {key.name} failed: {line} (traceback: {failure})")
                queue.finish(key, who, line)
                continue
            failure.unlink(missing_ok=True)
            queue.finish(key, who, None)


def _worker_main(
    recipe: Recipe, out_dir: str, token: str, runs: list[RunKey], resume: bool, device: str, threads: int,
    who: str,
) -> None:  # fmt: skip
    """An extra worker process (``runs_per_device > 1``): alone, outside any launch, on its parent's device."""
    for name in _LAUNCH_ENV:
        os.environ.pop(name, None)
    torch.set_num_threads(threads)
    from hfm.runner import _Sweep

    sweep = _Sweep(recipe, Path(out_dir), progress=False, resume=resume)
    sweep.parallel = "runs"
    work(sweep, ClaimQueue(Path(out_dir), token, runs), torch.device(device), who)


def _token(main: bool, world: int) -> str:
    """This invocation's queue id, made by the main process and sent to every other."""
    box = [uuid.uuid4().hex[:12] if main else ""]
    if world > 1:
        torch.distributed.broadcast_object_list(box, src=0)
    return str(box[0])


def _share_embeddings(sweep: _Sweep, todo: Sequence[RunKey]) -> None:
    """Extract the sweep's embeddings once over every process when a run left reads them (a collective)."""
    from hfm.tuners import get_tuner

    by_name = {p.name: p for p in sweep.presets}
    presets = {by_name[key.preset].name: by_name[key.preset] for key in todo}.values()
    if any(sweep.method(p).uses_embeddings(get_tuner(p.tuner)) for p in presets) or sweep._embeds_pool():
        sweep.embeddings()


def run_parallel(
    sweep: _Sweep, todo: Sequence[RunKey], *, runs_per_device: int = 1, progress: bool = True
) -> tuple[list[RunKey], list[tuple[str, str, Path]]]:
    """Execute ``todo`` run-parallel over every process of the launch and ``runs_per_device`` workers each.

    Every process of the launch calls this with the same ``todo``; it returns when every run has an outcome.

    Returns:
        The runs that finished and ``(run name, one-line error, traceback file)`` of those that failed (the
        same on every process).
    """
    out_dir = sweep.out_dir
    rank, world, device = process_info()
    main = rank == 0
    if main:
        shutil.rmtree(out_dir / QUEUE, ignore_errors=True)  # claims of an interrupted invocation
    token = _token(main, world)
    queue = ClaimQueue(out_dir, token, todo)
    _share_embeddings(sweep, todo)
    if world > 1:
        torch.distributed.barrier()  # the embedding cache is written before any extra worker reads it

    threads = max(1, torch.get_num_threads() // runs_per_device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    context = multiprocessing.get_context("spawn")
    extra = []
    for worker in range(1, runs_per_device):
        who = _who(rank, worker)
        args = (sweep.recipe, str(out_dir), token, list(todo), sweep.resume, str(device), threads, who)
        process = context.Process(target=_worker_main, args=args, daemon=True)
        process.start()
        extra.append((process, who))
    bar = tqdm(total=len(todo), desc="sweep (run-parallel)", unit="run", disable=not progress)
    try:
        work(sweep, queue, device, _who(rank, 0))
        for process, who in extra:
            process.join()
            if process.exitcode != 0:  # it died holding a run: that run failed, the others go on
                _orphaned(queue, who, process.exitcode, sweep.out_dir)
        while len(done := queue.outcomes()) < len(todo):
            bar.update(len(done) - bar.n)
            time.sleep(_POLL_S)
        bar.update(len(done) - bar.n)
    finally:
        bar.close()
        torch.set_num_threads(previous_threads)
        for process, _ in extra:
            if process.is_alive():
                process.terminate()
    if world > 1:
        torch.distributed.barrier()  # every process has read the outcomes before the queue goes
    if main:
        shutil.rmtree(queue.folder.parent, ignore_errors=True)
    finished = [key for key in todo if done[key]["error"] is None]
    failed = [
        (key.name, str(done[key]["error"]), key.failure_file(out_dir)) for key in todo if done[key]["error"]
    ]
    return finished, failed


def _orphaned(queue: ClaimQueue, who: str, exitcode: int | None, out_dir: Path) -> None:
    """Mark the run a dead worker held as failed, with a traceback file saying so."""
    outcomes = queue.outcomes()
    for key in queue.claimed_by(who):
        if key in outcomes:
            continue
        line = f"worker process {who} exited with code {exitcode} during this run"
        failure = key.failure_file(out_dir)
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(line + "\n", encoding="utf-8")
        tqdm.write(f"hfm: run {key.name} failed: {line}")
        queue.finish(key, who, line)


__all__ = ["PARALLEL_CHOICES", "ClaimQueue", "Parallel", "choose_mode", "run_parallel", "work", "world_size"]
