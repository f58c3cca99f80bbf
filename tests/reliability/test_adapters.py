"""Items 4 and 12: damaged adapters are neither published nor loaded with a traceback.

Faults injected:
- item 4: ``hfm push --dry-run`` of a run folder whose adapter has no weights, truncated weights, or weights
  whose shapes belong to another backbone;
- item 12: ``hfm predict`` with truncated probe and LoRA weights, and with a probe head that does not fit the
  backbone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from hfm.cli import main
from hfm.errors import HubError
from hfm.hub.push import push
from hfm.runner import run, run_dir

from .conftest import recipe, synthetic


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sweep")
    cfg = recipe(
        out,
        synthetic(3),
        presets=["probe/logreg", "lora/r8-attn"],
        training={"max_steps": 1, "batch_size": 4},
    )
    assert run(cfg, progress=False, verbose=False).ok
    return out


def _copy(sweep: Path, preset: str, tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(run_dir(sweep, preset, 1, 0), folder)
    return folder


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _image(tmp_path: Path) -> str:
    path = tmp_path / "x.png"
    Image.fromarray(np.full((24, 24, 3), 128, dtype=np.uint8)).save(path)
    return str(path)


def test_push_refuses_an_adapter_without_weights(sweep: Path, tmp_path: Path) -> None:
    """Fault: the adapter's weights file was deleted."""
    folder = _copy(sweep, "probe/logreg", tmp_path)
    (folder / "adapter" / "weights.safetensors").unlink()
    with pytest.raises(HubError, match="not publishing"):
        push(folder, "lab/x", dry_run=True, license_ack=True)


def test_push_refuses_truncated_weights(sweep: Path, tmp_path: Path) -> None:
    """Fault: the adapter's weights file was cut in half (an interrupted copy)."""
    folder = _copy(sweep, "probe/logreg", tmp_path)
    _truncate(folder / "adapter" / "weights.safetensors")
    with pytest.raises(HubError, match="truncated or corrupt"):
        push(folder, "lab/x", dry_run=True, license_ack=True)


def test_push_refuses_weights_of_another_backbone(sweep: Path, tmp_path: Path) -> None:
    """Fault: the weights were saved for a backbone with another embedding width."""
    folder = _copy(sweep, "probe/logreg", tmp_path)
    path = folder / "adapter" / "weights.safetensors"
    state = {
        k: torch.zeros(*v.shape[:-1], v.shape[-1] + 7) if v.ndim == 2 else v
        for k, v in load_file(path).items()
    }
    save_file(state, str(path))
    with pytest.raises(HubError, match="another backbone"):
        push(folder, "lab/x", dry_run=True, license_ack=True)


def test_push_of_an_intact_run_still_plans(sweep: Path, tmp_path: Path) -> None:
    """Control: an intact run folder is planned for upload."""
    assert push(_copy(sweep, "probe/logreg", tmp_path), "lab/x", dry_run=True, license_ack=True).files


@pytest.mark.parametrize(
    ("preset", "weights"), [("probe/logreg", "weights.safetensors"), ("lora/r8-attn", "head.safetensors")]
)
def test_predict_with_truncated_weights_is_one_line(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], preset: str, weights: str
) -> None:
    """Fault: truncated probe weights, truncated LoRA head."""
    folder = _copy(sweep, preset, tmp_path)
    _truncate(folder / "adapter" / weights)
    assert main(["predict", str(folder / "adapter"), _image(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and weights in err and "truncated or corrupt" in err


def test_predict_with_a_head_of_another_backbone_is_one_line(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fault: a probe head whose input width does not fit the backbone."""
    folder = _copy(sweep, "probe/logreg", tmp_path)
    path = folder / "adapter" / "weights.safetensors"
    state = {
        k: torch.zeros(*v.shape[:-1], v.shape[-1] + 7) if v.ndim == 2 else v
        for k, v in load_file(path).items()
    }
    save_file(state, str(path))
    assert main(["predict", str(folder / "adapter"), _image(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "another backbone" in err
