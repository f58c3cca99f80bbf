"""Paired differences against a baseline preset measured in the same sweep, with the interval of the difference.

Every preset of a sweep is trained and tested on the same draws (same labelled examples per (k, seed)), so a
method's gain over its baseline is best read seed by seed: ``d_s = metric(method, k, s) - metric(baseline, k, s)``.
The mean of ``d_s`` with a Student-t 95% interval over seeds says whether the gain is more than the luck of the
draw; comparing two means with their own standard deviations would mix the draws' shared luck into the noise.

The baseline of a preset is its **labelled-only twin**: the preset of the same sweep with the same tuner and
tuner parameters and the ``supervised`` method (``fixmatch/lora-r8`` -> ``lora/r8-attn``, ``label-spreading/knn``
-> ``probe/logreg``). Other comparisons (an active-learning sampler against random, a MIL aggregator against
mean pooling) pass their own ``{preset: baseline}`` mapping to :func:`paired_gains`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from hfm.sweep import k_order

SUPERVISED = "supervised"


def paired_difference(
    values: Mapping[int, float | None] | Sequence[float],
    baseline: Mapping[int, float | None] | Sequence[float],
) -> dict[str, Any]:
    """Mean, standard deviation and 95% t-interval of ``values[s] - baseline[s]`` over the seeds both have.

    The one paired-difference helper of hfm: the semi-supervised gains, the active-learning samplers
    (:mod:`hfm.sampler_report`) and the benchmarks all report through it.

    Args:
        values: ``{seed: metric}``, or a sequence already paired position by position with ``baseline``.
        baseline: The baseline's metric in the same form; seeds missing on either side (or ``None``) are skipped.

    Returns:
        ``{"mean", "std", "ci95": [low, high], "n", "seeds", "wins"}``; with one pair the interval is
        ``[None, None]``, with none every statistic is ``None``.
    """
    if not isinstance(values, Mapping) or not isinstance(baseline, Mapping):
        if len(values) != len(baseline):
            raise ValueError(f"paired sequences differ in length: {len(values)} vs {len(baseline)}")
        values, baseline = dict(enumerate(values)), dict(enumerate(baseline))
    seeds = sorted(s for s in values if s in baseline and values[s] is not None and baseline[s] is not None)
    diffs = np.array([float(values[s]) - float(baseline[s]) for s in seeds], dtype=np.float64)  # type: ignore[arg-type]
    n = len(diffs)
    if n == 0:
        return {"mean": None, "std": None, "ci95": [None, None], "n": 0, "seeds": [], "wins": 0}
    mean = float(diffs.mean())
    std = float(diffs.std(ddof=1)) if n > 1 else None
    ci: list[float | None] = [None, None]
    if n > 1 and std is not None:
        from scipy.stats import t

        half = float(t.ppf(0.975, n - 1)) * std / math.sqrt(n)
        ci = [mean - half, mean + half]
    return {"mean": mean, "std": std, "ci95": ci, "n": n, "seeds": seeds, "wins": int((diffs > 0).sum())}


def labelled_only_twins(presets: Sequence[Any]) -> dict[str, str]:
    """``{preset: baseline}`` for each non-supervised preset whose labelled-only twin is in ``presets``.

    Args:
        presets: :class:`hfm.recipes.Preset` objects (``name``, ``tuner``, ``params``, ``method.name``).
    """
    twins: dict[str, str] = {}
    for preset in presets:
        if preset.method.name == SUPERVISED:
            continue
        for other in presets:
            if (
                other.method.name == SUPERVISED
                and other.tuner == preset.tuner
                and dict(other.params) == dict(preset.params)
            ):
                twins[preset.name] = other.name
                break
    return twins


def paired_gains(
    runs: Sequence[dict[str, Any]], baselines: Mapping[str, str], metric: str
) -> list[dict[str, Any]]:
    """One row per (preset, k) with a baseline: the paired difference of ``metric`` over seeds.

    Args:
        runs: ``metrics.json`` contents (keys ``preset``, ``k``, ``seed``, ``test``).
        baselines: ``{preset: baseline preset}``.
        metric: The test metric compared.
    """
    table: dict[tuple[str, Any], dict[int, float | None]] = {}
    for run in runs:
        table.setdefault((run["preset"], run["k"]), {})[int(run["seed"])] = run["test"].get(metric)
    rows = []
    presets = list(dict.fromkeys(run["preset"] for run in runs))
    for preset in presets:
        base = baselines.get(preset)
        if base is None:
            continue
        for k in sorted({k for (p, k) in table if p == preset}, key=k_order):
            if (base, k) not in table:
                continue
            diff = paired_difference(table[(preset, k)], table[(base, k)])
            rows.append({"preset": preset, "baseline": base, "k": k, "metric": metric, **diff})
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.3f}"


def gains_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of :func:`paired_gains` rows (empty string when there are none)."""
    if not rows:
        return ""
    metric = rows[0]["metric"]
    lines = [
        f"| preset | baseline | k | pairs | {metric} difference (mean ± std) | 95% CI of the difference | wins |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        std = "n/a" if r["std"] is None else f"{r['std']:.3f}"
        low, high = r["ci95"]
        ci = "n/a" if low is None else f"[{_fmt(low)}, {_fmt(high)}]"
        lines.append(
            f"| {r['preset']} | {r['baseline']} | {r['k']} | {r['n']} | {_fmt(r['mean'])} ± {std} | {ci} "
            f"| {r['wins']}/{r['n']} |"
        )
    return "\n".join(lines) + "\n"


def plot_gains(rows: Sequence[dict[str, Any]], path: Any, title: str = "") -> Any:
    """Each preset's paired difference against k, with its 95% interval as error bars and a zero line."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), dpi=120)
    ax = fig.subplots()
    numeric = sorted({r["k"] for r in rows if r["k"] != "all"})
    all_x = float(max(numeric) if numeric else 1) * 2
    presets = list(dict.fromkeys(r["preset"] for r in rows))
    for i, preset in enumerate(presets):
        mine = [r for r in rows if r["preset"] == preset and r["mean"] is not None]
        if not mine:
            continue
        shift = 2 ** ((i - (len(presets) - 1) / 2) * 0.06)  # side by side on the log axis
        xs = np.array([(all_x if r["k"] == "all" else float(r["k"])) * shift for r in mine])
        mean = np.array([r["mean"] for r in mine])
        low = np.array([r["mean"] if r["ci95"][0] is None else r["ci95"][0] for r in mine])
        high = np.array([r["mean"] if r["ci95"][1] is None else r["ci95"][1] for r in mine])
        ax.errorbar(xs, mean, yerr=[mean - low, high - mean], marker="o", capsize=3,
                    label=f"{preset} - {mine[0]['baseline']}")  # fmt: skip
    ax.axhline(0.0, color="grey", linewidth=1)
    ax.set_xscale("log", base=2)
    ticks = [float(k) for k in numeric] + ([all_x] if any(r["k"] == "all" for r in rows) else [])
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(k) for k in numeric] + (["all"] if len(ticks) > len(numeric) else []))
    ax.minorticks_off()
    ax.set_xlabel("labelled examples per class (k)")
    ax.set_ylabel(f"{rows[0]['metric'].replace('_', ' ')} difference (paired, 95% CI)" if rows else "")
    ax.set_title(title or "gain over the baseline preset")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
