"""Every benchmark script runs end to end in its ``--quick`` mode (tiny twins) and prints its ratio.

Performance is never asserted here: only that each script runs, prints a ``ratio ...`` line with a number
and writes its JSON result. The scripts run in-process (``main(argv)``) so the test pays for the imports once.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RATIO = re.compile(r"^ratio [^:]+: -?\d+\.\d+ ", re.MULTILINE)


def load(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` as a module (the folder is not a package)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize(
    ("script", "result", "extra"),
    [
        ("embed_throughput", "embed_throughput", []),
        ("sweep_amortization", "sweep_amortization", []),
        ("probe_fit", "probe_fit", []),
        ("lora_vs_full", "lora_vs_full", []),
        ("gpu", "gpu", ["--dry-run"]),
        ("active_learning", "active_learning", []),
        ("federated", "federated", []),
        ("pretrain_throughput", "pretrain_throughput", []),
        ("pretrain_study", "pretrain_study", []),
        ("scale_out", "scale_out", []),
    ],
)
def test_benchmark_quick_mode_prints_a_ratio(
    script: str, result: str, extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load(script)
    code = module.main(["--quick", "--threads", "2", "--results-dir", str(tmp_path), *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    assert RATIO.search(out), f"no ratio line in:\n{out}"
    payload = json.loads((tmp_path / f"{result}.json").read_text())
    assert payload["benchmark"] == result
    assert payload["quick"] is True
    assert payload["machine"]["cores"] >= 1


def test_gpu_peak_detection_knows_the_h100_and_h200_names() -> None:
    gpu = load("gpu")
    assert gpu.detect_peak("NVIDIA H100 80GB HBM3") == (989.4, "H100")
    assert gpu.detect_peak("NVIDIA H100 PCIe")[0] == 756.0
    assert gpu.detect_peak("NVIDIA H100 NVL")[0] == 835.0
    assert gpu.detect_peak("NVIDIA H200")[0] == 989.4
    assert gpu.detect_peak("NVIDIA H200 NVL")[0] == 835.0
    assert gpu.detect_peak("NVIDIA A100-SXM4-80GB") == (None, "unknown")


def test_paired_ratio_and_interleaving_alternate_order() -> None:
    common = load("_common")
    calls: list[str] = []
    times = common.interleaved(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, reps=3, warmup=1
    )
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]
    assert [len(v) for v in times.values()] == [3, 3]
    assert common.paired_ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == 2.0


@pytest.mark.slow
def test_semi_supervised_benchmark_quick_mode_writes_paired_gains(tmp_path: Path) -> None:
    """The semi-supervised study's quick mode: each semi-supervised preset paired with its labelled-only twin."""
    module = load("semi_supervised")
    code = module.main(
        ["--quick", "--threads", "2", "--results-dir", str(tmp_path), "--out", str(tmp_path / "s")]
    )
    assert code == 0
    payload = json.loads((tmp_path / "semi_supervised.json").read_text())
    assert payload["quick"] is True
    pairs = {(g["preset"], g["baseline"]) for part in payload["results"].values() for g in part["gains"]}
    assert ("label-spreading/knn", "probe/logreg") in pairs and ("fixmatch/full", "full/sup") in pairs
    assert all(g["n"] == 2 for part in payload["results"].values() for g in part["gains"])
