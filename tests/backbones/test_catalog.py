"""The backbone catalog: every entry is well-formed and its loading facts build the architecture they claim.

Each timm entry is constructed small (random weights, no download) with its own ``loader_kwargs``, so a wrong
kwarg name, a missing architecture or a prefix-token count that disagrees with the real token layout fails here.
Transformers entries are built from their config class the same way.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
import timm
import torch
from torch import nn

from hfm.backbones.catalog import CATALOG, find_spec, get_spec, list_specs, modalities
from hfm.backbones.spec import LOADERS, POOLINGS, BackboneSpec

SPECS = list_specs()
TIMM_SPECS = [s for s in SPECS if s.loader == "timm"]
# Token-sequence transformers (ViT, DINOv2, SigLIP); SAM's encoder returns a feature map and is checked apart.
HF_SPECS = [s for s in SPECS if s.loader == "transformers" and s.architecture != "sam"]
SAM_SPECS = [s for s in SPECS if s.loader == "transformers" and s.architecture == "sam"]
OPEN_CLIP_SPECS = [s for s in SPECS if s.loader == "open_clip"]

TIMM_SMALL = {"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 32, "patch_size": 8}
HF_SMALL = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}
NAME_RE = re.compile(r"^[a-z]+/[a-z0-9][a-z0-9.\-]*$")
LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def _ids(specs: list[BackboneSpec]) -> list[str]:
    return [s.name for s in specs]


def _resolve(value: Any) -> Any:
    """Turn the catalog's dotted callables ("timm.layers.SwiGLUPacked") into objects, as the loaders do."""
    if isinstance(value, str) and re.fullmatch(r"(timm|torch)(\.\w+)+", value):
        module, _, attr = value.rpartition(".")
        return getattr(importlib.import_module(module), attr)
    return value


def _timm_small(spec: BackboneSpec) -> nn.Module:
    kwargs = {k: _resolve(v) for k, v in spec.loader_kwargs.items()}
    kwargs.update(TIMM_SMALL)
    kwargs.update(spec.twin)
    kwargs["num_classes"] = 0
    return timm.create_model(spec.architecture, pretrained=False, **kwargs).eval()


def _hf_small(spec: BackboneSpec) -> nn.Module:
    from transformers import CONFIG_MAPPING, AutoModel

    config = CONFIG_MAPPING[spec.architecture](**{**HF_SMALL, **spec.twin})
    init_kwargs = {k: v for k, v in spec.loader_kwargs.items() if k in {"add_pooling_layer"}}
    return AutoModel.from_config(config, **init_kwargs).eval()


# -- the catalog as a whole ---------------------------------------------------------------------------------
def test_catalog_is_large_and_covers_modalities() -> None:
    assert len(CATALOG) >= 22
    assert len(modalities()) >= 4
    assert {"pathology", "radiology", "ophthalmology", "multimodal", "general"} <= set(modalities())


def test_required_models_are_present() -> None:
    hub_ids = {s.hub_id for s in SPECS}
    for hub_id in [
        "MahmoodLab/UNI",
        "MahmoodLab/UNI2-h",
        "paige-ai/Virchow",
        "paige-ai/Virchow2",
        "bioptimus/H-optimus-0",
        "bioptimus/H-optimus-1",
        "bioptimus/H0-mini",
        "prov-gigapath/prov-gigapath",
        "owkin/phikon",
        "owkin/phikon-v2",
        "histai/hibou-b",
        "histai/hibou-L",
        "kaiko-ai/midnight",
        "microsoft/rad-dino",
        "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
        "facebook/dinov2-small",
        "facebook/dinov2-base",
        "facebook/dinov2-large",
    ]:
        assert hub_id in hub_ids, hub_id
    assert any(s.hub_id.startswith("timm/") and "dinov3" in s.hub_id for s in SPECS)
    assert sum("retfound" in s.name for s in SPECS) >= 2


def test_names_are_namespaced_unique_and_match_modality() -> None:
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    assert len({s.hub_id for s in SPECS}) == len(SPECS)
    for spec in SPECS:
        assert NAME_RE.match(spec.name), spec.name
        assert spec.name.split("/")[0] == spec.modality, spec.name


def test_lookup_by_name_short_name_and_hub_id() -> None:
    assert get_spec("pathology/virchow2").hub_id == "paige-ai/Virchow2"
    assert get_spec("virchow2").name == "pathology/virchow2"
    assert find_spec("paige-ai/virchow2") is get_spec("pathology/virchow2")
    with pytest.raises(KeyError, match="Did you mean"):
        get_spec("virchow3")


