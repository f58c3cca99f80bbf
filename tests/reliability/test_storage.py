"""Items 9, 10 and 11: folders that cannot be created or written, full disks, corrupt cached weights.

Faults injected:
- item 9: the recipe's ``output`` is a file, a path under a file, ``/dev/null``, under a read-only mount;
  ``HFM_CACHE`` is a file;
- item 10: the output disk fills mid-sweep (a real 1 MiB tmpfs when running as root, else ``ENOSPC`` raised by
  the writes), torch's ``unexpected pos`` error from a full disk, the cache disk full while a twin or the
  embeddings are written;
- item 11: a cached twin whose ``model.safetensors`` was truncated under its completion marker; a truncated
  weight file of a real (Hub-cached) backbone.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import hfm
from hfm import embeddings, runner
from hfm.backbones.catalog import get_spec
from hfm.backbones.twins import write_twin
from hfm.cli import main
from hfm.errors import BackboneLoadError, StorageError
from hfm.runner import run, run_dir

from .conftest import recipe, synthetic


def _cli(tmp_path: Path, cfg: dict, *args: str) -> int:
    file = tmp_path / "r.yaml"
    file.write_text(yaml.safe_dump(cfg))
    return main(["run", str(file), "--no-progress", *args])


def _one_line(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("hfm: error:"), err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[callable]:
    """Mount small tmpfs folders (root only; skips otherwise); unmounted after the test."""
    mounted: list[Path] = []

    def make(name: str, size: str, *, ro: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        path = tmp_path / name
        path.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], check=False).returncode:
            pytest.skip("cannot mount a tmpfs here")
        mounted.append(path)
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)


# -- item 9 ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "under-file", "dev-null"])
def test_unusable_output_folder_is_one_line(tmp_path: Path, capsys, kind: str) -> None:
    """Fault: ``output`` is a file, a path below a file, or ``/dev/null``."""
    (tmp_path / "taken").write_text("x")
    out = {
        "file": tmp_path / "taken",
        "under-file": tmp_path / "taken" / "out",
        "dev-null": Path("/dev/null"),
    }[kind]
    assert _cli(tmp_path, recipe(out, synthetic(3))) == 2
    _one_line(capsys, "output folder", "is a file")


def test_read_only_output_parent_is_one_line(tmp_path: Path, capsys, tmpfs) -> None:
    """Fault: the output folder's parent is on a read-only file system."""
    ro = tmpfs("ro", "1M", ro=True)
    assert _cli(tmp_path, recipe(ro / "out", synthetic(3))) == 2
    _one_line(capsys, "cannot create output folder", "read-only")


def test_hfm_cache_that_is_a_file_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """Fault: ``HFM_CACHE`` names a file, so no twin can be written."""
    (tmp_path / "cache-file").write_text("x")
    monkeypatch.setenv("HFM_CACHE", str(tmp_path / "cache-file"))
    assert _cli(tmp_path, recipe(tmp_path / "out", synthetic(3))) == 2
    _one_line(capsys, "HFM_CACHE", "is a file")


# -- item 10 --------------------------------------------------------------------------------------------------
def test_full_output_disk_stops_keeps_and_resumes(tmp_path: Path, capsys, tmpfs) -> None:
    """Fault: a real full disk (1 MiB tmpfs filled with ballast) after the first run finished."""
    disk = tmpfs("disk", "1M")
    out = disk / "out"
    cfg = recipe(out, synthetic(3), seeds=[0, 1])
    assert run({**cfg, "seeds": [0]}, progress=False, verbose=False).ok
    ballast = disk / "ballast"
    fd = os.open(ballast, os.O_CREAT | os.O_WRONLY)
    try:
        while os.write(fd, b"\0" * 512):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    assert _cli(tmp_path, cfg, "--resume") == 2
    _one_line(capsys, f"cannot write to {out}", "no space left", "--resume")
    assert (run_dir(out, "probe/logreg", 1, 0) / "metrics.json").is_file()
    ballast.unlink()
    again = run(cfg, resume=True, progress=False, verbose=False)
    assert again.ok and len(again.skipped) == 1 and len(again.finished) == 1


def test_enospc_while_writing_a_run_stops_the_sweep_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """Fault: writing ``metrics.json`` raises ``ENOSPC`` (works without root)."""
    out = tmp_path / "out"
    cfg = recipe(out, synthetic(3), seeds=[0, 1])
    real = runner._write_json
    calls = []

    def full(path: Path, data: object) -> None:
        if path.name == "metrics.json":
            calls.append(path)
            if len(calls) > 1:
                raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(runner, "_write_json", full)
    assert _cli(tmp_path, cfg) == 2
    _one_line(capsys, "no space left on device", "--resume")
    assert (run_dir(out, "probe/logreg", 1, 0) / "metrics.json").is_file()
    assert not run_dir(out, "probe/logreg", 1, 1).exists()


def test_torch_unexpected_pos_reads_as_a_full_disk(tmp_path: Path, monkeypatch) -> None:
    """Fault: torch's own words for a full disk while saving (``unexpected pos N vs M``)."""
    from hfm.tuners.base import AdaptedModel

    def save(*args: object, **kw: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 21440 vs 21328")

    monkeypatch.setattr(AdaptedModel, "save", save)
    with pytest.raises(StorageError, match="no space left on device"):
        run(recipe(tmp_path / "out", synthetic(3)), progress=False, verbose=False)


def test_full_cache_disk_while_writing_a_twin_is_one_line(tmp_path: Path, capsys, monkeypatch, tmpfs) -> None:
    """Fault: ``HFM_CACHE`` on a 64 KiB disk: the twin's weights do not fit."""
    monkeypatch.setenv("HFM_CACHE", str(tmpfs("cache", "64k")))
    assert _cli(tmp_path, recipe(tmp_path / "out", synthetic(3))) == 2
    _one_line(capsys, "twin", "no space left")


def test_full_cache_disk_while_writing_embeddings_does_not_fail_runs(tmp_path: Path, monkeypatch) -> None:
    """Fault: the embeddings cache write raises ``ENOSPC``: the cache is an optimisation, runs go on."""

    def full(*args: object, **kw: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(embeddings, "save_file", full)
    with pytest.warns(UserWarning, match="not cached"):
        result = run(recipe(tmp_path / "out", synthetic(3)), progress=False, verbose=False)
    assert result.ok and len(result.finished) == 1


# -- item 11 --------------------------------------------------------------------------------------------------
def test_truncated_cached_twin_is_rebuilt(tmp_path: Path) -> None:
    """Fault: the cached twin's ``model.safetensors`` cut in half, its completion marker still there."""
    spec = get_spec("pathology/uni")
    snapshot = write_twin(spec)
    weights = snapshot / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    backbone = hfm.load_backbone("pathology/uni", twin=True)
    assert weights.read_bytes() == data and backbone.is_twin


def test_truncated_hub_cache_weights_name_the_file(tmp_path: Path) -> None:
    """Fault: a real backbone's cached weight file is truncated (an interrupted download)."""
    repo = "acme/path-vit"
    snapshot = write_twin(get_spec("pathology/uni"), Path(os.environ["HF_HUB_CACHE"]), repo_id=repo)
    weights = snapshot / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(
        BackboneLoadError, match=r"model\.safetensors is truncated or corrupt.*force-download"
    ):
        hfm.load_backbone(f"hf-hub:{repo}")
