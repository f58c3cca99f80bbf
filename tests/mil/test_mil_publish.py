"""A MIL adapter publishes to a (local) Hub and predicts a bag from there as it does locally."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hub.conftest import HubServer
from hub.conftest import hub_server as hub_server  # noqa: F401 - the fixture
from PIL import Image

from hfm.hub.push import push
from hfm.mil.predict import predict_bag_files
from hfm.runner import run
from mil.conftest import bag_recipe, write_bag_npz


def test_a_mil_adapter_pushes_pulls_and_predicts_a_bag(tmp_path: Path, hub_server: HubServer) -> None:  # noqa: F811
    npz = write_bag_npz(tmp_path / "bags.npz", {"train": 2, "val": 1, "test": 2})
    backbone = {"name": "pathology/hibou-b", "twin": True}  # a license that allows sharing adapters
    result = run(
        bag_recipe(npz, tmp_path / "out", shots=[2], backbone=backbone), progress=False, verbose=False
    )
    assert result.ok, result.failed
    push(tmp_path / "out", "lab/bags", preset="abmil")
    card = hub_server.files("lab/bags")["README.md"].decode()
    assert "Bags (multiple-instance learning)" in card
    folder = tmp_path / "bag"
    folder.mkdir()
    for i, image in enumerate(np.load(npz)["test_images"][:4]):
        Image.fromarray(image).save(folder / f"{i}.png")
    local = predict_bag_files(str(tmp_path / "out" / "abmil" / "k2" / "seed0" / "adapter"), folder)
    remote = predict_bag_files("lab/bags", folder)
    assert remote[0]["probabilities"] == local[0]["probabilities"]
    assert remote[0]["attention"] == local[0]["attention"]
