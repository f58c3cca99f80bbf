"""Tiny federations: a synthetic task split into sites, a tiny twin backbone, trainers of any tuner."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

pytest.importorskip("flwr")

import hfm  # noqa: E402
from hfm.data.load import load_data  # noqa: E402
from hfm.federated.client import LocalTrainer  # noqa: E402
from hfm.federated.recipe import FederationBlock  # noqa: E402
from hfm.federated.sites import Site, simulate  # noqa: E402
from hfm.tuners import get_tuner  # noqa: E402

TWIN = "radiology/rad-dino"
SYNTHETIC = {
    "type": "synthetic",
    "n_classes": 3,
    "n_per_class": 12,
    "n_val_per_class": 2,
    "n_test_per_class": 4,
    "size": 32,
}


@pytest.fixture(scope="module")
def backbone() -> Any:
    return hfm.load_backbone(TWIN, twin=True)


@pytest.fixture(scope="module")
def sites() -> list[Site]:
    return simulate(load_data(SYNTHETIC), 3, "iid", seed=0)


def make_trainers(
    backbone: Any,
    sites: list[Site],
    tuner: str = "probe",
    *,
    sizes: tuple[int, ...] = (2, 4, 6),
    seed: int = 0,
    federation: FederationBlock | None = None,
    params: dict[str, Any] | None = None,
) -> list[LocalTrainer]:
    """One trainer per site, with labelled sets of different sizes (so a weighted mean differs from a plain one)."""
    import torch

    federation = federation or FederationBlock(rounds=1, local_steps=5, local_epochs=1)
    cls = get_tuner(tuner)
    out = []
    for site, size in zip(sites, sizes, strict=False):
        torch.manual_seed(seed)
        own = backbone if cls.uses_embeddings else copy.deepcopy(backbone)
        model = cls(own, 3, **(params or {}))
        out.append(
            LocalTrainer(
                name=site.name,
                model=model,
                labelled=site.splits.train.take(list(range(size))),
                test=site.splits.test,
                federation=federation,
                training={"batch_size": 4, "lr": 1e-3},
                seed=seed,
            )
        )
    return out


@pytest.fixture
def trainers_of(backbone: Any, sites: list[Site]) -> Callable[..., list[LocalTrainer]]:
    def build(tuner: str = "probe", **kwargs: Any) -> list[LocalTrainer]:
        return make_trainers(backbone, sites, tuner, **kwargs)

    return build


def arrays_of(record: Any) -> dict[str, np.ndarray]:
    return {name: np.asarray(array.numpy()) for name, array in record.items()}
