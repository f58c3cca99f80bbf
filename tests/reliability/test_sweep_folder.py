"""Items 2, 3, 6 and 7: a sweep folder never contradicts itself, and never loses what it holds.

Faults injected:
- item 2: ``--resume`` after the recipe's data changed (3 classes -> 2; another root with the same layout);
- item 3: a command failing on its data or its backbone, on a finished sweep and on a new folder; a relative
  data root in the recipe;
- item 6: a second ``hfm run`` on a folder another live process is writing; a lock left by a dead process;
- item 7: a filtered re-run (``--preset``, ``--shots``) on a finished sweep.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hfm.cli import main
from hfm.errors import BackboneError, ConfigError, DataError
from hfm.runner import run, run_dir
from hfm.sweep_state import LOCK_NAME, ProvenanceError, SweepBusyError

from .conftest import recipe, synthetic, write_folder

SECOND = {"name": "probe/logreg-plain", "tuner": "probe", "params": {"class_weight": None}}


def _run(cfg: dict, **kw) -> object:
    return run(cfg, progress=False, verbose=False, **kw)


# -- item 2 ---------------------------------------------------------------------------------------------------
def test_resume_after_the_classes_changed_is_an_error(tmp_path: Path) -> None:
    """Fault: the data went from 3 classes to 2 between a sweep and its ``--resume``."""
    out = tmp_path / "out"
    _run(recipe(out, synthetic(3)))
    before = (out / "recipe.yaml").read_text()
    with pytest.raises(ProvenanceError, match="data"):
        _run(recipe(out, synthetic(2)), resume=True)
    assert (out / "recipe.yaml").read_text() == before  # the folder still says what its runs were made from


def test_resume_on_another_root_is_an_error(tmp_path: Path) -> None:
    """Fault: ``--resume`` pointed at another root with the same class folders and file names."""
    a, b = write_folder(tmp_path / "a", seed=0), write_folder(tmp_path / "b", seed=1)
    out = tmp_path / "out"
    _run(recipe(out, {"type": "folder", "root": str(a)}))
    with pytest.raises(ProvenanceError, match="--resume"):
        _run(recipe(out, {"type": "folder", "root": str(b)}), resume=True)


def test_resume_after_pixels_changed_is_an_error(tmp_path: Path) -> None:
    """Fault: the same root and file names, but the images were re-exported with other pixels."""
    a = write_folder(tmp_path / "a", seed=0)
    out = tmp_path / "out"
    _run(recipe(out, {"type": "folder", "root": str(a)}))
    write_folder(a, seed=3)
    with pytest.raises(ProvenanceError, match="image content"):
        _run(recipe(out, {"type": "folder", "root": str(a)}), resume=True)


def test_resume_with_the_same_recipe_still_skips(tmp_path: Path) -> None:
    """Control: nothing changed, so ``--resume`` reuses every finished run."""
    out = tmp_path / "out"
    _run(recipe(out, synthetic(3)))
    again = _run(recipe(out, synthetic(3)), resume=True)
    assert len(again.skipped) == 1 and not again.finished


# -- item 3 ---------------------------------------------------------------------------------------------------
def test_a_data_error_leaves_a_finished_sweep_untouched(tmp_path: Path) -> None:
    """Fault: re-running a finished sweep's folder with data that cannot be read (no class folders)."""
    out = tmp_path / "out"
    _run(recipe(out, synthetic(3)))
    files = {name: (out / name).read_bytes() for name in ("recipe.yaml", "environment.json", "summary.json")}
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        _run(recipe(out, {"type": "folder", "root": str(tmp_path / "empty")}))
    assert {name: (out / name).read_bytes() for name in files} == files


def test_a_backbone_error_writes_no_new_folder(tmp_path: Path) -> None:
    """Fault: a backbone that cannot be loaded (not cached, offline) on a new output folder."""
    out = tmp_path / "new"
    with pytest.raises(BackboneError):
        _run(recipe(out, synthetic(3), backbone={"name": "nobody/no-such-model"}))
    assert not out.exists()


