"""What a sweep folder already holds, and who is writing it: the lock, the provenance of finished runs, and the
recipe and summary that cover them all.

* **Lock.** ``OUT/.hfm.lock`` holds the pid, host and start time of the ``hfm run`` writing the folder. A second
  run on the same folder stops at once with a one-line error naming the first; a lock whose process is gone
  (same host, pid not alive) is stale and taken over.
* **Provenance.** Every run records what its result depends on (:func:`run_provenance`: data block and
  fingerprint, backbone and its resolved commit, the preset's tuner, parameters, method and training). A run
  is reused (``--resume``) or summarised only when its provenance matches the current recipe; ``--resume`` over
  runs made from other data or another backbone is an error saying what changed.
* **The folder's recipe.** A filtered re-run (``--preset X``, ``--shots 4``) must not shrink what the folder says
  it holds: the recipe written is the union of the folder's recipe and the current one, and the summary covers
  every finished run that matches it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from hfm import recipes
from hfm._fs import describe_os_error, describe_storage, storage_cause
from hfm.errors import HfmError, StorageError
from hfm.recipes import Preset, Recipe
from hfm.sweep import RunKey, grid, is_finished, parse_run_path

LOCK_NAME = ".hfm.lock"


class SweepBusyError(HfmError):
    """Another ``hfm run`` is writing the same sweep folder."""


class ProvenanceError(HfmError):
    """Finished runs in the sweep folder were made from other data, another backbone or other settings."""


# -- the lock -------------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class SweepLock:
    """Exclusive use of a sweep folder by one process (``with SweepLock(out): ...``).

    Args:
        out_dir: The sweep folder (must exist).
        remove_if_empty: Remove ``out_dir`` on release when nothing but the lock was ever written to it (a
            command that failed before its first run leaves no folder behind).
    """

    def __init__(self, out_dir: Path, *, remove_if_empty: bool = False) -> None:
        self.path = out_dir / LOCK_NAME
        self.out_dir = out_dir
        self.remove_if_empty = remove_if_empty
        self.held = False

    def _holder(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _stale(self, holder: dict[str, Any] | None) -> bool:
        if holder is None:  # unreadable: stale only once old enough that no writer is mid-way
            try:
                return time.time() - self.path.stat().st_mtime > 10
            except FileNotFoundError:
                return True
        return holder.get("host") == socket.gethostname() and not _alive(int(holder.get("pid", -1)))

    def acquire(self) -> None:
        """Take the lock, or raise :class:`SweepBusyError` naming the process that holds it."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder == {}:
                    continue  # released meanwhile
                if self._stale(holder):
                    self.path.unlink(missing_ok=True)
                    continue
                who = (
                    f"process {holder.get('pid')} on {holder.get('host')} since {holder.get('since')}"
                    if holder
                    else "another process"
                )
                raise SweepBusyError(
                    f"{self.out_dir} is in use by another hfm run ({who}): wait for it to finish or use another "
                    f"output folder; if that process is gone, delete {self.path}"
                ) from None
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(me, handle)
            except BaseException:  # a full disk: leave no empty lock behind
                self.path.unlink(missing_ok=True)
                raise
            self.held = True
            return
        raise SweepBusyError(f"{self.out_dir}: could not take the lock {self.path}; try again")

    def release(self) -> None:
        """Drop the lock (only if this process holds it); remove a folder this command left empty."""
        if not self.held:
            return
        holder = self._holder()
        if holder and holder.get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False
        if self.remove_if_empty:
            with contextlib.suppress(OSError):  # not empty: something was written, keep it
                self.out_dir.rmdir()

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


