"""Adapter folders: the hfm_config.json contract, atomic saving, and load_adapter's ways in."""

from __future__ import annotations

import json

import pytest
import torch

import hfm
import hfm.hub.pull
from hfm.errors import TunerError
from hfm.tuners.base import CONFIG_NAME

BACKBONE = "pathology/kaiko-vitb16"


def _model(tuner: str = "vpt", **params):
    torch.manual_seed(0)
    return hfm.get_tuner(tuner)(hfm.load_backbone(BACKBONE, twin=True), 3, **params)


def test_config_records_the_contract(tmp_path) -> None:
    model = _model(num_tokens=4)
    meta = {
        "classes": ["a", "b", "c"],
        "recipe": {"name": "x"},
        "seed": 1,
        "k": 4,
        "data": {"fingerprint": "f"},
    }
    folder = model.save(tmp_path / "adapter", metadata=meta)
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["tuner"] == "vpt" and config["tuner_params"] == {
        "num_tokens": 4,
        "deep": False,
        "dropout": 0.0,
    }
    assert config["classes"] == ["a", "b", "c"] and config["seed"] == 1 and config["k"] == 4
    assert config["backbone"]["spec"]["name"] == BACKBONE and config["backbone"]["twin"] is True
    assert config["backbone"]["resolved_revision"] == model.backbone.revision
    assert config["preprocessing"] == model.backbone.transform.to_dict()
    assert {"hfm_version", "format_version"} <= set(config)
    assert sorted(p.name for p in folder.iterdir()) == [CONFIG_NAME, "weights.safetensors"]


def test_save_is_atomic_and_replaces(tmp_path, monkeypatch) -> None:
    model = _model()
    target = tmp_path / "adapter"
    model.save(target, metadata={"seed": 1})

    def boom(folder) -> None:
        (folder / "partial.bin").write_bytes(b"x")
        raise OSError("disk full")

    monkeypatch.setattr(model, "save_weights", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(target, metadata={"seed": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no temp folder left behind
    assert json.loads((target / CONFIG_NAME).read_text())["seed"] == 1  # old adapter intact
    monkeypatch.undo()
    model.save(target, metadata={"seed": 3})
    assert json.loads((target / CONFIG_NAME).read_text())["seed"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]
    with pytest.raises(ValueError, match="core adapter keys"):
        model.save(tmp_path / "other", metadata={"tuner": "lora"})
    with pytest.raises(TunerError, match="2 class names for a 3-class model"):
        model.save(tmp_path / "other", metadata={"classes": ["a", "b"]})


def test_load_adapter_from_hub_id_goes_through_download(tmp_path, monkeypatch) -> None:
    folder = _model("bitfit").save(tmp_path / "adapter")
    calls: list[tuple] = []

    def fake_download(repo_id: str, revision: str | None = None):
        calls.append((repo_id, revision))
        return folder

    monkeypatch.setattr(hfm.hub.pull, "download_adapter", fake_download)
    model = hfm.load_adapter("org/my-adapter", revision="v1")
    assert calls == [("org/my-adapter", "v1")] and model.tuner_name == "bitfit" and not model.training


def test_load_adapter_errors(tmp_path) -> None:
    folder = _model("probe").save(tmp_path / "adapter")
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps(dict(config, format_version=99)))
    with pytest.raises(TunerError, match="newer than this hfm reads"):
        hfm.load_adapter(folder)
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    (folder / "weights.safetensors").unlink()
    with pytest.raises(TunerError, match="incomplete"):
        hfm.load_adapter(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TunerError, match="not an hfm adapter folder"):
        hfm.load_adapter(empty)


def test_weights_of_another_tuner_are_refused(tmp_path) -> None:
    folder = _model("bitfit").save(tmp_path / "adapter")
    config = json.loads((folder / CONFIG_NAME).read_text())
    (folder / CONFIG_NAME).write_text(json.dumps(dict(config, tuner="vpt", tuner_params={})))
    with pytest.raises(TunerError, match="do not fit this 'vpt' model"):
        hfm.load_adapter(folder)
