"""Pickled weights (``pytorch_model.bin``): refused by default, read with ``weights_only=True`` when asked by name.

Each model here is a twin re-saved with ``torch.save`` in a Hub-cache layout (the form UNI, BiomedCLIP and
H-optimus-0 publish), next to the same weights in safetensors, so the two loading paths can be compared exactly.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

import hfm
from hfm.backbones.catalog import get_spec
from hfm.backbones.twins import write_twin
from hfm.cli import cli
from hfm.errors import BackboneLoadError
from hfm.hub import download
from hfm.hub.download import resolve_snapshot
from hfm.policy import PICKLE_PATTERNS, LoadPolicy

COMMIT = "c" * 40


def hub_cache() -> Path:
    """This test's Hugging Face Hub cache (set per test by the top-level conftest)."""
    return Path(os.environ["HF_HUB_CACHE"])


class Payload:
    """A non-tensor object; a restricted unpickler must refuse to rebuild it."""

    def __init__(self) -> None:
        self.note = "not a tensor"


def touch_marker(marker: Path) -> None:
    """What a malicious pickle would run on load (here: create a file)."""
    marker.touch()


class Exploit:
    """Pickles as a call to ``touch_marker(marker)``: a plain unpickler would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return touch_marker, (self.marker,)


def _pickled_copy(
    snapshot: Path,
    repo: str,
    bin_name: str,
    wrap: Callable[[dict[str, torch.Tensor]], Any] = lambda sd: sd,
    keep_safetensors: bool = False,
) -> Path:
    """Copy a cached snapshot to ``repo`` with its safetensors weights re-saved as a pickled ``bin_name``."""
    target = hub_cache() / ("models--" + repo.replace("/", "--"))
    folder = target / "snapshots" / COMMIT
    folder.mkdir(parents=True)
    state: dict[str, torch.Tensor] = {}
    for path in sorted(snapshot.iterdir()):
        if path.suffix == ".safetensors":
            state.update(load_file(str(path)))
            if not keep_safetensors:
                continue
        shutil.copy(path, folder / path.name)
    torch.save(wrap(state), folder / bin_name)
    (target / "refs").mkdir()
    (target / "refs" / "main").write_text(COMMIT)
    return folder


@pytest.fixture
def clip_repo() -> tuple[str, Path]:
    """BiomedCLIP's twin (open_clip) cached as ``acme/clip``."""
    repo = "acme/clip"
    return repo, write_twin(get_spec("multimodal/biomedclip"), hub_cache(), repo_id=repo)


def _family_repos(
    request: pytest.FixtureRequest, family: str
) -> tuple[str, str, Path]:  # (safetensors name, pickled name, pickled snapshot)
    if family == "timm":
        repo, snapshot = request.getfixturevalue("cached_timm_repo")
        return (
            f"hf-hub:{repo}",
            "hf-hub:acme/path-vit-bin",
            _pickled_copy(snapshot, "acme/path-vit-bin", "pytorch_model.bin"),
        )
    if family == "transformers":
        repo, snapshot = request.getfixturevalue("cached_transformers_repo")
        return (
            repo,
            "acme/chest-dino-bin",
            _pickled_copy(snapshot, "acme/chest-dino-bin", "pytorch_model.bin"),
        )
    repo, snapshot = request.getfixturevalue("clip_repo")
    return (
        f"hf-hub:{repo}",
        "hf-hub:acme/clip-bin",
        _pickled_copy(snapshot, "acme/clip-bin", "open_clip_pytorch_model.bin"),
    )


