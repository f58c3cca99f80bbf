"""``benchmarks/mil.py --quick`` runs end to end on the shared BCCD smears and writes its table and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_benchmarks_smoke import load


@pytest.mark.slow
def test_mil_benchmark_quick_mode(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load("mil")
    code = module.main(["--quick", "--threads", "2", "--results-dir", str(tmp_path), "--shared", str(shared_data),
                        "--shots", "1", "--aggregators", "abmil,mean"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    payload = json.loads((tmp_path / "mil.json").read_text())
    assert payload["quick"] is True
    assert {r["aggregator"] for r in payload["records"]} == {"abmil", "mean"}
    assert "bccd-platelets|1|abmil-mean" in payload["summary"]["diffs"]
    assert (tmp_path / "mil.md").is_file() and (tmp_path / "mil.png").is_file()


def test_mil_benchmark_needs_its_backbone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = load("mil")
    monkeypatch.setattr(module, "DEFAULT_BACKBONE", tmp_path / "absent")
    assert module.main(["--shared", str(tmp_path)]) == 2
    assert "no backbone at" in capsys.readouterr().out
