"""Two processes on the CPU (gloo): sharded + gathered extraction and DDP training agree with one process.

The test launches this same file with ``torchrun --standalone --nproc_per_node 2``. (``accelerate launch
--cpu --num_processes 2`` started only one process with accelerate 1.15 on this machine, so CI uses torchrun;
hfm only relies on ``accelerate.Accelerator``/``PartialState``, which read either launcher's environment.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BACKBONE = "pathology/kaiko-vitb16"


def _toy(n: int = 9):
    from hfm.data.splits import Subset

    rng = np.random.default_rng(0)
    labels = np.arange(n) % 3
    images = rng.integers(0, 90, size=(n, 32, 32, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i, :, :, label] += 150
    return Subset(ids=[f"toy/{i}" for i in range(n)], labels=labels, reader=lambda i: images[i])


def _worker(out: Path) -> None:
    """What each of the two processes runs."""
    import hfm
    from hfm.devices import process_info
    from hfm.embeddings import extract
    from hfm.train import TrainConfig, fit

    rank, world, _ = process_info()
    backbone = hfm.load_backbone(BACKBONE, twin=True)
    emb = extract(backbone, _toy(), batch_size=2, progress=False, cache=False)
    torch.manual_seed(0)
    model = hfm.get_tuner("lora")(hfm.load_backbone(BACKBONE, twin=True), 3)
    result = fit(model, _toy(), _toy(5), TrainConfig(epochs=2, batch_size=2, progress=False, patience=None))
    weights = {k: v.sum().item() for k, v in model.state_to_save().items()}
    record = {"world": world, "emb": emb.tolist(), "weights": weights, "steps": result.steps}
    (out / f"rank{rank}.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_two_process_cpu_run(tmp_path) -> None:
    import hfm
    from hfm.embeddings import extract

    hfm.load_backbone(BACKBONE, twin=True)  # write the twin once, before two processes race for it
    single = extract(
        hfm.load_backbone(BACKBONE, twin=True), _toy(), batch_size=2, progress=False, cache=False
    )
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, __file__, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    for record in ranks:  # gathered in the original order, identical on both processes
        torch.testing.assert_close(torch.tensor(record["emb"]), single, atol=1e-5, rtol=1e-4)
    assert ranks[0]["weights"] == ranks[1]["weights"]  # DDP kept the replicas in sync
    assert ranks[0]["steps"] == 2 * 3  # 9 examples / 2 processes -> 5 each -> 3 batches of 2 per epoch


@pytest.mark.slow
def test_two_process_sweep_writes_once(tmp_path) -> None:
    """``torchrun -m hfm run --parallel data``: both processes train every run together (DDP), only the main one
    writes the runs and prints the table (run-parallel sweeps: ``tests/test_parallel.py``)."""
    import yaml

    import hfm

    hfm.load_backbone(BACKBONE, twin=True)  # write the twin once, before two processes race for it
    recipe = {
        "name": "ddp",
        "backbone": {"name": BACKBONE, "twin": True},
        "data": {"type": "synthetic", "n_classes": 2, "n_per_class": 6, "seed": 0},
        "presets": ["probe/logreg", "lora/r8-attn"],
        "shots": [2],
        "seeds": [0],
        "training": {"max_steps": 2},
        "bootstrap": 50,
    }
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, "-m", "hfm", "run", str(path), "--out", str(out), "--no-progress", "--parallel", "data"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run(s) done") == 1  # one summary, from the main process
    for preset in ("probe/logreg", "lora/r8-attn"):
        run = out / preset / "k2" / "seed0"
        assert {"adapter", "metrics.json", "predictions.csv", "episode.json"} <= {
            p.name for p in run.iterdir()
        }
    assert not [p for p in out.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
    assert json.loads((out / "summary.json").read_text())["rows"]
    assert json.loads((out / "lora/r8-attn/k2/seed0/metrics.json").read_text())["parallel"] == "data"


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