def test_a_data_error_writes_no_new_folder(tmp_path: Path) -> None:
    """Fault: unreadable data on a new output folder: nothing is left behind."""
    (tmp_path / "empty").mkdir()
    out = tmp_path / "new"
    with pytest.raises(DataError):
        _run(recipe(out, {"type": "folder", "root": str(tmp_path / "empty")}))
    assert not out.exists()


def test_relative_root_resolves_against_the_recipe_not_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault: a recipe file with a relative data root (``images``, no ``./``) that exists only under the
    working folder: it was read from there and written relative into ``recipe.yaml``."""
    (tmp_path / "proj").mkdir()
    file = tmp_path / "proj" / "r.yaml"
    file.write_text(yaml.safe_dump(recipe(tmp_path / "out", {"type": "folder", "root": "images"})))
    write_folder(tmp_path / "cwd" / "images")
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(ConfigError, match=str(tmp_path / "proj" / "images")):
        _run(file)
    assert not (tmp_path / "out").exists()
    write_folder(tmp_path / "proj" / "images")
    _run(file)
    written = yaml.safe_load((tmp_path / "out" / "recipe.yaml").read_text())
    assert written["data"]["root"] == str((tmp_path / "proj" / "images").resolve())


# -- item 6 ---------------------------------------------------------------------------------------------------
def test_second_run_on_a_busy_folder_stops_and_deletes_nothing(tmp_path: Path, capsys) -> None:
    """Fault: another live process holds the folder, with a run in progress (its temporary run folder)."""
    out = tmp_path / "out"
    in_progress = out / "probe" / "logreg" / "k1" / ".seed0.tmp-abcd1234"
    in_progress.mkdir(parents=True)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK_NAME).write_text(
            json.dumps({"pid": holder.pid, "host": socket.gethostname(), "since": "now"})
        )
        with pytest.raises(SweepBusyError, match=f"process {holder.pid}"):
            _run(recipe(out, synthetic(3)))
        assert in_progress.is_dir()
        cfg = tmp_path / "r.yaml"
        cfg.write_text(yaml.safe_dump(recipe(out, synthetic(3))))
        assert main(["run", str(cfg), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"process {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_is_taken_over_and_released(tmp_path: Path) -> None:
    """Fault: a lock left behind by a process that died (same host, pid no longer alive)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "since": "then"}))
    assert _run(recipe(out, synthetic(3))).ok
    assert not (out / LOCK_NAME).exists()


def test_lock_is_released_after_a_failed_command(tmp_path: Path) -> None:
    """Control: a command that fails on its data leaves no lock behind."""
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        _run(recipe(out, {"type": "folder", "root": str(tmp_path / "empty")}))
    assert not (out / LOCK_NAME).exists() and os.listdir(out) == []


# -- item 7 ---------------------------------------------------------------------------------------------------
def _summary_rows(out: Path) -> list[tuple[str, object]]:
    return [(r["preset"], r["k"]) for r in json.loads((out / "summary.json").read_text())["rows"]]


def test_filtered_rerun_keeps_every_finished_run_in_the_summary(tmp_path: Path) -> None:
    """Fault: ``--resume --preset X`` and ``--shots 1`` on a finished two-preset, two-k sweep."""
    out = tmp_path / "out"
    cfg = recipe(out, synthetic(3), presets=["probe/logreg", SECOND], shots=[1, 2])
    _run(cfg)
    full = _summary_rows(out)
    assert len(full) == 4
    _run(cfg, presets=["probe/logreg-plain"], resume=True)
    assert _summary_rows(out) == full
    _run(cfg, shots=[1])
    assert _summary_rows(out) == full
    written = yaml.safe_load((out / "recipe.yaml").read_text())
    assert [p["name"] for p in written["presets"]] == ["probe/logreg", "probe/logreg-plain"]
    assert written["shots"] == [1, 2]


def test_summary_leaves_out_runs_made_from_other_data(tmp_path: Path) -> None:
    """Control: runs in the folder from an earlier data version are kept on disk but never summarised."""
    out = tmp_path / "out"
    _run(recipe(out, synthetic(3), shots=[1, 2]))
    _run(recipe(out, synthetic(2), shots=[1]))
    assert _summary_rows(out) == [("probe/logreg", 1)]
    assert (run_dir(out, "probe/logreg", 2, 0) / "metrics.json").is_file()  # kept on disk, not summarised
