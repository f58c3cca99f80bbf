"""Fixtures for the hub tests: a local Hub server with ``HF_ENDPOINT`` and a token pointing at it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import huggingface_hub.constants as hf_constants
import huggingface_hub.hf_api as hf_api
import pytest
import torch
import yaml

from hub.server import HubServer


@pytest.fixture
def hub_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """A running local Hub; the environment (and huggingface_hub's import-time constants) point at it.

    ``HF_HUB_OFFLINE`` is switched off for the test, ``HF_TOKEN`` holds the server's token. The constants are
    patched too because timm and peft call huggingface_hub without an explicit endpoint.
    """
    server = HubServer(tmp_path / "hub-server").start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", server.token)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hf_constants, "ENDPOINT", server.url)
    monkeypatch.setattr(
        hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(hf_api.api, "endpoint", server.url)  # the module-level HfApi behind file_exists & co
    # transformers (peft's push_to_hub) keeps one HfApi made on first use, with the endpoint of that moment.
    monkeypatch.setattr("transformers.utils.hub._hf_api", None, raising=False)
    try:
        yield server
    finally:
        server.stop()


def go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch huggingface_hub back to offline mode inside a test (env and import-time constant)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)


# ---- adapters, runs and sweeps built from tiny twins ---------------------------------------------------------
CLASSES = ["tumor", "stroma", "normal"]


def make_adapter(folder: Path, tuner: str, backbone: str, *, seed: int = 0, k: int = 4, **extra: Any) -> Path:
    """Save a freshly initialised ``tuner`` adapter on the twin of ``backbone`` into ``folder``.

    Weights are random (seeded) but the head is perturbed so predictions differ between classes.
    """
    import hfm
    from hfm.tuners import get_tuner

    torch.manual_seed(seed)
    model = get_tuner(tuner)(hfm.load_backbone(backbone, twin=True), len(CLASSES))
    with torch.no_grad():
        for param in model.trainable_parameters().values():
            param.add_(torch.randn_like(param) * 0.1)
    metadata = {
        "classes": CLASSES,
        "recipe": {"name": "smoke", "backbone": {"name": backbone, "twin": True}, "metrics": ["accuracy"]},
        "recipe_name": "smoke",
        "preset": f"{tuner}/default",
        "seed": seed,
        "k": k,
        "data": {
            "fingerprint": "f" * 16,
            "source": {"type": "npz", "path": "/home/someone/data/crc_patches.npz"},
            "group_key": "patient",
        },
        **extra,
    }
    return model.save(folder, metadata=metadata)


def _metrics(preset: str, k: int, seed: int, acc: float) -> dict[str, Any]:
    test = {
        "n": 60,
        "classes": CLASSES,
        "accuracy": acc,
        "balanced_accuracy": acc - 0.05,
        "macro_f1": acc - 0.1,
        "auroc": None,
        "per_class_recall": {c: round(acc - 0.1 * i, 3) for i, c in enumerate(CLASSES)},
        "ci": {"accuracy": [acc - 0.1, acc + 0.1]},
    }
    return {
        "preset": preset,
        "tuner": preset.split("/")[0],
        "k": k,
        "seed": seed,
        "split": "test",
        "test": test,
    }


def make_sweep(root: Path, backbone: str = "pathology/hibou-b", tuner: str = "probe") -> Path:
    """A sweep folder laid out as the runner writes it: two k, two seeds, recipe, summary and plot."""
    preset = f"{tuner}/default"
    for k in (1, 4):
        for seed in (0, 1):
            run = root / preset / f"k{k}" / f"seed{seed}"
            make_adapter(run / "adapter", tuner, backbone, seed=seed, k=k)
            (run / "metrics.json").write_text(
                json.dumps(_metrics(preset, k, seed, 0.5 + 0.1 * k / 4 + 0.01 * seed))
            )
            episode = {"k": k, "seed": seed, "indices": list(range(3 * k)), "labels": [0, 1, 2] * k}
            (run / "episode.json").write_text(json.dumps(episode))
            (run / "predictions.csv").write_text("id,label\n/home/someone/data/img_001.png,0\n")
    recipe = {
        "name": "smoke",
        "backbone": {"name": backbone, "twin": True},
        "data": {"type": "npz", "path": str(root / "data.npz")},
        "presets": [preset],
        "shots": [1, 4],
        "seeds": [0, 1],
        "metrics": ["accuracy", "balanced_accuracy", "macro_f1", "auroc"],
        "primary_metric": "accuracy",
    }
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (root / "summary.json").write_text(json.dumps({"primary_metric": "accuracy", "rows": []}))
    (root / "environment.json").write_text(
        json.dumps({"python": "3.11", "packages": {"torch": "2.x", "timm": "1"}})
    )
    from PIL import Image

    Image.new("RGB", (8, 8), "white").save(root / "label_efficiency.png")
    return root


def tree_digest(folder: Path) -> dict[str, str]:
    """Path -> sha256 of every file under ``folder`` (to prove a folder was left untouched)."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def adapters(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Probe, LoRA and VPT adapters on the twin of an Apache-2.0 timm backbone, plus a LoRA on transformers."""
    root = tmp_path_factory.mktemp("adapters")
    return {
        "probe": make_adapter(root / "probe", "probe", "pathology/h-optimus-0"),
        "lora": make_adapter(root / "lora", "lora", "pathology/h-optimus-0"),
        "vpt": make_adapter(root / "vpt", "vpt", "pathology/h-optimus-0"),
        "lora-hf": make_adapter(root / "lora-hf", "lora", "pathology/hibou-b"),
    }


@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runner-shaped sweep folder (probe on the hibou-b twin)."""
    return make_sweep(tmp_path_factory.mktemp("sweep"))
