"""``torchrun -m hfm pretrain`` with two CPU processes (gloo), DINO and MAE: both train, one writes the folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import hfm
from pretrain.conftest import mae_recipe, tiny_recipe


@pytest.mark.slow
@pytest.mark.parametrize("make", [tiny_recipe, mae_recipe], ids=["dino", "mae"])
def test_two_process_pretrain(tmp_path: Path, make: Any) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(make(schedule={"epochs": 2, "batch_size": 4})))
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, "-m", "hfm", "pretrain", str(recipe), "--out", str(out), "--no-progress"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("pretrained on 24 images") == 1  # one report, from the main process
    facts = (out / "hfm_pretrain.json").read_text()
    assert '"processes": 2' in facts
    # 24 images over 2 processes: 12 each, 3 batches of 4 per epoch.
    assert '"step": 6' in facts
    hfm.load_backbone(f"local-dir:{out}")
    assert not [p for p in tmp_path.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]
