"""General-purpose baselines (natural-image self-supervised models). Each entry cites its source."""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

HF_ATTN_LORA = ("q_proj", "k_proj", "v_proj")
TIMM_VIT_LORA = r".*blocks\.\d+\.attn\.(qkv|proj)"
DINOV2_CITATION = "Oquab et al., DINOv2: Learning robust visual features without supervision, TMLR 2024"
DINOV3_CITATION = "Simeoni et al., DINOv3, arXiv:2508.10104, 2025"


def _dinov2(size: str, width: int, params_m: float) -> BackboneSpec:
    # Card + preprocessor_config (huggingface.co/facebook/dinov2-*): AutoModel (Dinov2Model); processor resizes
    # the shortest edge to 256 (bicubic) and centre-crops 224 with ImageNet mean/std; CLS (pooler_output).
    return BackboneSpec(
        name=f"general/dinov2-{size}",
        hub_id=f"facebook/dinov2-{size}",
        loader="transformers",
        architecture="dinov2",
        input_size=224,
        crop_pct=0.875,
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=width,
        lora_targets=HF_ATTN_LORA,
        modality="general",
        license="apache-2.0",
        params_m=params_m,
        citation=DINOV2_CITATION,
        source=f"https://huggingface.co/facebook/dinov2-{size}",
        provenance={
            "crop_pct": f"huggingface.co/facebook/dinov2-{size} preprocessor_config.json: shortest_edge 256, crop 224",
            "interpolation": f"huggingface.co/facebook/dinov2-{size} preprocessor_config.json: resample 3 (bicubic)",
            "pooling": "transformers Dinov2Model pooler_output: the final-normed CLS token",
        },
        description=f"DINOv2 ViT-{size[0].upper()}/14 trained on LVD-142M natural images (baseline).",
    )


def _dinov3(size: str, width: int, params_m: float) -> BackboneSpec:
    # timm 1.0.31 pretrained_cfg for vit_*_patch16_dinov3.lvd1689m (hf_hub_id timm/...): 256 px, bicubic,
    # crop_pct 1.0, ImageNet mean/std, licence dinov3-license; Eva with 1 CLS + 4 register tokens
    # (num_prefix_tokens 5); global_pool='token' gives the CLS embedding.
    arch = f"vit_{size}_patch16_dinov3"
    return BackboneSpec(
        name=f"general/dinov3-{size}",
        hub_id=f"timm/{arch}.lvd1689m",
        loader="timm",
        architecture=arch,
        loader_kwargs={"global_pool": "token"},
        input_size=256,
        pooling="cls",
        num_prefix_tokens=5,
        embed_dim=width,
        lora_targets=TIMM_VIT_LORA,
        modality="general",
        license="dinov3-license",
        params_m=params_m,
        citation=DINOV3_CITATION,
        source=f"https://huggingface.co/timm/{arch}.lvd1689m",
        provenance={
            "interpolation": f"timm pretrained_cfg {arch}.lvd1689m: 256 px, bicubic, crop_pct 1.0",
            "pooling": "timm eva.py: pass global_pool='token' for CLS pooling (matches upstream DINOv3)",
        },
        description=f"DINOv3 ViT-{size[0].upper()}/16 distilled on LVD-1689M natural images (baseline).",
    )


SPECS: list[BackboneSpec] = [
    _dinov2("small", 384, 22.0),
    _dinov2("base", 768, 86.0),
    _dinov2("large", 1024, 304.0),
    _dinov3("small", 384, 22.0),
    _dinov3("base", 768, 86.0),
    _dinov3("large", 1024, 303.0),
]
