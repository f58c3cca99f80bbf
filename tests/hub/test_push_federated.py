"""A federated adapter (``hfm federate``) publishes to the Hub and loads back like any other adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import hfm
from hfm.hub.push import push
from hub.server import HubServer

pytest.importorskip("flwr")

SYNTHETIC = {
    "type": "synthetic",
    "n_classes": 3,
    "n_per_class": 8,
    "n_val_per_class": 2,
    "n_test_per_class": 3,
    "size": 32,
}


def test_federated_adapter_pushes_and_loads_back_with_its_sites_on_the_card(
    tmp_path: Path, hub_server: HubServer
) -> None:
    from hfm.federated.recipe import parse
    from hfm.federated.study import run

    recipe = parse(
        {
            "name": "fed-push",
            "backbone": {"name": "pathology/h-optimus-0", "twin": True},
            "data": SYNTHETIC,
            "split": {"scheme": "iid", "sites": 2},
            "preset": "probe/logreg",
            "shots": 2,
            "federation": {"rounds": 2, "local_steps": 3},
            "bootstrap": 0,
        }
    )
    study = run(recipe, out=tmp_path / "study", progress=False, verbose=False)
    adapter = study.runs[0] / "adapter"
    result = push(adapter, "lab/fed-probe")
    assert result.created
    files = hub_server.files("lab/fed-probe")
    card = files["README.md"].decode()
    assert "2 sites trained this adapter with Flower, 2 rounds of `fedavg`" in card
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    local, remote = hfm.load_adapter(str(adapter)).eval(), hfm.load_adapter("lab/fed-probe").eval()
    with torch.no_grad():
        torch.testing.assert_close(remote.predict_proba(images), local.predict_proba(images), rtol=0, atol=0)
