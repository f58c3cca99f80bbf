"""Sweep summaries: preset x k tables (JSON, CSV, Markdown) and the label-efficiency plot.

Each cell aggregates the runs of one (preset, k) over seeds: the mean and sample standard deviation of each
metric, and the 95% bootstrap interval on the test split averaged over seeds (the mean of the per-seed lower and
upper bounds). The standard deviation says how much the result moves with the few-shot draw; the interval says
how much it would move with another test set of the same size.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hfm.metrics import summarize
from hfm.sweep import DEFAULT_SAMPLER, k_order


def series_name(run: dict[str, Any]) -> str:
    """A run's row name: its preset, followed by ``[sampler]`` when an active-learning sampler chose its labels."""
    sampler = run.get("sampler", DEFAULT_SAMPLER)
    return run["preset"] if sampler == DEFAULT_SAMPLER else f"{run['preset']} [{sampler}]"


def summarize_runs(runs: Sequence[dict[str, Any]], metrics: Sequence[str], primary: str) -> dict[str, Any]:
    """Aggregate finished runs into rows, one per (preset, k), in preset order then k order.

    The one summary of a sweep: the sweep folder's tables and the model card's evaluation table both come from
    here (the card from the runs it publishes).

    Args:
        runs: ``metrics.json`` contents of each finished run (keys ``preset``, ``k``, ``seed``, ``test``).
        metrics: Metric names to aggregate.
        primary: The metric tabulated first and plotted.
    """
    presets: list[str] = []
    cells: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for run in runs:
        series = series_name(run)
        if series not in presets:
            presets.append(series)
        cells.setdefault((series, run["k"]), []).append(run)
    rows = []
    for preset in presets:
        ks = sorted({k for (p, k) in cells if p == preset}, key=k_order)
        for k in ks:
            group = sorted(cells[(preset, k)], key=lambda r: r["seed"])
            row: dict[str, Any] = {
                "preset": preset,
                "tuner": group[0].get("tuner"),
                "method": group[0].get("method", "supervised"),
                "k": k,
                "seeds": [r["seed"] for r in group],
                "n_train": [r.get("n_train") for r in group],
            }
            for name in metrics:
                stats = summarize([r["test"].get(name) for r in group])
                lows = [r["test"].get("ci", {}).get(name, [None, None])[0] for r in group]
                highs = [r["test"].get("ci", {}).get(name, [None, None])[1] for r in group]
                low, high = summarize(lows)["mean"], summarize(highs)["mean"]
                stats["ci95"] = [low, high]
                stats["per_seed"] = [r["test"].get(name) for r in group]
                row[name] = stats
            rows.append(row)
    return {"primary_metric": primary, "metrics": list(metrics), "rows": rows}


def _fmt(value: float | None, digits: int = 3) -> str:
    return (
        "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"
    )


def _cell(stats: dict[str, Any]) -> str:
    return f"{_fmt(stats['mean'])} ± {_fmt(stats['std'])}"


def _interval(stats: dict[str, Any]) -> str:
    low, high = stats["ci95"]
    return "n/a" if low is None else f"[{_fmt(low)}, {_fmt(high)}]"


