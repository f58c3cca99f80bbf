"""Active-learning samplers against a baseline at equal budgets: paired differences over seeds.

In a sweep with a ``samplers:`` axis every sampler of one (preset, k, seed) is evaluated on the same test split
with the same training seed; only the labelled examples differ. The difference of the primary metric between a
sampler and the baseline (``random``) is therefore paired by seed, and its 95% interval is the t-interval of the
per-seed differences (the spread of the draw, not of the test set), from :func:`hfm.paired.paired_difference`
like every paired comparison in hfm. Written as ``samplers.json|md`` next to the summary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hfm.paired import paired_difference
from hfm.sweep import k_order

BASELINE = "random"
FILES = ("samplers.json", "samplers.md")


def compare(runs: Sequence[dict[str, Any]], metric: str, baseline: str = BASELINE) -> list[dict[str, Any]]:
    """One row per (preset, k, sampler other than the baseline): the paired difference over shared seeds."""
    table: dict[tuple[str, Any, str], dict[int, float]] = {}
    for run in runs:
        value = run["test"].get(metric)
        if value is not None:
            table.setdefault((run["preset"], run["k"], run.get("sampler", "")), {})[int(run["seed"])] = value
    rows = []
    for (preset, k, sampler), by_seed in sorted(table.items(), key=lambda kv: (kv[0][0], k_order(kv[0][1]))):
        base = table.get((preset, k, baseline))
        if sampler == baseline or base is None:
            continue
        seeds = sorted(set(by_seed) & set(base))
        if not seeds:
            continue
        diff = paired_difference({s: by_seed[s] for s in seeds}, {s: base[s] for s in seeds})
        rows.append(
            {
                "preset": preset,
                "k": k,
                "sampler": sampler,
                "baseline": baseline,
                "metric": metric,
                "sampler_mean": float(np.mean([by_seed[s] for s in seeds])),
                "baseline_mean": float(np.mean([base[s] for s in seeds])),
                "difference": diff,
            }
        )
    return rows


def to_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison as a Markdown table."""
    if not rows:
        return ""
    metric, baseline = rows[0]["metric"], rows[0]["baseline"]
    lines = [
        f"| preset | k | sampler | {metric} | {baseline} | difference (95% CI) | seeds won |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["difference"]
        low, high = d["ci95"]
        ci = "" if low is None else f" [{low:+.3f}, {high:+.3f}]"
        lines.append(
            f"| {r['preset']} | {r['k']} | {r['sampler']} | {r['sampler_mean']:.3f} | {r['baseline_mean']:.3f} "
            f"| {d['mean']:+.3f}{ci} | {d['wins']}/{d['n']} |"
        )
    return "\n".join(lines) + "\n"


def write(out_dir: Path, runs: Sequence[dict[str, Any]], metric: str, baseline: str = BASELINE) -> list[Path]:
    """Write ``samplers.json`` and ``samplers.md`` when the runs hold the baseline and another sampler."""
    rows = compare(runs, metric, baseline)
    if not rows:
        return []
    json_path, md_path = (out_dir / name for name in FILES)
    json_path.write_text(json.dumps({"metric": metric, "baseline": baseline, "rows": rows}, indent=1))
    md_path.write_text(to_markdown(rows), encoding="utf-8")
    return [json_path, md_path]


__all__ = ["BASELINE", "compare", "paired_difference", "to_markdown", "write"]
