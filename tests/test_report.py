"""Sweep summaries: aggregation over seeds, the table formats and the label-efficiency plot."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from hfm.report import summarize_runs, to_csv, to_markdown, write_summary

METRICS = ["accuracy", "balanced_accuracy"]


def _run(preset: str, k: int | str, seed: int, acc: float, bal: float | None) -> dict:
    return {
        "preset": preset,
        "tuner": preset.split("/")[0],
        "k": k,
        "seed": seed,
        "n_train": 3 * (k if k != "all" else 20),
        "test": {
            "accuracy": acc,
            "balanced_accuracy": bal,
            "ci": {
                "accuracy": [acc - 0.1, acc + 0.1],
                "balanced_accuracy": [None, None] if bal is None else [bal - 0.2, bal + 0.2],
            },
        },
    }


RUNS = [
    _run("probe/logreg", 8, 0, 0.8, 0.7),
    _run("probe/logreg", 8, 1, 0.6, 0.5),
    _run("probe/logreg", 2, 0, 0.5, 0.4),
    _run("probe/logreg", "all", 0, 0.9, 0.9),
    _run("lora/r8-attn", 2, 1, 0.4, None),
]


def test_rows_aggregate_over_seeds_in_k_order() -> None:
    summary = summarize_runs(RUNS, METRICS, "balanced_accuracy")
    keys = [(r["preset"], r["k"]) for r in summary["rows"]]
    assert keys == [("probe/logreg", 2), ("probe/logreg", 8), ("probe/logreg", "all"), ("lora/r8-attn", 2)]
    row = summary["rows"][1]
    assert row["seeds"] == [0, 1]
    assert row["accuracy"]["mean"] == pytest.approx(0.7)
    assert row["accuracy"]["std"] == pytest.approx(np.std([0.8, 0.6], ddof=1))
    assert row["accuracy"]["ci95"] == pytest.approx([0.6, 0.8])  # mean of per-seed bounds
    assert row["balanced_accuracy"]["per_seed"] == [0.7, 0.5]
    lora = summary["rows"][3]
    assert lora["balanced_accuracy"]["mean"] is None and lora["balanced_accuracy"]["ci95"] == [None, None]


def test_markdown_and_csv() -> None:
    summary = summarize_runs(RUNS, METRICS, "balanced_accuracy")
    md = to_markdown(summary)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| preset | k | seeds | balanced_accuracy (mean ± std) | 95% CI | accuracy |")
    assert "| probe/logreg | 8 | 2 | 0.600 ± 0.141 | [0.400, 0.800] | 0.700 ± 0.141 |" in md
    assert "| lora/r8-attn | 2 | 1 | n/a ± n/a | n/a |" in md
    rows = list(csv.DictReader(io.StringIO(to_csv(summary))))
    assert len(rows) == 4
    assert float(rows[1]["accuracy_mean"]) == pytest.approx(0.7)
    assert rows[3]["balanced_accuracy_mean"] == ""


def test_write_summary_writes_every_file(tmp_path: Path) -> None:
    summary = write_summary(tmp_path, RUNS, METRICS, "accuracy", title="demo", extra={"recipe_name": "demo"})
    for name in ("summary.json", "summary.csv", "summary.md", "label_efficiency.png"):
        assert (tmp_path / name).is_file(), name
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["recipe_name"] == "demo" and data["primary_metric"] == "accuracy" and len(data["rows"]) == 4
    assert (tmp_path / "label_efficiency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary["table"] == to_markdown(summarize_runs(RUNS, METRICS, "accuracy"))


def test_empty_sweep_writes_tables_without_plot(tmp_path: Path) -> None:
    write_summary(tmp_path, [], METRICS, "accuracy")
    assert (tmp_path / "summary.md").is_file() and not (tmp_path / "label_efficiency.png").exists()
