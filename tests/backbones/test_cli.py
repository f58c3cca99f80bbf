"""``hfm backbones list|show|download|twin``, and the one-line, fast failure for an uncached model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hfm.backbones.catalog import CATALOG, modalities
from hfm.cli import cli, main


def test_list_table_has_every_entry() -> None:
    result = CliRunner().invoke(cli, ["backbones", "list"])
    assert result.exit_code == 0, result.output
    header = result.output.splitlines()[0]
    for column in ("name", "modality", "architecture", "params", "embedding", "license", "gated"):
        assert column in header
    for name in CATALOG:
        assert name in result.output


def test_list_json_and_modality_filter() -> None:
    result = CliRunner().invoke(cli, ["backbones", "list", "--json"])
    rows = json.loads(result.output)
    assert {r["name"] for r in rows} == set(CATALOG)
    for key in ("name", "hub_id", "loader", "modality", "embed_dim", "license", "gated"):
        assert all(key in r for r in rows)
    modality = modalities()[0]
    filtered = json.loads(
        CliRunner().invoke(cli, ["backbones", "list", "--modality", modality, "--json"]).output
    )
    assert filtered and all(r["modality"] == modality for r in filtered)
    assert main(["backbones", "list", "--modality", "astrology"]) == 2


def test_show_prints_kwargs_and_source() -> None:
    result = CliRunner().invoke(cli, ["backbones", "show", "uni"])
    assert result.exit_code == 0, result.output
    assert "init_values=1e-05" in result.output
    assert "https://huggingface.co/MahmoodLab/UNI" in result.output


def test_show_unknown_name_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones", "show", "pathology/unii"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hfm: error: unknown backbone") and "\n" not in err


def test_download_prints_the_cached_commit(
    cached_timm_repo: tuple[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    repo, snapshot = cached_timm_repo
    assert main(["backbones", "download", f"hf-hub:{repo}"]) == 0
    assert snapshot.name in capsys.readouterr().out


def test_twin_command_writes_hub_layout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones", "twin", "radiology/rad-dino", "--out", str(tmp_path)]) == 0
    snapshot = Path(capsys.readouterr().out.strip())
    assert snapshot.parent.parent == tmp_path / "models--microsoft--rad-dino"
    assert (tmp_path / "models--microsoft--rad-dino" / "refs" / "main").read_text() == snapshot.name


def _run_cli(
    env_changes: dict[str, str | None], *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    env = dict(os.environ)
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "hfm", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    return proc, time.monotonic() - start


@pytest.mark.parametrize("mode", ["offline", "unreachable"])
def test_uncached_model_fails_fast_with_one_line(mode: str, closed_port: int) -> None:
    if mode == "offline":
        changes: dict[str, str | None] = {"HF_HUB_OFFLINE": "1"}
    else:
        changes = {"HF_HUB_OFFLINE": None, "HF_ENDPOINT": f"http://127.0.0.1:{closed_port}"}
    proc, seconds = _run_cli(changes, "backbones", "download", "pathology/uni")
    assert seconds < 10
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hfm: error:")
    assert "hfm backbones download pathology/uni" in lines[0] and "HF_ENDPOINT" in lines[0]
    assert ("HF_HUB_OFFLINE" if mode == "offline" else "unreachable") in lines[0]
