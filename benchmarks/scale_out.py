"""Scale-out: one sweep of trained runs in one process, run-parallel over two processes, data-parallel over two.

* ``single``: ``python -m hfm run`` (one process, ``--threads`` intra-op threads, default all cores).
* ``single-1t``: the same with one thread, as each launched process has: on a loaded machine OpenMP threads
  that wait for each other can cost far more than they bring, and this separates that from scheduling.
* ``runs``: ``torchrun --standalone --nproc_per_node 2 -m hfm run --parallel runs`` (gloo on the CPU; each
  process one thread, trains whole runs alone from the shared queue).
* ``data``: the same launch with ``--parallel data`` (every process trains every run, DDP, one thread each).

The sweep: preset ``lora/r8-attn`` x k in {4, 8} x seeds 0-3 = 8 trained runs (``max_steps`` 20, batch 8) on a
random-weight timm ViT (width 192, depth 4, 64 px, loaded with ``local-dir:``) and hfm's synthetic source (2
classes, 40 train / 10 val / 20 test images per class at 64 px). Wall clock of each command end to end (process
start, imports, loading, extraction, the runs, the summary), in interleaved rounds; the ratios are medians of
per-round ratios. Predictions of every run are compared with the single-process sweep: ``runs`` must agree (it
trains each run exactly as one process does); ``data`` is reported (DDP splits each batch, so its runs differ).
The load average before and after is recorded: the machine is shared.

Command: ``python benchmarks/scale_out.py`` (about 5 minutes on 2 idle cores); ``--quick`` is a smoke run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

MODES = ("single", "single-1t", "runs", "data")


def recipe(model_dir: Path, quick: bool) -> dict[str, Any]:
    size = 32 if quick else 64
    per_class = (6, 3, 4) if quick else (40, 10, 20)
    return {
        "name": "bench-scale-out",
        "backbone": {"name": f"local-dir:{model_dir}"},
        "data": {"type": "synthetic", "n_classes": 2, "n_per_class": per_class[0],
                 "n_val_per_class": per_class[1], "n_test_per_class": per_class[2], "size": size, "seed": 0},
        "presets": ["lora/r8-attn"],
        "shots": [2] if quick else [4, 8],
        "seeds": [0, 1] if quick else [0, 1, 2, 3],
        "training": {"max_steps": 2 if quick else 20, "batch_size": 4 if quick else 8},
        "bootstrap": 20,
    }  # fmt: skip


def command(mode: str, recipe_path: Path, out: Path, procs: int) -> list[str]:
    """The command line of one candidate."""
    launch = [sys.executable]
    if mode not in ("single", "single-1t"):
        launch += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
    args = ["-m", "hfm", "run", str(recipe_path), "--out", str(out), "--no-progress"]
    return [*launch, *args] + (["--parallel", mode] if mode in ("runs", "data") else [])


def run_once(mode: str, recipe_path: Path, out: Path, procs: int, threads: int, cache: Path) -> None:
    """One sweep into a fresh folder (and a fresh embedding cache), as a user would start it."""
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    per_process = {"single": threads, "single-1t": 1}.get(mode, max(1, threads // procs))
    env = dict(
        os.environ, OMP_NUM_THREADS=str(per_process), HFM_CACHE=str(cache), PYTHONPATH=str(_common.REPO_ROOT)
    )
    proc = subprocess.run(
        command(mode, recipe_path, out, procs), env=env, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} sweep failed:\n{proc.stderr[-3000:]}")


def compare(reference: Path, other: Path) -> dict[str, Any]:
    """How the predictions of ``other`` differ from ``reference``, run by run."""
    import numpy as np

    from hfm.runner import read_predictions

    runs = sorted(p.parent.relative_to(reference) for p in reference.rglob("predictions.csv"))
    max_diff, same_class, identical = 0.0, 0, 0
    for run in runs:
        _, _, a = read_predictions(reference / run / "predictions.csv")
        _, _, b = read_predictions(other / run / "predictions.csv")
        max_diff = max(max_diff, float(np.abs(a - b).max()))
        same_class += int((a.argmax(1) == b.argmax(1)).all())
        identical += int(np.array_equal(a, b))
    return {
        "runs": len(runs),
        "identical_runs": identical,
        "same_classes_runs": same_class,
        "max_abs_diff": max_diff,
    }


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    p.add_argument("--procs", type=int, default=2, help="processes of the torchrun launches")
    args = _common.parse_args(p, argv)
    threads = args.threads or os.cpu_count() or 1
    reps = args.reps or 1
    load_before = os.getloadavg()
    import yaml

    work = Path(tempfile.mkdtemp(prefix="hfm-bench-scale-"))
    model = _common.vit_folder(work / "model", img_size=64, quick=args.quick, embed_dim=192, depth=4, num_heads=3) \
        if not args.quick else _common.vit_folder(work / "model", quick=True)  # fmt: skip
    recipe_path = work / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe(model, args.quick)))
    outs = {mode: work / mode for mode in MODES}
    candidates = {
        mode: (lambda m=mode: run_once(m, recipe_path, outs[m], args.procs, threads, work / f"cache-{m}"))
        for mode in MODES
    }
    times = _common.interleaved(candidates, reps=reps, warmup=args.warmup if args.quick else 0)
    load_after = os.getloadavg()
    agreement = {mode: compare(outs["single"], outs[mode]) for mode in ("single-1t", "runs", "data")}
    rows = [
        {"mode": mode, "median_s": _common.median(times[mode]),
         **({"identical_runs": f"{agreement[mode]['identical_runs']}/{agreement[mode]['runs']}",
             "max_abs_diff": agreement[mode]["max_abs_diff"]} if mode in agreement else
            {"identical_runs": "reference", "max_abs_diff": 0.0})}
        for mode in MODES
    ]  # fmt: skip
    print(_common.fmt_table(rows))
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min)")
    speedup = _common.paired_ratio(times["single"], times["runs"])
    speedup_1t = _common.paired_ratio(times["single-1t"], times["runs"])
    versus_data = _common.paired_ratio(times["data"], times["runs"])
    _common.print_ratio("single/runs", speedup, "> 1", speedup > 1)
    _common.print_ratio("single-1t/runs", speedup_1t, "> 1", speedup_1t > 1)
    _common.print_ratio("data/runs", versus_data, "> 1", versus_data > 1)
    runs_ok = agreement["runs"]["identical_runs"] == agreement["runs"]["runs"]
    print(f"run-parallel predictions identical to one process: {runs_ok}")
    _common.write_result(
        "scale_out",
        {
            "machine": _common.machine_info(threads),
            "load_average_before": list(load_before),
            "load_average_after": list(load_after),
            "procs": args.procs,
            "recipe": recipe(model, args.quick),
            "seconds": times,
            "ratio_single_over_runs": speedup,
            "ratio_single_1t_over_runs": speedup_1t,
            "ratio_data_over_runs": versus_data,
            "agreement": agreement,
        },
        args,
    )
    return 0 if runs_ok else 1


if __name__ == "__main__":
    sys.exit(main())