# -- provenance -----------------------------------------------------------------------------------------------
def run_provenance(
    recipe: Recipe,
    preset: Preset,
    *,
    data_fingerprint: str | None,
    data_content: str | None = None,
    backbone_revision: str | None = None,
) -> dict[str, Any]:
    """What one run's result depends on, as ``metrics.json`` records it under ``provenance`` (JSON-ready).

    Args:
        recipe: The sweep's recipe.
        preset: The run's preset.
        data_fingerprint: Ids, labels and classes of the data (:attr:`hfm.data.Splits.fingerprint`).
        data_content: Digest of the images' content (``None`` when the source has none).
        backbone_revision: The backbone's resolved commit, when it was loaded.
    """
    record = {
        "data": recipe.data,
        "data_fingerprint": data_fingerprint,
        "data_content": data_content,
        "backbone": {
            "name": recipe.backbone.name,
            "revision": recipe.backbone.revision,
            "twin": recipe.backbone.twin,
            "resolved_revision": backbone_revision,
        },
        "preset": {
            "tuner": preset.tuner,
            "params": preset.params,
            "method": preset.method.model_dump(mode="json"),
            "training": {**preset.training, **recipe.training},
        },
        "allow_fewer": recipe.allow_fewer,
    }
    if recipe.unlabelled is not None:  # a separate unlabelled source feeds the pool of every run
        record["unlabelled"] = recipe.unlabelled.model_dump(mode="json")
    return json.loads(json.dumps(record, default=str))  # type: ignore[no-any-return]