# -- every entry ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
def test_entry_fields_are_valid(spec: BackboneSpec) -> None:
    assert spec.loader in LOADERS
    assert spec.pooling in POOLINGS
    assert HUB_ID_RE.match(spec.hub_id), spec.hub_id
    assert spec.architecture
    assert spec.source.startswith("https://"), spec.source
    assert len(spec.citation) > 20 and spec.description
    assert LICENSE_RE.match(spec.license) and spec.license != "unknown", spec.license
    assert spec.input_size % 14 == 0 or spec.input_size % 16 == 0
    assert 0.5 < spec.crop_pct <= 1.0
    assert spec.interpolation in {"bicubic", "bilinear", "nearest"}
    if spec.scaling == "minmax":  # pixels already in [0, 1] by the image's own range: no mean/std on top
        assert (spec.mean, spec.std) == ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    else:
        assert all(0.0 < m < 1.0 for m in spec.mean) and all(0.0 < s < 1.0 for s in spec.std)
    assert all(spec.provenance.values())
    assert spec.num_prefix_tokens >= 0 and spec.embed_dim > 0
    assert spec.params_m is not None and spec.params_m > 1
    assert spec.lora_targets, "every entry needs default LoRA targets"
    if spec.pooling == "cls":
        assert spec.num_prefix_tokens >= 1, "CLS pooling needs a class token"
    if spec.pooling == "cls+mean":
        assert spec.embed_dim % 2 == 0
    # the dataclass round-trips through JSON-ready dicts (adapter records depend on it)
    assert BackboneSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
def test_lora_targets_never_catch_the_patch_embedding(spec: BackboneSpec) -> None:
    targets = spec.lora_targets
    if isinstance(targets, str):
        assert not re.fullmatch(targets, "patch_embed.proj")
        assert not re.fullmatch(targets, "trunk.patch_embed.proj")
        assert not re.fullmatch(targets, "head")
    else:
        assert "proj" not in targets and "all-linear" not in targets


@pytest.mark.parametrize("spec", SPECS, ids=_ids(SPECS))
def test_dotted_callables_resolve(spec: BackboneSpec) -> None:
    for key, value in spec.loader_kwargs.items():
        if key in {"mlp_layer", "act_layer", "norm_layer", "block_fn", "embed_layer"}:
            assert isinstance(value, str), f"{spec.name}: write {key} as a dotted path"
            assert callable(_resolve(value)), f"{spec.name}: {value} does not resolve"


# -- timm entries: architecture exists, constructs small, token layout and width agree ----------------------
@pytest.mark.parametrize("spec", TIMM_SPECS + OPEN_CLIP_SPECS, ids=_ids(TIMM_SPECS + OPEN_CLIP_SPECS))
def test_timm_architecture_exists(spec: BackboneSpec) -> None:
    assert timm.is_model(spec.architecture), f"{spec.architecture} is not a timm {timm.__version__} model"


@pytest.mark.parametrize("spec", TIMM_SPECS, ids=_ids(TIMM_SPECS))
def test_timm_entry_constructs_small_with_its_kwargs(spec: BackboneSpec) -> None:
    model = _timm_small(spec)
    assert model.num_prefix_tokens == spec.num_prefix_tokens
    with torch.no_grad():
        tokens = model.forward_features(torch.randn(2, 3, 32, 32))
    n_patches = (32 // 8) ** 2
    assert tokens.shape == (2, spec.num_prefix_tokens + n_patches, TIMM_SMALL["embed_dim"])
    factor = 2 if spec.pooling == "cls+mean" else 1
    # at full size the width is the real embed_dim, so the spec's embed_dim must be pooling x width
    full_width = (
        spec.loader_kwargs.get("embed_dim")
        or timm.create_model(
            spec.architecture,
            pretrained=False,
            num_classes=0,
            depth=1,
            img_size=32,
            patch_size=8,
            **{
                k: _resolve(v)
                for k, v in spec.loader_kwargs.items()
                if k not in {"depth", "img_size", "patch_size", "num_classes"}
            },
        ).embed_dim
    )
    assert spec.embed_dim == factor * full_width
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    matched = [n for n in names if re.fullmatch(str(spec.lora_targets), n)]
    assert matched and all(n.startswith("blocks.") for n in matched)
    assert len(matched) == 2 * TIMM_SMALL["depth"]


@pytest.mark.parametrize(
    ("name", "kwarg", "value"),
    [
        ("pathology/uni2-h", "reg_tokens", 8),
        ("pathology/uni2-h", "no_embed_class", True),
        ("pathology/virchow2", "reg_tokens", 4),
        ("pathology/virchow2", "mlp_layer", "timm.layers.SwiGLUPacked"),
        ("pathology/virchow", "act_layer", "torch.nn.SiLU"),
        ("pathology/uni", "init_values", 1e-5),
        ("pathology/h-optimus-0", "dynamic_img_size", False),
    ],
)
def test_publisher_kwargs_are_kept(name: str, kwarg: str, value: Any) -> None:
    assert get_spec(name).loader_kwargs[kwarg] == value


def test_virchow2_pooling_skips_its_registers() -> None:
    spec = get_spec("pathology/virchow2")
    assert (spec.pooling, spec.num_prefix_tokens, spec.embed_dim) == ("cls+mean", 5, 2560)
    assert get_spec("pathology/h-optimus-1").mean == (0.707223, 0.578729, 0.703617)


# -- transformers entries: config class exists, constructs small, width and token layout agree -------------
@pytest.mark.parametrize("spec", HF_SPECS, ids=_ids(HF_SPECS))
def test_transformers_entry_constructs_small(spec: BackboneSpec) -> None:
    model = _hf_small(spec)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(2, 3, 32, 32))
    n_patches = (32 // 8) ** 2
    assert out.last_hidden_state.shape == (2, spec.num_prefix_tokens + n_patches, 64)
    if spec.pooling == "pooler":
        assert out.pooler_output.shape == (2, 64)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    for target in spec.lora_targets:
        assert sum(n.endswith("." + target) for n in names) == HF_SMALL["num_hidden_layers"], target


@pytest.mark.parametrize("spec", HF_SPECS, ids=_ids(HF_SPECS))
def test_transformers_embed_dim_is_pooling_times_width(spec: BackboneSpec) -> None:
    from transformers import CONFIG_MAPPING

    factor = 2 if spec.pooling == "cls+mean" else 1
    assert spec.embed_dim // factor in {384, 768, 1024, 1152, 1536}
    assert spec.architecture in CONFIG_MAPPING


@pytest.mark.parametrize("spec", SAM_SPECS, ids=_ids(SAM_SPECS))
def test_sam_entry_pools_the_neck_map_and_targets_attention(spec: BackboneSpec) -> None:
    """SAM encoders: no prefix tokens, the embedding is the neck's channel count, LoRA hits qkv/proj per block."""
    from transformers import SamVisionConfig, SamVisionModel

    assert spec.pooling == "mean" and spec.num_prefix_tokens == 0
    assert spec.embed_dim == SamVisionConfig().output_channels  # 256 for the published ViT-B encoder
    config = SamVisionConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
        output_channels=32, global_attn_indexes=[1], mlp_dim=128,
    )  # fmt: skip
    model = SamVisionModel(config).eval()
    with torch.no_grad():
        out = model(pixel_values=torch.randn(2, 3, 32, 32)).last_hidden_state
    assert out.shape == (2, 32, 4, 4)  # [B, channels, H/patch, W/patch]: hfm flattens it to 16 tokens
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    assert len([n for n in names if re.fullmatch(str(spec.lora_targets), n)]) == 2 * 2


