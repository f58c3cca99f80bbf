"""Runs per hour of a LoRA sweep on one GPU machine: 1 process, N workers per GPU, one process per GPU.

The sweep: preset ``lora/r8-attn`` x k in {4, 8, 16} x seeds 0-5 = 18 trained runs (``max_steps`` 50, batch
16, bf16 autocast) on a random-weight timm ViT-B/16 at 224 px and hfm's synthetic source (2 classes, 64 train /
16 val / 64 test images per class at 224 px). Candidates, each a fresh command end to end:

* ``1 process``: ``python -m hfm run`` (one run at a time on GPU 0);
* ``N per device``: ``python -m hfm run --runs-per-device N`` for each N of ``--per-device`` (default 2 4);
* ``GPUs processes``: ``torchrun --nproc_per_node <GPUs> -m hfm run`` (run-parallel), when there are several.

Runs per hour = 18 / wall-clock seconds x 3600 (process start, loading, extraction and the summary included).
``--dry-run`` runs every path on the CPU with a tiny twin and 2 runs (its figures mean nothing).

Command: ``python benchmarks/scale_out_gpu.py`` (about 5 minutes on an H100/H200).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402


def recipe(model_dir: Path, dry: bool) -> dict[str, Any]:
    size = 32 if dry else 224
    per_class = (6, 3, 4) if dry else (64, 16, 64)
    return {
        "name": "bench-scale-out-gpu",
        "backbone": {"name": f"local-dir:{model_dir}"},
        "data": {"type": "synthetic", "n_classes": 2, "n_per_class": per_class[0],
                 "n_val_per_class": per_class[1], "n_test_per_class": per_class[2], "size": size, "seed": 0},
        "presets": ["lora/r8-attn"],
        "shots": [2] if dry else [4, 8, 16],
        "seeds": [0, 1] if dry else list(range(6)),
        "training": {"max_steps": 2 if dry else 50, "batch_size": 4 if dry else 16},
        "bootstrap": 20 if dry else 200,
        "embeddings": {"batch_size": 8 if dry else 128},
    }  # fmt: skip


def sweep(launch: list[str], extra: list[str], recipe_path: Path, out: Path, cache: Path) -> float:
    """Seconds of one sweep command into a fresh folder and a fresh embedding cache."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    env = dict(os.environ, HFM_CACHE=str(cache), PYTHONPATH=str(_common.REPO_ROOT))
    cmd = [*launch, "-m", "hfm", "run", str(recipe_path), "--out", str(out), "--no-progress", *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="tiny twin on the CPU: exercise every path")
    p.add_argument("--per-device", type=int, nargs="+", default=[2, 4], help="workers per GPU to measure")
    args = _common.parse_args(p, argv)
    import torch
    import yaml

    dry = args.dry_run or args.quick
    if not dry and not torch.cuda.is_available():
        raise SystemExit("scale_out_gpu.py: no CUDA device; run on a GPU machine, or pass --dry-run")
    gpus = 0 if dry else torch.cuda.device_count()
    work = Path(tempfile.mkdtemp(prefix="hfm-bench-scale-gpu-"))
    model = _common.vit_folder(work / "model", "vit_base_patch16_224", 224, quick=dry)
    spec = recipe(model, dry)
    recipe_path = work / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(spec))
    n_runs = len(spec["shots"]) * len(spec["seeds"])
    python = [sys.executable]
    candidates: dict[str, tuple[list[str], list[str]]] = {"1 process": (python, [])}
    for n in args.per_device:
        candidates[f"{n} per device"] = (python, ["--runs-per-device", str(n)])
    if gpus > 1:
        torchrun = [*python, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(gpus)]
        candidates[f"{gpus} processes"] = (torchrun, [])
    rows, seconds = [], {}
    for name, (launch, extra) in candidates.items():
        seconds[name] = sweep(launch, extra, recipe_path, work / "out", work / "cache")
        rows.append(
            {"candidate": name, "seconds": seconds[name], "runs_per_hour": n_runs / seconds[name] * 3600}
        )
        print(_common.fmt_table(rows[-1:]), flush=True)
    print(_common.fmt_table(rows))
    best = max(rows[1:], key=lambda r: r["runs_per_hour"]) if len(rows) > 1 else rows[0]
    gain = best["runs_per_hour"] / rows[0]["runs_per_hour"]
    _common.print_ratio(f"runs per hour {best['candidate']} / 1 process", gain, "> 1", gain > 1)
    name = torch.cuda.get_device_name(0) if gpus else "cpu (dry run)"
    if dry and args.results_dir is None:  # a dry run's figures mean nothing: keep them out of results/
        return 0
    _common.write_result(
        "scale_out_gpu",
        {"machine": _common.machine_info(), "device": name, "gpus": gpus, "dry_run": dry, "runs": n_runs,
         "recipe": spec, "rows": rows},
        args,
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
