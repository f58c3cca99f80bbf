"""A pretrained backbone folder pushes as a model repository and loads back from the Hub unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hfm
from hfm.embeddings import extract
from hfm.errors import HubError
from hfm.hub.push import push
from hub.server import HubServer

RECIPE = {
    "name": "tiny-dino",
    "backbone": {
        "architecture": "vit_tiny_patch16_224",
        "kwargs": {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2},
        "input_size": 32,
    },
    "data": {"type": "synthetic", "n_classes": 2, "n_per_class": 8, "size": 32},
    "views": {"local_crops": 2},
    "objective": {"out_dim": 32, "hidden_dim": 32, "bottleneck_dim": 16},
    "schedule": {"epochs": 1, "batch_size": 8, "progress": False},
}


@pytest.fixture
def pretrained(tmp_path: Path) -> Path:
    out = tmp_path / "backbone"
    hfm.pretrain(RECIPE, out=out)
    return out


def test_pretrained_backbone_round_trips_through_the_hub(pretrained: Path, hub_server: HubServer) -> None:
    result = push(pretrained, "lab/tiny-dino")
    files = set(hub_server.files("lab/tiny-dino"))
    assert {"config.json", "model.safetensors", "hfm_spec.json", "README.md", "pretrain_monitor.png"} <= files
    assert len(hub_server.commit_payloads) == 1 and result.private
    data = hfm.load_data({"type": "synthetic", "n_classes": 2, "n_per_class": 3, "size": 32}).test
    local = extract(hfm.load_backbone(f"local-dir:{pretrained}"), data, cache=False, progress=False)
    remote = extract(hfm.load_backbone("hf-hub:lab/tiny-dino"), data, cache=False, progress=False)
    assert torch.equal(local, remote)


def test_dry_run_lists_files_and_redacts_local_paths(pretrained: Path) -> None:
    facts = json.loads((pretrained / "hfm_pretrain.json").read_text())
    facts["note"] = f"made in {pretrained}"
    (pretrained / "hfm_pretrain.json").write_text(json.dumps(facts))
    result = push(pretrained, "lab/tiny-dino", dry_run=True)
    assert result.dry_run and "hfm_pretrain.json" in result.redactions
    assert {name for name, _ in result.files} >= {"model.safetensors", "README.md"}


def test_a_backbone_push_needs_a_repo_id(pretrained: Path) -> None:
    with pytest.raises(HubError, match="ORG/NAME"):
        push(pretrained, None, dry_run=True)
