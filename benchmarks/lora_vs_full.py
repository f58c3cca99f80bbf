"""LoRA against full fine-tuning: training step time and peak memory, same architecture, same batch.

Both models come from hfm's tuner registry (``get_tuner("lora")`` with its defaults: r=8 on the spec's
attention targets; ``get_tuner("full")``) on a real architecture with random weights (timm ViT-S/16 at
112 px, loaded through ``hfm.load_backbone("local-dir:...")``). One step is what ``hfm.train.fit`` does per
batch: forward, cross-entropy, backward, AdamW step on ``trainable_parameters()``, zero grads; fp32.

* Step time: both models live in one process and are timed in interleaved rounds after a warm-up.
* Peak memory: each tuner runs in a fresh subprocess; we report the peak resident set size (``ru_maxrss``)
  and its growth over the RSS just before the first step (activations kept for backward, gradients, AdamW
  state). ``tracemalloc`` cannot be used: it sees only Python's allocator, not torch's CPU tensors.

Command: ``python benchmarks/lora_vs_full.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

NUM_CLASSES = 4


def rss_mb() -> float:
    """Current resident set size in MiB (Linux ``/proc``; falls back to the peak elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(tuner: str, folder: Path) -> Any:
    """An hfm AdaptedModel for ``tuner`` on a fresh copy of the benchmark backbone, in train mode."""
    from hfm.backbones import load_backbone
    from hfm.tuners import get_tuner

    model = get_tuner(tuner)(load_backbone(f"local-dir:{folder}"), NUM_CLASSES)
    model.train()
    return model


def make_step(model: Any, batch: int, size: int) -> Any:
    """One training step on a fixed random batch: forward, loss, backward, AdamW, zero grads."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g)
    y = torch.randint(0, NUM_CLASSES, (batch,), generator=g)
    params = list(model.trainable_parameters().values())
    optimizer = torch.optim.AdamW(params, lr=1e-4)

    def step() -> float:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    return step


def memory_child(tuner: str, folder: Path, batch: int, size: int, steps: int) -> dict[str, Any]:
    """Run in a fresh process: RSS before the first step, peak RSS after ``steps`` steps."""
    model = build(tuner, folder)
    step = make_step(model, batch, size)
    before = rss_mb()
    for _ in range(steps):
        step()
    peak = peak_rss_mb()
    trainable = sum(p.numel() for p in model.trainable_parameters().values())
    total = sum(p.numel() for p in model.parameters())
    return {
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "growth_mb": peak - before,
        "trainable": trainable,
        "total": total,
    }


def measure_memory(
    tuner: str, folder: Path, batch: int, size: int, steps: int, threads: int
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        __file__,
        "--memory-child",
        tuner,
        "--model-dir",
        str(folder),
        "--batch",
        str(batch),
        "--threads",
        str(threads),
        "--steps",
        str(steps),
        "--size",
        str(size),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=600).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=None, help="images per step (default 32; quick 4)")
    p.add_argument("--steps", type=int, default=None, help="steps per timed repetition (default 2)")
    p.add_argument("--memory-child", choices=["lora", "full"], default=None, help=argparse_hidden())
    p.add_argument("--model-dir", type=Path, default=None, help=argparse_hidden())
    p.add_argument("--size", type=int, default=None, help=argparse_hidden())
    args = _common.parse_args(p, argv)
    threads = _common.setup_threads(args.threads)
    batch = args.batch or (4 if args.quick else 32)
    steps = args.steps or (1 if args.quick else 2)
    if args.memory_child:
        assert args.model_dir is not None and args.size is not None
        print(json.dumps(memory_child(args.memory_child, args.model_dir, batch, args.size, max(steps, 2))))
        return 0

    reps = args.reps or (1 if args.quick else 5)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hfm-bench-lora-") as tmp:
        folder = Path(tmp) / "model"
        _common.vit_folder(folder, quick=args.quick)
        models = {name: build(name, folder) for name in ("lora", "full")}
        size = models["lora"].backbone.spec.input_size
        steps_fn = {name: make_step(m, batch, size) for name, m in models.items()}

        def rep(name: str) -> Any:
            return lambda: [steps_fn[name]() for _ in range(steps)]

        times = _common.interleaved({name: rep(name) for name in models}, reps=reps, warmup=args.warmup)
        counts = {
            name: (
                sum(p.numel() for p in m.trainable_parameters().values()),
                sum(p.numel() for p in m.parameters()),
            )
            for name, m in models.items()
        }
        models.clear()
        steps_fn.clear()
        if args.quick:  # in-process (saves two interpreter start-ups); figures only indicative
            memory = {name: memory_child(name, folder, batch, size, 2) for name in ("lora", "full")}
        else:
            memory = {
                name: measure_memory(name, folder, batch, size, steps, threads) for name in ("lora", "full")
            }

    step_s = {name: _common.median(v) / steps for name, v in times.items()}
    time_ratio = _common.paired_ratio(times["lora"], times["full"])
    peak_ratio = memory["lora"]["peak_rss_mb"] / memory["full"]["peak_rss_mb"]
    growth_ratio = memory["lora"]["growth_mb"] / max(memory["full"]["growth_mb"], 1e-9)
    rows = [
        {
            "tuner": name,
            "trainable": counts[name][0],
            "params": counts[name][1],
            "step_s": step_s[name],
            "images_per_s": batch / step_s[name],
            "peak_rss_mb": memory[name]["peak_rss_mb"],
            "growth_mb": memory[name]["growth_mb"],
        }
        for name in ("lora", "full")
    ]
    print(f"batch {batch} at {size} px, {threads} threads, fp32, {steps} steps x {reps} interleaved rounds")
    print(_common.fmt_table(rows))
    _common.print_ratio("lora/full step time", time_ratio, "<= 1 (LoRA not slower)", time_ratio <= 1.0)
    print(f"ratio lora/full peak RSS: {peak_ratio:.3f} (reported)")
    print(f"ratio lora/full memory growth during training: {growth_ratio:.3f} (reported)")
    payload = {
        "machine": _common.machine_info(threads),
        "setup": {
            "architecture": "vit_small_patch16_224",
            "img_size": size,
            "batch": batch,
            "steps": steps,
            "reps": reps,
        },
        "results": rows,
        "memory": memory,
        "times_s": times,
        "ratio_step_time": time_ratio,
        "ratio_peak_rss": peak_ratio,
        "ratio_memory_growth": growth_ratio,
        "wall_s": time.perf_counter() - start,
    }
    _common.write_result("lora_vs_full", payload, args)
    return 0


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    sys.exit(main())