def to_markdown(summary: dict[str, Any]) -> str:
    """A Markdown table: preset, k, seeds, the primary metric (mean ± std, 95% CI), then the other metrics."""
    primary = summary["primary_metric"]
    others = [m for m in summary["metrics"] if m != primary]
    header = ["preset", "k", "seeds", f"{primary} (mean ± std)", "95% CI", *[f"{m}" for m in others]]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in summary["rows"]:
        cells = [
            row["preset"],
            str(row["k"]),
            str(len(row["seeds"])),
            _cell(row[primary]),
            _interval(row[primary]),
            *[_cell(row[m]) for m in others],
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(summary: dict[str, Any]) -> str:
    """One CSV row per (preset, k): mean, std, CI bounds and seed count for each metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    metrics = summary["metrics"]
    header = ["preset", "tuner", "k", "n_seeds"]
    for m in metrics:
        header += [f"{m}_mean", f"{m}_std", f"{m}_ci95_low", f"{m}_ci95_high"]
    writer.writerow(header)
    for row in summary["rows"]:
        values: list[Any] = [row["preset"], row["tuner"], row["k"], len(row["seeds"])]
        for m in metrics:
            stats = row[m]
            values += [stats["mean"], stats["std"], *stats["ci95"]]
        writer.writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def plot_label_efficiency(summary: dict[str, Any], path: Path, title: str = "") -> Path:
    """The primary metric against k: a line per preset (mean over seeds) with a ±1 std band over seeds.

    k is placed on a log2 axis; ``all`` sits one step to the right of the largest numeric k and k = 0
    (zero-shot) one step to the left of the smallest positive k. A preset run at k = 0 only is also drawn as a
    dashed level across the plot, so the k where a few-shot curve overtakes zero-shot shows.
    """
    # A bare Figure draws off-screen without touching pyplot's backend or its global figure list, so a
    # notebook's own inline plots keep working after a sweep.
    from matplotlib.figure import Figure

    primary = summary["primary_metric"]
    rows = summary["rows"]
    numeric = sorted({r["k"] for r in rows if r["k"] != "all"})
    top = max(numeric) if numeric else 1
    all_x = float(top) * 2
    zero_x = min([float(k) for k in numeric if k != 0] or [1.0]) / 2

    def x_of(k: int | str) -> float:
        return all_x if k == "all" else zero_x if k == 0 else float(k)

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    ax = fig.subplots()
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    for preset in presets:
        mine = [r for r in rows if r["preset"] == preset and r[primary]["mean"] is not None]
        if not mine:
            continue
        xs = np.array([x_of(r["k"]) for r in mine])
        mean = np.array([r[primary]["mean"] for r in mine])
        std = np.array([r[primary]["std"] for r in mine])
        (line,) = ax.plot(xs, mean, marker="o", label=preset)
        ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        if all(r["k"] == 0 for r in mine):
            ax.axhline(float(mean[0]), color=line.get_color(), linestyle="--", linewidth=1)
    ticks = [x_of(k) for k in numeric] + ([all_x] if any(r["k"] == "all" for r in rows) else [])
    labels = [str(k) for k in numeric] + (["all"] if len(ticks) > len(numeric) else [])
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels)
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylabel(f"{primary.replace('_', ' ')} (test)")
    ax.set_title(title or "label efficiency")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def write_summary(
    out_dir: Path,
    runs: Sequence[dict[str, Any]],
    metrics: Sequence[str],
    primary: str,
    *,
    title: str = "",
    extra: dict[str, Any] | None = None,
    baselines: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Write ``summary.json``, ``summary.csv``, ``summary.md`` and ``label_efficiency.png`` in ``out_dir``.

    With ``baselines`` (``{preset: baseline preset}``, e.g. :func:`hfm.paired.labelled_only_twins`), each such
    preset's paired difference of the primary metric over seeds is added: ``summary["gains"]``, ``gains.md``
    and ``gains.png``.

    Returns:
        The summary (as written to ``summary.json``), with the Markdown table under ``"table"``.
    """
    summary = summarize_runs(runs, metrics, primary)
    summary.update(extra or {})
    table = to_markdown(summary)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / "summary.csv").write_text(to_csv(summary), encoding="utf-8")
    heading = f"# {title}\n\n" if title else ""
    gains_table = ""
    if baselines:
        from hfm.paired import gains_markdown, paired_gains, plot_gains

        summary["gains"] = paired_gains(runs, baselines, primary)
        gains_table = gains_markdown(summary["gains"])
        if gains_table:
            gains_table = "## Gain over the baseline preset (paired over seeds)\n\n" + gains_table
            (out_dir / "gains.md").write_text(heading + gains_table, encoding="utf-8")
            plot_gains(summary["gains"], out_dir / "gains.png", title=title)
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / "summary.md").write_text(heading + table, encoding="utf-8")
    if summary["rows"]:
        plot_label_efficiency(summary, out_dir / "label_efficiency.png", title=title)
    summary["table"] = table
    if gains_table:
        summary["gains_table"] = gains_table
    return summary
