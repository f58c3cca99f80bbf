"""Sweep amortization: a probe sweep of k in {1, 2, 4, 8, 16} x 5 seeds against one extraction + one fit.

* ``sweep``: ``hfm.run(recipe)`` end to end, through the runner, with an empty embedding cache: load the data
  and the backbone, draw 25 episodes, embed (once) the train examples any episode uses plus val and test, then
  25 runs, each fitting the probe (preset ``probe/logreg``: L2 chosen on val from a 7-point grid), evaluating
  the test split with bootstrap intervals and writing its run folder (adapter, metrics, predictions,
  episode), then the summary table and the label-efficiency plot.
* ``once``: the same work done a single time by hand: load the data and the backbone, extract embeddings of
  the same images (``hfm.embeddings.extract``, cache off) and fit one probe (k=16, seed 0) and predict the
  test split.

Target: sweep / once <= 1.25. Backbone: timm ViT-S/16 at 112 px with random weights, loaded through
``hfm.load_backbone("local-dir:...")``; data: hfm's synthetic source (4 classes x 100 train, 25 val and 100
test images at 112 px), so extraction has realistic cost. Both are timed in interleaved rounds, each with a
fresh cache folder (``HFM_CACHE``) so every sweep extracts once.

Command: ``python benchmarks/sweep_amortization.py`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common  # noqa: E402

SHOTS = [1, 2, 4, 8, 16]
SEEDS = [0, 1, 2, 3, 4]
PRESET = "probe/logreg"


def source(quick: bool) -> dict[str, Any]:
    if quick:
        return {"type": "synthetic", "n_classes": 3, "n_per_class": 6, "n_val_per_class": 3,
                "n_test_per_class": 4, "size": 32, "seed": 0}  # fmt: skip
    return {"type": "synthetic", "n_classes": 4, "n_per_class": 100, "n_val_per_class": 25,
            "n_test_per_class": 100, "size": 112, "seed": 0}  # fmt: skip


def recipe(model_dir: Path, data: dict[str, Any], shots: list[int], seeds: list[int]) -> dict[str, Any]:
    return {
        "name": "bench-sweep",
        "backbone": {"name": f"local-dir:{model_dir}"},
        "data": data,
        "presets": [PRESET],
        "shots": shots,
        "seeds": seeds,
    }


class FreshCache:
    """Point ``HFM_CACHE`` at a new empty folder for the duration of one timed call."""

    def __init__(self, parent: Path) -> None:
        self.parent = parent
        self.old: str | None = None

    def __enter__(self) -> Path:
        self.old = os.environ.get("HFM_CACHE")
        folder = Path(tempfile.mkdtemp(dir=self.parent, prefix="cache-"))
        os.environ["HFM_CACHE"] = str(folder)
        return folder

    def __exit__(self, *exc: object) -> None:
        if self.old is None:
            os.environ.pop("HFM_CACHE", None)
        else:
            os.environ["HFM_CACHE"] = self.old


def run_sweep(model_dir: Path, data: dict[str, Any], shots: list[int], seeds: list[int], work: Path) -> Any:
    import hfm

    with FreshCache(work):
        out = Path(tempfile.mkdtemp(dir=work, prefix="sweep-"))
        result = hfm.run(recipe(model_dir, data, shots, seeds), out=out, progress=False, verbose=False)
    if not result.ok:
        raise RuntimeError(f"sweep failed: {result.failed}")
    return result


def run_once(model_dir: Path, data: dict[str, Any], shots: list[int], seeds: list[int], work: Path) -> float:
    """Load, embed the sweep's images once, fit one probe at the largest k; returns its test accuracy."""
    import torch

    from hfm.backbones import load_backbone
    from hfm.data import episode, load_data
    from hfm.embeddings import extract
    from hfm.recipes import load_preset
    from hfm.tuners import get_tuner

    with FreshCache(work):
        splits = load_data(data)
        backbone = load_backbone(f"local-dir:{model_dir}")
        rows = sorted({int(i) for k in shots for s in seeds for i in episode(splits, k, s).indices})
        emb = {
            name: extract(backbone, subset, split=name, progress=False)
            for name, subset in {
                "train": splits.train.take(rows),
                "val": splits.val,
                "test": splits.test,
            }.items()
        }
        position = {row: pos for pos, row in enumerate(rows)}
        ep = episode(splits, max(shots), seeds[0])
        preset = load_preset(PRESET)
        probe: Any = get_tuner(preset.tuner)(backbone, splits.num_classes, **preset.params)
        picked = torch.as_tensor([position[int(i)] for i in ep.indices])
        probe.fit_embeddings(
            emb["train"][picked],
            torch.as_tensor(splits.train.labels[ep.indices]),
            emb["val"],
            torch.as_tensor(splits.val.labels),
        )
        pred = probe.predict_proba_embeddings(emb["test"]).argmax(-1)
        return float((pred.numpy() == splits.test.labels).mean())


def main(argv: list[str] | None = None) -> int:
    p = _common.parser(__doc__.splitlines()[0])
    args = _common.parse_args(p, argv)
    threads = _common.setup_threads(args.threads)
    reps = args.reps or (1 if args.quick else 3)
    shots = [1, 2] if args.quick else SHOTS
    seeds = [0, 1] if args.quick else SEEDS
    data = source(args.quick)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hfm-bench-sweep-") as tmp:
        work = Path(tmp)
        model_dir = _common.vit_folder(work / "model", quick=args.quick)
        state: dict[str, Any] = {}
        times = _common.interleaved(
            {
                "sweep": lambda: state.__setitem__("sweep", run_sweep(model_dir, data, shots, seeds, work)),
                "once": lambda: state.__setitem__("once", run_once(model_dir, data, shots, seeds, work)),
            },
            reps=reps,
            warmup=args.warmup,
        )
        summary = state["sweep"].summary
        n_runs = len(shots) * len(seeds)
        # Complete run folders: OUT/<preset>/k<k>/seed<seed>/metrics.json (preset names may contain "/").
        finished = [
            p.parent for p in state["sweep"].out_dir.rglob("metrics.json") if p.parent.name.startswith("seed")
        ]
    ratio = _common.paired_ratio(times["sweep"], times["once"])
    sweep_s, once_s = _common.median(times["sweep"]), _common.median(times["once"])
    rows = [
        {"candidate": "sweep", "runs": n_runs, "median_s": sweep_s},
        {"candidate": "once", "runs": 1, "median_s": once_s},
    ]
    print(f"{n_runs} probe runs (k in {shots} x seeds {seeds}), {threads} threads, {reps} interleaved rounds")
    print(_common.fmt_table(rows))
    print(f"sweep overhead over one extraction + fit: {sweep_s - once_s:.2f} s, "
          f"{(sweep_s - once_s) / max(n_runs - 1, 1) * 1000:.0f} ms per extra run")  # fmt: skip
    _common.print_ratio("sweep/once", ratio, "<= 1.25", ratio <= 1.25)
    if len(finished) != n_runs:
        raise RuntimeError(f"expected {n_runs} complete run folders, found {len(finished)}")
    payload = {
        "machine": _common.machine_info(threads),
        "setup": {"data": data, "preset": PRESET, "shots": shots, "seeds": seeds, "reps": reps},
        "results": rows,
        "times_s": times,
        "ratio": ratio,
        "once_test_accuracy": state["once"],
        "run_folders": len(finished),
        "summary_keys": sorted(summary) if isinstance(summary, dict) else None,
        "wall_s": time.perf_counter() - start,
    }
    _common.write_result("sweep_amortization", payload, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