def _embed(backbone: Any) -> torch.Tensor:
    x = torch.randn(
        2, 3, backbone.spec.input_size, backbone.spec.input_size, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        return backbone(x)


@pytest.mark.parametrize("family", ["timm", "transformers", "open_clip"])
def test_pickle_only_model_needs_allow_pickle(request: pytest.FixtureRequest, family: str) -> None:
    _, pickled, folder = _family_repos(request, family)
    with pytest.raises(BackboneLoadError) as info:
        hfm.load_backbone(pickled)
    message = str(info.value)
    assert "\n" not in message
    assert "allow_pickle=True" in message and "--allow-pickle" in message and "weights_only=True" in message
    assert "safetensors" in message and ".bin" in message  # names what it found and the other fix


@pytest.mark.parametrize("family", ["timm", "transformers", "open_clip"])
def test_allow_pickle_loads_the_same_model_as_safetensors(
    request: pytest.FixtureRequest, family: str
) -> None:
    safe, pickled, folder = _family_repos(request, family)
    reference = hfm.load_backbone(safe)
    loaded = hfm.load_backbone(pickled, allow_pickle=True)
    assert loaded.family == reference.family == family
    assert loaded.revision == COMMIT
    assert loaded.spec.embed_dim == reference.spec.embed_dim
    assert torch.equal(_embed(loaded), _embed(reference))


def test_timm_checkpoint_conventions_are_unwrapped(cached_timm_repo: tuple[str, Path]) -> None:
    """A training checkpoint ``{"model": {"module.<key>": ...}, "epoch": 3}`` loads like the plain weights."""
    repo, snapshot = cached_timm_repo
    _pickled_copy(
        snapshot,
        "acme/path-vit-ckpt",
        "pytorch_model.bin",
        wrap=lambda sd: {"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3},
    )
    reference = hfm.load_backbone(f"hf-hub:{repo}")
    loaded = hfm.load_backbone("hf-hub:acme/path-vit-ckpt", allow_pickle=True)
    assert torch.equal(_embed(loaded), _embed(reference))


def test_dinov2_teacher_checkpoint_is_unwrapped(cached_timm_repo: tuple[str, Path]) -> None:
    """RETFound-DINOv2's ``<name>.pth``: ``{"teacher": {"backbone.<key>": ...}}`` (main_finetune.py L189-204)."""
    import fnmatch

    assert any(fnmatch.fnmatch("RETFound_dinov2_meh.pth", p) for p in PICKLE_PATTERNS)
    repo, snapshot = cached_timm_repo
    _pickled_copy(
        snapshot,
        "acme/retina-dinov2",
        "RETFound_dinov2_meh.pth",
        wrap=lambda sd: {"teacher": {f"backbone.{k}": v for k, v in sd.items()}, "iteration": 7},
    )
    reference = hfm.load_backbone(f"hf-hub:{repo}")
    loaded = hfm.load_backbone("hf-hub:acme/retina-dinov2", allow_pickle=True)
    assert torch.equal(_embed(loaded), _embed(reference))


def test_object_in_pickle_is_refused_without_running_it(
    cached_timm_repo: tuple[str, Path], tmp_path: Path
) -> None:
    marker = tmp_path / "exploit-ran"
    _pickled_copy(
        cached_timm_repo[1],
        "acme/evil-vit",
        "pytorch_model.bin",
        wrap=lambda sd: {**sd, "x": Exploit(marker)},
    )
    with pytest.raises(BackboneLoadError) as info:
        hfm.load_backbone("hf-hub:acme/evil-vit", allow_pickle=True)
    message = str(info.value)
    assert not marker.exists()  # the restricted unpickler never called touch_marker
    assert "\n" not in message and "weights_only=True" in message and "refuses" in message
    assert "touch_marker" in message and "weights_only=False" not in message
    pickle.loads(pickle.dumps(Exploit(marker)))  # the control: a plain unpickler runs it
    assert marker.exists()


def test_class_instance_in_transformers_pickle_is_refused(
    cached_transformers_repo: tuple[str, Path],
) -> None:
    _pickled_copy(
        cached_transformers_repo[1],
        "acme/evil-dino",
        "pytorch_model.bin",
        wrap=lambda sd: {**sd, "p": Payload()},
    )
    with pytest.raises(BackboneLoadError, match=r"Payload.*weights_only=True\) refuses") as info:
        hfm.load_backbone("acme/evil-dino", allow_pickle=True)
    assert "\n" not in str(info.value)


def test_safetensors_win_when_both_exist(cached_timm_repo: tuple[str, Path]) -> None:
    repo, snapshot = cached_timm_repo
    folder = _pickled_copy(snapshot, "acme/both", "pytorch_model.bin", keep_safetensors=True)
    (folder / "pytorch_model.bin").write_bytes(b"never read: not even a pickle")
    loaded = hfm.load_backbone("hf-hub:acme/both", allow_pickle=True)
    assert torch.equal(_embed(loaded), _embed(hfm.load_backbone(f"hf-hub:{repo}")))


def test_local_dir_with_pickle(cached_timm_repo: tuple[str, Path]) -> None:
    folder = _pickled_copy(cached_timm_repo[1], "acme/local", "pytorch_model.bin")
    with pytest.raises(BackboneLoadError, match="allow_pickle=True"):
        hfm.load_backbone(f"local-dir:{folder}")
    assert hfm.load_backbone(f"local-dir:{folder}", allow_pickle=True).family == "timm"


def test_cached_snapshot_without_the_pickle_says_how_to_fetch_it(cached_timm_repo: tuple[str, Path]) -> None:
    folder = _pickled_copy(cached_timm_repo[1], "acme/no-weights", "pytorch_model.bin")
    (folder / "pytorch_model.bin").unlink()  # downloaded earlier without --allow-pickle
    with pytest.raises(
        BackboneLoadError, match="hfm backbones download hf-hub:acme/no-weights --allow-pickle"
    ):
        hfm.load_backbone("hf-hub:acme/no-weights", allow_pickle=True)


def _fake_hub(monkeypatch: pytest.MonkeyPatch, folder: Path) -> list[dict[str, Any]]:
    """Pretend the Hub is online; record every snapshot_download call and answer with ``folder``."""
    import huggingface_hub

    calls: list[dict[str, Any]] = []

    def fake(repo_id: str, **kwargs: Any) -> str:
        calls.append(kwargs)
        return str(folder)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(download, "endpoint_reachable", lambda *a, **k: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    return calls


def test_pickles_are_fetched_only_when_allowed_and_no_safetensors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    folder = tmp_path / "models--acme--m" / "snapshots" / COMMIT
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    calls = _fake_hub(monkeypatch, folder)

    resolve_snapshot("acme/m")  # not allowed: one pass, safetensors patterns only
    assert len(calls) == 1 and "pytorch_model.bin" not in calls[0]["allow_patterns"]

    calls.clear()
    assert resolve_snapshot("acme/m", policy=LoadPolicy(revision="main", allow_pickle=True)).commit == COMMIT
    assert len(calls) == 2
    assert not any(p in calls[0]["allow_patterns"] for p in PICKLE_PATTERNS)
    second = calls[1]["allow_patterns"]
    assert {"pytorch_model.bin", "open_clip_pytorch_model.bin", "*.safetensors"} <= set(second)
    assert not any(p in second for p in ("*.bin", "*.pt", "*.ckpt"))  # never optimizer or training pickles
    assert calls[1]["revision"] == COMMIT  # the same commit as the first pass

    calls.clear()
    (folder / "model.safetensors").write_bytes(b"")
    resolve_snapshot("acme/m", policy=LoadPolicy(allow_pickle=True))
    assert len(calls) == 1  # safetensors exist: nothing pickled is fetched


def test_cli_download_passes_allow_pickle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    def fake(repo_id: str, **kwargs: Any) -> download.Snapshot:
        seen.update(kwargs)
        return download.Snapshot(tmp_path, COMMIT)

    monkeypatch.setattr(download, "resolve_snapshot", fake)
    result = CliRunner().invoke(cli, ["backbones", "download", "acme/m", "--allow-pickle"])
    assert result.exit_code == 0, result.output
    assert seen["policy"].allow_pickle is True and COMMIT in result.output
    CliRunner().invoke(cli, ["backbones", "download", "acme/m"])
    assert seen["policy"].allow_pickle is False
