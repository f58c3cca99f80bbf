"""Item 8, crash-safe replacement of a finished run folder.

Faults injected:
- the process dies between renaming the old run folder aside and renaming the new one in (simulated by a
  rename that raises, and by leaving the disk in the state a killed process leaves);
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hfm import _fs
from hfm.sweep import RUN_FILES, clean_stale, is_finished


def _run_folder(path: Path, marker: str) -> Path:
    path.mkdir(parents=True)
    for name in RUN_FILES:
        (path / name).write_text(marker) if name != "adapter" else (path / name).mkdir()
    return path


def test_failed_second_rename_puts_the_old_run_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fault: the rename of the new folder into place fails after the old one was moved aside."""
    final = _run_folder(tmp_path / "p" / "k1" / "seed0", "old")
    tmp = _run_folder(tmp_path / "p" / "k1" / ".seed0.tmp-1", "new")
    real = Path.rename

    def rename(self: Path, target: Path) -> Path:
        if self == tmp:
            raise OSError("simulated crash")
        return real(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError):
        _fs.move_into_place(tmp, final)
    assert is_finished(final) and (final / "metrics.json").read_text() == "old"


def test_killed_between_renames_next_cleanup_restores_the_finished_run(tmp_path: Path) -> None:
    """Fault: a process killed between the two renames leaves the finished run only under ``.seed0.old-*``."""
    out = tmp_path / "out"
    _run_folder(out / "p" / "k1" / ".seed0.old-deadbeef", "old")
    _run_folder(out / "p" / "k1" / ".seed0.tmp-cafe", "half")
    clean_stale(out)
    final = out / "p" / "k1" / "seed0"
    assert is_finished(final) and (final / "metrics.json").read_text() == "old"
    assert sorted(p.name for p in final.parent.iterdir()) == ["seed0"]


def test_leftover_old_folder_beside_a_finished_run_is_removed(tmp_path: Path) -> None:
    """Control: a crash after the second rename leaves the new run in place and only a leftover to delete."""
    out = tmp_path / "out"
    _run_folder(out / "p" / "k1" / "seed0", "new")
    _run_folder(out / "p" / "k1" / ".seed0.old-deadbeef", "old")
    clean_stale(out)
    assert (out / "p" / "k1" / "seed0" / "metrics.json").read_text() == "new"
    assert sorted(p.name for p in (out / "p" / "k1").iterdir()) == ["seed0"]
