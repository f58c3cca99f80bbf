"""Every catalog entry's twin loads offline, embeds with the spec's size and pools as the spec says."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import hfm
from hfm.backbones.catalog import CATALOG, get_spec
from hfm.backbones.spec import BackboneSpec
from hfm.backbones.twins import twin_cache_dir, twin_commit, write_twin


def _manual_pool(tokens: torch.Tensor, spec: BackboneSpec) -> torch.Tensor:
    prefix = spec.num_prefix_tokens
    if spec.pooling == "cls":
        return tokens[:, 0]
    if spec.pooling == "mean":
        pooled = tokens[:, prefix:].mean(1)
        return torch.nn.functional.layer_norm(pooled, pooled.shape[-1:], eps=1e-6) if spec.fc_norm else pooled
    return torch.cat([tokens[:, 0], tokens[:, prefix:].mean(1)], dim=-1)


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_twin_loads_offline_and_embeds(name: str) -> None:
    real = get_spec(name)
    backbone = hfm.load_backbone(name, twin=True)
    spec = backbone.spec
    assert backbone.is_twin and backbone.family == real.loader
    assert spec.name == real.name and spec.pooling == real.pooling
    assert spec.num_prefix_tokens == real.num_prefix_tokens
    assert spec.input_size <= 64
    assert backbone.revision == twin_commit(real)
    assert sum(p.numel() for p in backbone.parameters()) < 2_000_000
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8))
    x = torch.stack([backbone.transform(image), backbone.transform(image.convert("L"))])
    assert x.shape == (2, 3, spec.input_size, spec.input_size)
    with torch.no_grad():
        embedding = backbone(x)
        tokens = backbone.tokens(x)
    assert embedding.shape == (2, spec.embed_dim)
    assert torch.isfinite(embedding).all()
    assert tokens.shape[-1] == backbone.width
    assert tokens.shape[1] > spec.num_prefix_tokens
    if spec.pooling != "pooler":
        torch.testing.assert_close(embedding, _manual_pool(tokens, spec))


def test_virchow2_style_pooling_skips_register_tokens() -> None:
    """cls+mean over patch tokens only: ``cat([out[:, 0], out[:, 5:].mean(1)])`` as the Virchow2 card says."""
    backbone = hfm.load_backbone("pathology/virchow2", twin=True)
    assert backbone.model.num_prefix_tokens == 5  # 1 class + 4 register tokens, as in the real model
    x = torch.randn(2, 3, backbone.spec.input_size, backbone.spec.input_size)
    with torch.no_grad():
        tokens = backbone.tokens(x)
        embedding = backbone(x)
    expected = torch.cat([tokens[:, 0], tokens[:, 5:].mean(1)], dim=-1)
    torch.testing.assert_close(embedding, expected)
    wrong = torch.cat([tokens[:, 0], tokens[:, 1:].mean(1)], dim=-1)  # registers included
    assert not torch.allclose(embedding, wrong)


def test_twin_keeps_special_timm_kwargs() -> None:
    """Same model class and special layers as the real model (SwiGLUPacked MLP, SiLU, layer scale)."""
    from timm.layers import GluMlp

    backbone = hfm.load_backbone("pathology/virchow2", twin=True)
    block = backbone.model.blocks[0]
    assert type(backbone.model).__name__ == "VisionTransformer"
    assert isinstance(block.mlp, GluMlp)
    assert isinstance(block.mlp.act, torch.nn.SiLU)
    uni = hfm.load_backbone("pathology/uni", twin=True)
    assert type(uni.model.blocks[0].ls1).__name__ == "LayerScale"  # init_values=1e-5


def test_twins_are_deterministic(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = {k: v.clone() for k, v in hfm.load_backbone("pathology/uni", twin=True).state_dict().items()}
    monkeypatch.setenv("HFM_CACHE", str(tmp_path / "other-cache"))  # written again from scratch
    second = hfm.load_backbone("pathology/uni", twin=True).state_dict()
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key])


def test_twin_is_written_in_hub_layout() -> None:
    spec = get_spec("radiology/rad-dino")
    snapshot = write_twin(spec)
    repo = twin_cache_dir() / "models--microsoft--rad-dino"
    commit = twin_commit(spec)
    assert snapshot == repo / "snapshots" / commit
    assert (repo / "refs" / "main").read_text() == commit
    assert (snapshot / "config.json").is_file() and (snapshot / "model.safetensors").is_file()
    assert not list(snapshot.glob("*.bin"))
    assert write_twin(spec) == snapshot  # idempotent


def test_twin_of_unknown_id_is_refused() -> None:
    with pytest.raises(hfm.HfmError, match="twins exist only for catalog entries"):
        hfm.load_backbone("acme/not-in-catalog", twin=True)


def test_sam_style_twin_pools_mean_over_feature_map() -> None:
    """A MedSAM-style entry (SAM image encoder, mean over the neck's feature map) loads as a twin."""
    from hfm.backbones.loaders import build_from_folder
    from hfm.backbones.twins import twin_build_spec
    from hfm.hub.download import resolve_snapshot

    spec = BackboneSpec(
        name="radiology/medsam-test",
        hub_id="acme/medsam-test",
        loader="transformers",
        architecture="sam",
        input_size=1024,
        pooling="mean",
        num_prefix_tokens=0,
        embed_dim=256,
    )
    write_twin(spec)
    snap = resolve_snapshot(spec.hub_id, cache_dir=twin_cache_dir(), local_files_only=True)
    backbone = build_from_folder(
        snap.path,
        twin_build_spec(spec, snap.path),
        name=spec.name,
        hub_id=spec.hub_id,
        revision=snap.commit,
        twin=True,
    )
    x = torch.randn(1, 3, backbone.spec.input_size, backbone.spec.input_size)
    with torch.no_grad():
        tokens = backbone.tokens(x)
        torch.testing.assert_close(backbone(x), tokens.mean(1))
    assert backbone.spec.embed_dim == tokens.shape[-1] == 32


def test_a_second_writer_keeps_the_twin_another_process_finished(tmp_path, monkeypatch) -> None:
    """Two torchrun ranks write the same twin: the one that finishes second must not delete the complete twin
    the first may already be reading (it did, and the first rank crashed)."""
    from hfm.backbones import twins

    spec = get_spec("pathology/uni")
    original = twins._WRITERS[spec.loader]
    sentinel: list[Any] = []

    def racing(spec_: BackboneSpec, folder: Any) -> None:
        original(spec_, folder)
        monkeypatch.setitem(twins._WRITERS, spec.loader, original)
        first = write_twin(spec_, tmp_path)  # the other rank finishes the same twin meanwhile
        (first / "in-use").write_text("read by the other rank")
        sentinel.append(first)

    monkeypatch.setitem(twins._WRITERS, spec.loader, racing)
    path = write_twin(spec, tmp_path)
    assert path == sentinel[0]
    assert (path / "in-use").is_file(), "the complete twin was deleted and replaced"
    assert (path / ".hfm_twin_complete").is_file()