# -- open_clip entries --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", OPEN_CLIP_SPECS, ids=_ids(OPEN_CLIP_SPECS))
def test_open_clip_tower_lora_targets_match_trunk(spec: BackboneSpec) -> None:
    trunk = timm.create_model(spec.architecture, pretrained=False, num_classes=0, **TIMM_SMALL)
    names = ["trunk." + n for n, m in trunk.named_modules() if isinstance(m, nn.Linear)]
    matched = [n for n in names if re.fullmatch(str(spec.lora_targets), n)]
    assert len(matched) == 2 * TIMM_SMALL["depth"]
    assert trunk.num_prefix_tokens == spec.num_prefix_tokens


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scaling": "zscore"}, "scaling must be one of"),
        ({"fc_norm": True, "pooling": "cls"}, "fc_norm applies to 'mean' pooling only"),
        ({"provenance": {"colour": "somewhere"}}, "provenance keys must be spec fields"),
        ({"provenance": {"mean": ""}}, "provenance keys must be spec fields"),
    ],
)
def test_spec_rejects_inconsistent_preprocessing_facts(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_spec("pathology/uni").replace(**change)


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        # issue-level fixes, each against the publisher's code (see the entries' provenance)
        ("radiology/medsam", {"scaling": "minmax", "interpolation": "bicubic", "mean": (0.0, 0.0, 0.0)}),
        ("ophthalmology/retfound-cfp", {"pooling": "mean", "fc_norm": True, "num_prefix_tokens": 1}),
        ("ophthalmology/retfound-oct", {"pooling": "mean", "fc_norm": True}),
        ("ophthalmology/retfound-dinov2-meh", {"pooling": "cls", "architecture": "vit_large_patch14_dinov2"}),
        ("ophthalmology/retfound-dinov2-shanghai", {"input_size": 224, "gated": True}),
        ("pathology/uni", {"interpolation": "bilinear"}),
        ("pathology/uni2-h", {"interpolation": "bilinear"}),
        ("pathology/h0-mini", {"pooling": "cls", "embed_dim": 768}),
        ("radiology/rad-dino", {"license": "mit"}),
    ],
)
def test_audited_facts(name: str, facts: dict[str, Any]) -> None:
    spec = get_spec(name)
    assert {key: getattr(spec, key) for key in facts} == facts
    assert spec.provenance, f"{name}: the audited facts need their sources"


def test_medsam_pins_the_safetensors_commit() -> None:
    spec = get_spec("radiology/medsam")
    assert spec.revision == "a0a0e4bf38278213a0df876d2378f5736731a15e"
    assert "safetensors" in spec.provenance["weights"]
