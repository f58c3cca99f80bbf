"""Paired differences against a baseline preset: the statistic, the twin matching, and the sweep's gains table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy import stats

from hfm.paired import gains_markdown, labelled_only_twins, paired_difference, paired_gains
from hfm.recipes import Preset
from hfm.runner import run


def test_paired_difference_is_the_t_interval_of_the_per_seed_differences() -> None:
    method = {0: 0.70, 1: 0.62, 2: 0.80, 3: 0.55, 9: 0.9}
    base = {0: 0.60, 1: 0.61, 2: 0.70, 3: 0.58, 4: 0.5}
    d = [0.10, 0.01, 0.10, -0.03]  # seeds both have: 0..3
    out = paired_difference(method, base)
    low, high = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert out["n"] == 4 and out["seeds"] == [0, 1, 2, 3] and out["wins"] == 3
    assert out["mean"] == pytest.approx(sum(d) / 4)
    assert out["ci95"] == pytest.approx([low, high])
    assert paired_difference({0: 0.5}, {0: 0.4})["ci95"] == [None, None]
    assert paired_difference({0: 0.5}, {1: 0.4})["n"] == 0


def test_paired_sequences_and_the_sampler_report_share_the_one_helper() -> None:
    from hfm import sampler_report

    assert sampler_report.paired_difference is paired_difference  # one implementation, not two
    out = paired_difference([0.70, 0.62, 0.80, 0.55], [0.60, 0.61, 0.70, 0.58])
    assert out == paired_difference(
        {0: 0.70, 1: 0.62, 2: 0.80, 3: 0.55}, {0: 0.60, 1: 0.61, 2: 0.70, 3: 0.58}
    )
    with pytest.raises(ValueError, match="length"):
        paired_difference([0.5, 0.6], [0.4])
    runs = [
        {"preset": "p", "k": 1, "seed": s, "sampler": name, "test": {"acc": v}}
        for name, values in (("random", [0.5, 0.6, 0.4]), ("typiclust", [0.6, 0.6, 0.5]))
        for s, v in enumerate(values)
    ]
    (row,) = sampler_report.compare(runs, "acc")
    assert row["difference"] == paired_difference([0.6, 0.6, 0.5], [0.5, 0.6, 0.4])
    assert "| p | 1 | typiclust | 0.567 | 0.500 | +0.067 [" in sampler_report.to_markdown([row])


def test_a_preset_is_paired_with_its_labelled_only_twin() -> None:
    presets = [
        Preset(name="lora/r8-attn", tuner="lora", params={"r": 8}),
        Preset(name="lora/r4", tuner="lora", params={"r": 4}),
        Preset(name="fixmatch/lora-r8", tuner="lora", params={"r": 8}, method={"name": "fixmatch"}),
        Preset(name="fixmatch/lora-r2", tuner="lora", params={"r": 2}, method={"name": "fixmatch"}),
        Preset(name="probe/logreg", tuner="probe"),
        Preset(name="label-spreading/knn", tuner="probe", method="label-spreading"),
    ]
    assert labelled_only_twins(presets) == {
        "fixmatch/lora-r8": "lora/r8-attn",
        "label-spreading/knn": "probe/logreg",
    }


def test_gains_rows_follow_presets_and_k() -> None:
    runs = [
        {"preset": p, "k": k, "seed": s, "test": {"balanced_accuracy": v + 0.1 * (p == "m") + 0.01 * s}}
        for p in ("b", "m") for k in (4, 1) for s in range(3) for v in [0.5]
    ]  # fmt: skip
    rows = paired_gains(runs, {"m": "b"}, "balanced_accuracy")
    assert [(r["preset"], r["k"]) for r in rows] == [("m", 1), ("m", 4)]
    assert all(r["mean"] == pytest.approx(0.1) and r["wins"] == 3 for r in rows)
    assert "| m | b | 1 | 3 | +0.100 ± 0.000 |" in gains_markdown(rows)


def test_a_sweep_writes_each_semi_supervised_presets_gain_over_its_twin(tmp_path: Path) -> None:
    recipe = {
        "name": "gains",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": {
            "type": "synthetic",
            "n_classes": 2,
            "n_per_class": 10,
            "n_val_per_class": 2,
            "n_test_per_class": 4,
        },
        "presets": ["probe/logreg", "label-spreading/knn"],
        "shots": [1, 2],
        "seeds": [0, 1],
        "bootstrap": 0,
        "output": str(tmp_path / "out"),
    }
    assert run(recipe, progress=False, verbose=False).ok
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(g["preset"], g["baseline"], g["k"], g["n"]) for g in summary["gains"]] == [
        ("label-spreading/knn", "probe/logreg", 1, 2), ("label-spreading/knn", "probe/logreg", 2, 2)]  # fmt: skip
    assert "| label-spreading/knn | probe/logreg | 1 | 2 |" in (tmp_path / "out" / "gains.md").read_text()
    assert (tmp_path / "out" / "gains.png").is_file()
