"""Loading ad-hoc Hub ids from a pre-populated cache, local folders, revisions, and spec checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hfm
from hfm.backbones.catalog import get_spec
from hfm.backbones.loaders import build_from_folder
from hfm.backbones.loaders.common import resolve_kwargs
from hfm.errors import BackboneLoadError, BackboneNotFoundError, RemoteCodeError


def test_cached_hf_hub_timm_model_loads_offline(cached_timm_repo: tuple[str, Path]) -> None:
    repo, snapshot = cached_timm_repo
    backbone = hfm.load_backbone(f"hf-hub:{repo}")
    assert backbone.family == "timm" and not backbone.is_twin
    assert backbone.revision == snapshot.name  # the commit actually loaded
    assert backbone.spec.input_size == 32  # preprocessing read from the config's pretrained_cfg
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert backbone(x).shape == (2, backbone.spec.embed_dim) == (2, 64)


def test_cached_transformers_model_loads_offline(cached_transformers_repo: tuple[str, Path]) -> None:
    repo, snapshot = cached_transformers_repo
    backbone = hfm.load_backbone(repo)
    spec = backbone.spec
    assert backbone.family == "transformers" and backbone.revision == snapshot.name
    assert spec.pooling == "cls" and spec.num_prefix_tokens == 1
    # preprocessing from preprocessor_config.json (RAD-DINO's grey-level statistics)
    assert spec.input_size == 32 and spec.mean == pytest.approx((0.5307,) * 3)
    assert backbone(torch.randn(1, 3, 32, 32)).shape == (1, 64)


def test_revision_selects_the_cached_commit(cached_timm_repo: tuple[str, Path]) -> None:
    repo, snapshot = cached_timm_repo
    backbone = hfm.load_backbone(f"hf-hub:{repo}", revision=snapshot.name)
    assert backbone.revision == snapshot.name
    assert backbone.describe()["resolved_revision"] == snapshot.name


def test_local_dir_loads_timm_and_transformers(
    cached_timm_repo: tuple[str, Path], cached_transformers_repo: tuple[str, Path]
) -> None:
    timm_model = hfm.load_backbone(f"local-dir:{cached_timm_repo[1]}")
    hf_model = hfm.load_backbone(f"local-dir:{cached_transformers_repo[1]}")
    assert (timm_model.family, hf_model.family) == ("timm", "transformers")
    assert timm_model.revision == cached_timm_repo[1].name  # a folder inside a Hub cache knows its commit


def test_local_dir_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(BackboneNotFoundError, match="does not exist"):
        hfm.load_backbone(f"local-dir:{tmp_path / 'nope'}")


def test_pickle_only_folder_is_refused(tmp_path: Path, cached_timm_repo: tuple[str, Path]) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text((cached_timm_repo[1] / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not unpickled")
    with pytest.raises(BackboneLoadError, match="allow_pickle=True"):
        hfm.load_backbone(f"local-dir:{folder}")


def test_auto_map_needs_trust_remote_code(cached_transformers_repo: tuple[str, Path]) -> None:
    repo, snapshot = cached_transformers_repo
    config_path = snapshot / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = {"AutoModel": "modeling_custom.CustomModel"}
    config_path.write_text(json.dumps(config))
    with pytest.raises(RemoteCodeError, match="trust_remote_code=True"):
        hfm.load_backbone(repo)


def test_spec_that_needs_remote_code_fails_before_any_download() -> None:
    with pytest.raises(RemoteCodeError, match="--trust-remote-code"):
        hfm.load_backbone("pathology/hibou-b")


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(BackboneNotFoundError, match="Did you mean") as info:
        hfm.load_backbone("pathology/unii")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, hfm.HfmError)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"embed_dim": 999}, "embed_dim=999"), ({"num_prefix_tokens": 5}, "num_prefix_tokens=5")],
)
def test_wrong_spec_is_caught_after_load(
    cached_timm_repo: tuple[str, Path], change: dict[str, int], message: str
) -> None:
    spec = get_spec("pathology/uni").replace(**{"embed_dim": 64, **change})
    with pytest.raises(BackboneLoadError, match=message):
        build_from_folder(cached_timm_repo[1], spec, name=spec.name, hub_id=spec.hub_id, revision=None)


def test_dotted_kwargs_resolve_to_objects() -> None:
    from timm.layers import SwiGLUPacked

    kwargs = resolve_kwargs(
        {"mlp_layer": "timm.layers.SwiGLUPacked", "act_layer": "torch.nn.SiLU", "x": 1e-5}
    )
    assert kwargs == {"mlp_layer": SwiGLUPacked, "act_layer": torch.nn.SiLU, "x": 1e-5}
    with pytest.raises(BackboneLoadError, match="cannot import"):
        resolve_kwargs({"act_layer": "torch.nn.NoSuchLayer"})


def test_device_and_dtype_are_applied() -> None:
    backbone = hfm.load_backbone("pathology/uni", twin=True, device="cpu", dtype=torch.float64)
    assert next(backbone.parameters()).dtype == torch.float64
    assert not backbone.training


def test_open_clip_missing_is_a_one_line_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """open_clip is an optional extra: without it, loading a CLIP backbone says what to install."""
    import sys

    from hfm.backbones.loaders.clip_loader import build_open_clip

    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(BackboneLoadError, match=r"pip install 'hfm-hub\[clip\]'"):
        build_open_clip(tmp_path, None, label="x")


def test_lora_targets_follow_the_loaded_models_names() -> None:
    """transformers 4 and Hibou's remote code name attention projections query/key/value, transformers 5 q_proj."""
    from torch import nn

    from hfm.backbones.base import Backbone
    from hfm.backbones.catalog import get_spec

    class Attention(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.query, self.key, self.value = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4)

    spec = get_spec("pathology/hibou-b")
    assert spec.lora_targets == ("q_proj", "k_proj", "v_proj")
    old_style = Backbone(nn.ModuleDict({"attention": Attention()}), spec, family="transformers")
    assert old_style.lora_targets == ["query", "key", "value"]
    current = hfm.load_backbone("pathology/hibou-b", twin=True)
    assert current.lora_targets == ["q_proj", "k_proj", "v_proj"]
    assert (
        hfm.load_backbone("pathology/uni", twin=True).lora_targets == get_spec("pathology/uni").lora_targets
    )