def _differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Names of what differs between two provenances (the resolved commit only when both are known)."""
    changed = []
    if recorded.get("data_fingerprint") != current.get("data_fingerprint"):
        changed.append(
            "data (fingerprint {} -> {})".format(
                recorded.get("data_fingerprint"), current.get("data_fingerprint")
            )
        )
    elif recorded.get("data") != current.get("data"):
        changed.append("data block")
    elif (
        recorded.get("data_content")
        and current.get("data_content")
        and (recorded["data_content"] != current["data_content"])
    ):
        changed.append("image content (same file names, other pixels)")
    old_b, new_b = recorded.get("backbone") or {}, current.get("backbone") or {}
    if any(old_b.get(k) != new_b.get(k) for k in ("name", "revision", "twin")):
        changed.append(f"backbone ({old_b.get('name')} -> {new_b.get('name')})")
    elif (
        old_b.get("resolved_revision")
        and new_b.get("resolved_revision")
        and (old_b["resolved_revision"] != new_b["resolved_revision"])
    ):
        changed.append(
            "backbone commit ({} -> {})".format(
                old_b["resolved_revision"][:12], new_b["resolved_revision"][:12]
            )
        )
    if recorded.get("preset") != current.get("preset"):
        changed.append("preset settings")
    if recorded.get("allow_fewer") != current.get("allow_fewer"):
        changed.append("allow_fewer")
    if recorded.get("unlabelled") != current.get("unlabelled"):
        changed.append("unlabelled block")
    return changed


def read_record(folder: Path) -> dict[str, Any] | None:
    """A finished run's ``metrics.json``, or ``None`` when the folder is not a finished run or unreadable."""
    if not is_finished(folder):
        return None
    try:
        record = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def mismatch(record: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between a finished run's record and the current provenance (empty when it may be reused).

    Runs recorded before provenance was kept are compared by their data fingerprint alone.
    """
    recorded = record.get("provenance")
    if recorded is None:
        recorded = {**current, "data_fingerprint": record.get("data_fingerprint")}
    return _differences(recorded, current)


def check_resume(out_dir: Path, runs: list[tuple[RunKey, dict[str, Any]]]) -> None:
    """Raise :class:`ProvenanceError` if any finished run ``--resume`` would reuse was made differently.

    Args:
        out_dir: The sweep folder.
        runs: ``(run, current provenance)`` for every run of the grid.
    """
    for key, current in runs:
        record = read_record(key.folder(out_dir))
        if record is None:
            continue
        changed = mismatch(record, current)
        if changed:
            raise ProvenanceError(
                f"--resume: {key.folder(out_dir)} was made with another {', '.join(changed)} than this recipe; "
                f"use a new output folder, or run without --resume to redo these runs"
            )


# -- a full or unwritable disk -------------------------------------------------------------------------------
def storage_failure(err: BaseException, out_dir: Path) -> StorageError | None:
    """The one-line error that stops a sweep when ``err`` (or what caused it) is a full, over-quota, read-only
    or unwritable disk (:func:`hfm._fs.storage_cause`), else ``None``. Every later run would fail the same way;
    what finished is kept for ``--resume``.
    """
    cause = storage_cause(err)
    if cause is None:
        return None
    return StorageError(
        f"cannot write to {out_dir}: {describe_storage(cause)}; the runs that finished are kept: free space, "
        "then run again with --resume"
    )


def write_failure(path: Path, text: str, out_dir: Path) -> None:
    """Write a failed run's traceback file; a disk that cannot take it stops the sweep with one line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as err:
        raise StorageError(
            f"cannot write to {out_dir}: {describe_os_error(err)}; the runs that finished are kept: free space, "
            "then run again with --resume"
        ) from None


# -- the folder's recipe and summary --------------------------------------------------------------------------
def read_folder_recipe(out_dir: Path) -> Recipe | None:
    """The recipe the folder's earlier sweeps wrote (``OUT/recipe.yaml``), or ``None`` when absent or unusable."""
    path = out_dir / "recipe.yaml"
    if not path.is_file():
        return None
    try:
        return recipes.parse(
            yaml.safe_load(path.read_text(encoding="utf-8")), source=str(path), base_dir=out_dir
        )
    except (HfmError, OSError, ValueError, yaml.YAMLError):
        return None


def merged_recipe(current: Recipe, previous: Recipe | None) -> Recipe:
    """The recipe a folder holds after this sweep: the previous one's presets, shots and seeds plus the current
    ones (current settings win), when the previous one was made from the same data and backbone.

    A previous recipe from other data or another backbone is replaced: its runs no longer match.
    """
    if previous is None or previous.data != current.data or previous.backbone != current.backbone:
        return current
    presets: dict[str, Preset] = {p.name: p for p in previous.resolved_presets}
    presets.update({p.name: p for p in current.resolved_presets})
    shots = list(dict.fromkeys([*previous.shots, *current.shots]))
    seeds = list(dict.fromkeys([*previous.seeds, *current.seeds]))
    data = current.model_dump(mode="python")
    data.update(presets=[p.model_dump(mode="python") for p in presets.values()], shots=shots, seeds=seeds)
    return Recipe.model_validate(data)


def matching_runs(
    out_dir: Path, recipe: Recipe, provenance: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """``metrics.json`` of every finished run in the folder that matches ``recipe``, in sweep order.

    Args:
        out_dir: The sweep folder.
        recipe: The folder's (merged) recipe: its grid orders the runs.
        provenance: Current provenance per preset name; runs of other presets, or made differently, are left out.
    """
    from hfm.zeroshot.checks import label_free_presets

    presets = [p.name for p in recipe.resolved_presets]
    runs = grid(presets, recipe.shots, recipe.seeds, label_free_presets(recipe), recipe.samplers)
    order = {key: i for i, key in enumerate(runs)}
    found: list[tuple[int, dict[str, Any]]] = []
    for metrics in out_dir.rglob("metrics.json"):
        key = parse_run_path(metrics.parent.relative_to(out_dir).as_posix())
        if key is None or key not in order or key.preset not in provenance:
            continue
        record = read_record(metrics.parent)
        if record is None or mismatch(record, provenance[key.preset]):
            continue
        found.append((order[key], record))
    return [record for _, record in sorted(found, key=lambda pair: pair[0])]


__all__ = [
    "LOCK_NAME",
    "ProvenanceError",
    "SweepBusyError",
    "SweepLock",
    "check_resume",
    "matching_runs",
    "merged_recipe",
    "read_folder_recipe",
    "run_provenance",
    "storage_failure",
    "write_failure",
]
