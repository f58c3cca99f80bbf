"""End-to-end federation of a BatchNorm CNN: the running statistics (buffers that never travel) stay put."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import hfm
from hfm.federated.client import make_client_app
from hfm.federated.recipe import FederationBlock
from hfm.federated.server import federate
from hfm.federated.wire import load_state, to_record

from .conftest import make_trainers


def _cnn(folder: Path) -> Any:
    """A tiny random-init timm ResNet with BatchNorm, saved as a local backbone folder."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", pretrained=False, num_classes=0, channels=(8, 8, 8, 8))
    model.pretrained_cfg = {
        **model.pretrained_cfg,
        "input_size": (3, 32, 32),
        "mean": (0.5,) * 3,
        "std": (0.5,) * 3,
    }
    save_for_hf(model, str(folder), model_args={"channels": [8, 8, 8, 8]}, safe_serialization=True)
    return hfm.load_backbone(f"local-dir:{folder}")


def _running(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in model.named_buffers() if "running_" in n}


def test_batch_norm_statistics_stay_put_so_sites_and_the_published_adapter_agree(
    tmp_path: Path, sites: Any
) -> None:
    federation = FederationBlock(rounds=2, local_epochs=2)
    trainers = make_trainers(_cnn(tmp_path / "cnn"), sites, "bitfit", sizes=(4, 4, 4), federation=federation)
    before = _running(trainers[0].model)
    assert before, "the backbone must have BatchNorm statistics for this test to mean anything"
    app = make_client_app(lambda context: trainers[int(context.node_id) - 1])
    result = federate(app, 3, to_record(trainers[0].model), federation, seed=0)
    final = {n: torch.as_tensor(a.numpy()) for n, a in result.arrays.items()}

    for trainer in trainers:
        after = _running(trainer.model)
        for name, value in before.items():
            torch.testing.assert_close(after[name], value, rtol=0, atol=0)
    # what a site evaluates with the global adapter is what a fresh copy of the published adapter predicts
    published = make_trainers(_cnn(tmp_path / "cnn2"), sites, "bitfit", sizes=(4,), federation=federation)[0]
    load_state(published.model, final)
    load_state(trainers[0].model, final)
    torch.testing.assert_close(published.predict_test(), trainers[0].predict_test())
