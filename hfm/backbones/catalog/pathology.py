"""Pathology backbones. Each entry cites where its loading facts come from."""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

SPECS: list[BackboneSpec] = [
    BackboneSpec(
        name="pathology/uni",
        hub_id="MahmoodLab/UNI",
        loader="timm",
        architecture="vit_large_patch16_224",
        loader_kwargs={"init_values": 1e-5, "dynamic_img_size": True},
        input_size=224,
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=1024,
        lora_targets=r".*blocks\.\d+\.attn\.(qkv|proj)",
        modality="pathology",
        license="cc-by-nc-nd-4.0",
        gated=True,
        params_m=303.0,
        citation="Chen et al., Towards a general-purpose foundation model for computational pathology, Nature Medicine 2024",
        source="https://huggingface.co/MahmoodLab/UNI",
        description="ViT-L/16 DINOv2-trained on 100k H&E slides (Mass-100K).",
        twin={"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 32, "patch_size": 8},
    ),
]
