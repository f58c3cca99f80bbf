"""Shared harness for the benchmarks: arguments, interleaved timing, medians, machine facts, JSON results.

Every benchmark compares an hfm path with the code a user would write by hand, in the same process. Timings on a
small shared machine drift by 2x within a minute, so candidates are timed in interleaved rounds (A B, B A, A B,
...) after a warm-up and each ratio is the median of the per-round ratios: drift hits both sides of a round alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # a checkout without ``pip install -e .`` (e.g. a bare GPU machine)
    sys.path.append(str(REPO_ROOT))
SHARED_DATA = Path(os.environ.get("HFM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every benchmark takes; scripts add their own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny twin and few items: a smoke run in seconds")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per candidate (after warm-up)")
    p.add_argument(
        "--warmup", type=int, default=None, help="untimed warm-up repetitions per candidate (1; quick 0)"
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
    p.add_argument(
        "--results-dir",
        type=Path,
        default=None,
        help=f"where to write <name>.json (default {RESULTS_DIR}; --quick writes nothing unless given)",
    )
    return p


def parse_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse and fill the defaults that depend on ``--quick``."""
    args = p.parse_args(argv)
    if args.warmup is None:
        args.warmup = 0 if args.quick else 1
    return args


def setup_threads(threads: int | None) -> int:
    """Pin torch's intra-op thread count (both sides of a comparison share it) and return it.

    Warns when other processes already keep the cores busy: every timing then drifts, ratios less so.
    """
    import torch

    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load:.1f} on {os.cpu_count()} cores: other work competes, timings drift"
        )
    return n


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def interleaved(
    candidates: dict[str, Callable[[], Any]], reps: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Time each candidate ``reps`` times in interleaved rounds, alternating the order every round.

    Returns:
        Seconds per call for each candidate, round by round (index ``r`` of every list is the same round).
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            candidates[name]()
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(numerator: list[float], denominator: list[float]) -> float:
    """Median of the per-round ratios ``numerator[r] / denominator[r]``."""
    return median([a / b for a, b in zip(numerator, denominator, strict=True)])


def cpu_model() -> str:
    """The CPU's model name as lscpu (or /proc/cpuinfo) gives it."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """Facts that make a figure interpretable: CPU, cores, threads, library versions."""
    import torch

    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "load_average_1m": os.getloadavg()[0],
    }
    try:
        import timm

        info["timm"] = timm.__version__
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_result(name: str, payload: dict[str, Any], args: argparse.Namespace) -> Path | None:
    """Write ``<results-dir>/<name>.json`` (a quick run writes only when a directory was given)."""
    if args.quick and args.results_dir is None:
        return None
    folder: Path = args.results_dir or RESULTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    payload = {
        "benchmark": name,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "quick": bool(args.quick),
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    print(f"wrote {path}")
    return path


def print_ratio(label: str, value: float, target: str, ok: bool) -> None:
    """One greppable line per ratio: ``ratio <label>: <value> (target <target>) PASS|MISS``."""
    print(f"ratio {label}: {value:.3f} (target {target}) {'PASS' if ok else 'MISS'}")


def vit_folder(
    folder: Path,
    architecture: str = "vit_small_patch16_224",
    img_size: int = 112,
    *,
    quick: bool = False,
    seed: int = 0,
    **model_kwargs: Any,
) -> Path:
    """Write a real timm architecture with random weights as a local model folder (timm's Hub layout).

    ``quick`` swaps in a tiny twin of the same family (width 64, depth 2, 32 px) for smoke runs. The folder
    loads with ``hfm.load_backbone("local-dir:<folder>")``, so benchmarks go through the real loader.
    """
    import timm
    import torch
    from timm.models import save_for_hf

    if quick:
        img_size = 32
        model_kwargs = {"embed_dim": 64, "depth": 2, "num_heads": 2, **model_kwargs}
    torch.manual_seed(seed)
    model = timm.create_model(
        architecture,
        pretrained=False,
        num_classes=0,
        img_size=img_size,
        pretrained_cfg_overlay={"input_size": (3, img_size, img_size)},
        **model_kwargs,
    )
    folder.mkdir(parents=True, exist_ok=True)
    save_for_hf(
        model, str(folder), model_args={"img_size": img_size, **model_kwargs}, safe_serialization=True
    )
    return folder


def vit_backbone(
    architecture: str = "vit_small_patch16_224",
    img_size: int = 112,
    *,
    quick: bool = False,
    folder: Path | None = None,
    **model_kwargs: Any,
) -> Any:
    """A random-weight timm ViT loaded as an hfm ``Backbone`` through ``load_backbone("local-dir:...")``."""
    import tempfile

    from hfm.backbones import load_backbone

    target = folder or Path(tempfile.mkdtemp(prefix="hfm-bench-model-"))
    vit_folder(target, architecture, img_size, quick=quick, **model_kwargs)
    return load_backbone(f"local-dir:{target}")


def fmt_table(rows: list[dict[str, Any]]) -> str:
    """A small plain-text table (first row's keys are the columns)."""
    if not rows:
        return ""
    cols = list(rows[0])
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
