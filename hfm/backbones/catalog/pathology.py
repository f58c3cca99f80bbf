"""Pathology backbones (H&E / IHC tiles).

Each entry cites, in the comment above it, what its loading facts were checked against: the model card on the
Hugging Face Hub, the Hub ``config.json``, and where the card is terse the loaders of two public benchmark
harnesses that reproduce the publishers' numbers (MahmoodLab TRIDENT ``trident/patch_encoder_models/load.py``
and kaiko-ai eva ``src/eva/vision/models/networks/backbones/pathology/``).

``loader_kwargs`` repeat the architecture-defining ``model_args`` of the Hub config (``reg_tokens``,
``mlp_ratio``, ``init_values`` ...) as well as the kwargs the card passes, so a tiny random twin built from
``architecture`` + ``loader_kwargs`` has the same token layout as the real model; timm lets call kwargs override
the Hub ``model_args``, so repeating them is harmless for the real load.

Not in the catalog:
    CONCH (``MahmoodLab/CONCH``) loads only through MahmoodLab's own ``conch`` package
    (``conch.open_clip_custom.create_model_from_pretrained('conch_ViT-B-16', 'hf_hub:MahmoodLab/conch')``): the
    architecture name is not registered in open_clip or timm and the weights ship as a pickled
    ``pytorch_model.bin``, so none of hfm's three loaders can express it. CONCH v1.5 likewise needs
    ``trust_remote_code`` through ``MahmoodLab/TITAN``.
"""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

HOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
HOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
HIBOU_MEAN = (0.7068, 0.5755, 0.722)
HIBOU_STD = (0.195, 0.2316, 0.1816)
HALF = (0.5, 0.5, 0.5)
LUNIT_MEAN = (0.70322989, 0.53606487, 0.66096631)
LUNIT_STD = (0.21716536, 0.26081574, 0.20723464)

TIMM_VIT_LORA = r".*blocks\.\d+\.attn\.(qkv|proj)"
HF_ATTN_LORA = ("q_proj", "k_proj", "v_proj")

# UNI and UNI2-h share MahmoodLab's eval transform.
_UNI_TRANSFORM = {
    "interpolation": "mahmoodlab/UNI uni/get_encoder/get_encoder.py L40: transforms.Resize(img_resize) "
    "(torchvision default BILINEAR); mahmoodlab/TRIDENT load.py L830, L891",
    "mean": "mahmoodlab/UNI get_encoder.py L46-50: ImageNet normalisation ('imagenet')",
}


def _virchow(version: str, citation: str, description: str, *, registers: int, license: str) -> BackboneSpec:
    """Paige's Virchow family: ViT-H/14 with SwiGLU; the card's embedding is CLS + mean of the patch tokens.

    Card (huggingface.co/paige-ai/Virchow, /Virchow2): ``create_model("hf-hub:paige-ai/<name>", pretrained=True,
    mlp_layer=SwiGLUPacked, act_layer=SiLU)``; Hub config ``model_args`` img_size=224, init_values=1e-5,
    mlp_ratio=5.3375, global_pool="", dynamic_img_size=True (Virchow2 adds reg_tokens=4); embedding
    ``cat([out[:, 0], out[:, 1 + registers:].mean(1)])`` -> 2560-d. Resize 224 bicubic + ImageNet norm
    (mahmoodlab/TRIDENT load.py L1027 / L1103, from the cards' ``resolve_data_config``).
    """
    hub_id = f"paige-ai/{version}"
    kwargs: dict[str, object] = {"img_size": 224, "init_values": 1e-5}
    if registers:
        kwargs["reg_tokens"] = registers
    kwargs.update(
        {
            "mlp_ratio": 5.3375,
            "global_pool": "",
            "dynamic_img_size": True,
            "mlp_layer": "timm.layers.SwiGLUPacked",
            "act_layer": "torch.nn.SiLU",
        }
    )
    return BackboneSpec(
        name=f"pathology/{version.lower()}",
        hub_id=hub_id,
        loader="timm",
        architecture="vit_huge_patch14_224",
        loader_kwargs=kwargs,
        input_size=224,
        pooling="cls+mean",
        num_prefix_tokens=1 + registers,
        embed_dim=2560,
        lora_targets=TIMM_VIT_LORA,
        modality="pathology",
        license=license,
        gated=True,
        params_m=632.0,
        citation=citation,
        source=f"https://huggingface.co/{hub_id}",
        provenance={
            "pooling": f"huggingface.co/{hub_id} card: cat([class_token, patch_tokens.mean(1)]); "
            "mahmoodlab/TRIDENT load.py L1039-1045 / L1116-1121",
            "interpolation": "mahmoodlab/TRIDENT load.py L1027 / L1103: Resize(224, BICUBIC)",
        },
        description=description,
        twin={"mlp_ratio": 4.0},
    )


def _hoptimus(
    version: str, citation: str, description: str, *, license: str, weights: dict[str, str]
) -> BackboneSpec:
    """Bioptimus H-optimus-0/1: ViT-g/14 with 4 registers; CLS 1536-d.

    Card (huggingface.co/bioptimus/H-optimus-<n>): ``create_model("hf-hub:bioptimus/H-optimus-<n>",
    pretrained=True, init_values=1e-5, dynamic_img_size=False)``; Hub config architecture
    vit_giant_patch14_reg4_dinov2, global_pool token; ToTensor + Normalize((0.707223, 0.578729, 0.703617),
    (0.211883, 0.230117, 0.177517)) on 224 px tiles (the card does not resize). For other tile sizes hfm
    resizes bilinearly like TRIDENT (load.py L1172 / L1232: ``transforms.Resize(img_size)``).
    """
    hub_id = f"bioptimus/H-optimus-{version}"
    return BackboneSpec(
        name=f"pathology/h-optimus-{version}",
        hub_id=hub_id,
        loader="timm",
        architecture="vit_giant_patch14_reg4_dinov2",
        loader_kwargs={"init_values": 1e-5, "dynamic_img_size": False},
        input_size=224,
        mean=HOPTIMUS_MEAN,
        std=HOPTIMUS_STD,
        interpolation="bilinear",
        pooling="cls",
        num_prefix_tokens=5,
        embed_dim=1536,
        lora_targets=TIMM_VIT_LORA,
        modality="pathology",
        license=license,
        gated=True,
        params_m=1134.0,
        citation=citation,
        source=f"https://huggingface.co/{hub_id}",
        provenance={
            "mean": f"huggingface.co/{hub_id} card: transforms.Normalize(mean, std)",
            "interpolation": "mahmoodlab/TRIDENT load.py L1172 / L1232: transforms.Resize(img_size) (bilinear)",
            "pooling": "Hub config global_pool 'token': CLS",
            **weights,
        },
        description=description,
        # timm registers the DINOv2 giant with SwiGLUPacked: keep the twin's hidden size even.
        twin={"mlp_ratio": 4.0},
    )


def _hibou(
    size: str, hub_name: str, width: int, params_m: float, description: str, **twin: object
) -> BackboneSpec:
    """HistAI Hibou: DINOv2 ViT/14 with 4 registers (SwiGLU for B), run through the repo's own remote code.

    Card + config (huggingface.co/histai/hibou-b, /hibou-L): ``AutoModel.from_pretrained(..., trust_remote_code=True)``
    -> custom Dinov2ModelWithRegisters (model_type dinov2, num_register_tokens=4); the card and TRIDENT
    (load.py L533) use ``pooler_output``; kaiko-ai/eva (histai.py -> ExtractCLSFeatures,
    extract_cls_features.py L34) takes ``last_hidden_state[:, 0]``, the same
    CLS token after the final layernorm. Hibou mean/std; bicubic 224 (TRIDENT load.py L526). The remote code was
    written for transformers 4 and names its attention projections ``query``/``key``/``value``: the LoRA
    targets are resolved from the loaded model (``Backbone.lora_targets``). ``architecture`` names the built-in
    transformers class with the same token layout, used for the twin.
    """
    hub_id = f"histai/{hub_name}"
    return BackboneSpec(
        name=f"pathology/hibou-{size}",
        hub_id=hub_id,
        loader="transformers",
        architecture="dinov2_with_registers",
        input_size=224,
        mean=HIBOU_MEAN,
        std=HIBOU_STD,
        pooling="pooler",
        num_prefix_tokens=5,
        embed_dim=width,
        lora_targets=HF_ATTN_LORA,
        modality="pathology",
        license="apache-2.0",
        trust_remote_code=True,
        params_m=params_m,
        citation="Nechaev et al., Hibou: A family of foundational vision transformers for pathology, "
        "arXiv:2406.05074, 2024",
        source=f"https://huggingface.co/{hub_id}",
        provenance={
            "pooling": f"huggingface.co/{hub_id} card: outputs.pooler_output; mahmoodlab/TRIDENT load.py L533",
            "interpolation": "mahmoodlab/TRIDENT load.py L526: InterpolationMode.BICUBIC",
            "lora_targets": "remote code for transformers 4 names query/key/value; resolved on load",
        },
        description=description,
        twin={"num_register_tokens": 4, **twin},
    )


SPECS: list[BackboneSpec] = [
    # Card (huggingface.co/MahmoodLab/UNI): timm.create_model("hf-hub:MahmoodLab/UNI", pretrained=True,
    # init_values=1e-5, dynamic_img_size=True); Resize(224) + ImageNet norm; CLS 1024-d. TRIDENT agrees.
    # Interpolation: torchvision's Resize default, bilinear (mahmoodlab/UNI uni/get_encoder/get_encoder.py L40
    # ``transforms.Resize(img_resize)``; TRIDENT load.py L830).
    BackboneSpec(
        name="pathology/uni",
        hub_id="MahmoodLab/UNI",
        loader="timm",
        architecture="vit_large_patch16_224",
        loader_kwargs={"init_values": 1e-5, "dynamic_img_size": True},
        input_size=224,
        interpolation="bilinear",
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=1024,
        lora_targets=TIMM_VIT_LORA,
        modality="pathology",
        license="cc-by-nc-nd-4.0",
        gated=True,
        params_m=303.0,
        citation="Chen et al., Towards a general-purpose foundation model for computational pathology, "
        "Nature Medicine 2024",
        source="https://huggingface.co/MahmoodLab/UNI",
        provenance={**_UNI_TRANSFORM, "loader_kwargs": "mahmoodlab/UNI get_encoder.py L106-113 (uni_kwargs)"},
        description="ViT-L/16 DINOv2-trained on 100k H&E slides (Mass-100K).",
        twin={"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 32, "patch_size": 8},
    ),
    # Card (huggingface.co/MahmoodLab/UNI2-h): timm_kwargs img_size=224, patch_size=14, depth=24, num_heads=24,
    # init_values=1e-5, embed_dim=1536, mlp_ratio=2.66667*2, num_classes=0, no_embed_class=True,
    # mlp_layer=SwiGLUPacked, act_layer=SiLU, reg_tokens=8, dynamic_img_size=True on vit_giant_patch14_224
    # (TRIDENT); CLS 1536-d; 8 registers -> 9 prefix tokens. Resize: bilinear, as for UNI (get_encoder.py L40;
    # TRIDENT load.py L891).
    BackboneSpec(
        name="pathology/uni2-h",
        hub_id="MahmoodLab/UNI2-h",
        loader="timm",
        architecture="vit_giant_patch14_224",
        loader_kwargs={
            "img_size": 224,
            "patch_size": 14,
            "depth": 24,
            "num_heads": 24,
            "init_values": 1e-5,
            "embed_dim": 1536,
            "mlp_ratio": 2.66667 * 2,
            "num_classes": 0,
            "no_embed_class": True,
            "mlp_layer": "timm.layers.SwiGLUPacked",
            "act_layer": "torch.nn.SiLU",
            "reg_tokens": 8,
            "dynamic_img_size": True,
        },
        input_size=224,
        interpolation="bilinear",
        pooling="cls",
        num_prefix_tokens=9,
        embed_dim=1536,
        lora_targets=TIMM_VIT_LORA,
        modality="pathology",
        license="cc-by-nc-nd-4.0",
        gated=True,
        params_m=681.0,
        citation="Chen et al., Towards a general-purpose foundation model for computational pathology, "
        "Nature Medicine 2024 (UNI2-h release)",
        source="https://huggingface.co/MahmoodLab/UNI2-h",
        provenance={**_UNI_TRANSFORM, "loader_kwargs": "mahmoodlab/UNI get_encoder.py L127-142 (uni_kwargs)"},
        description="ViT-H/14 with 8 registers and SwiGLU, trained on >200M H&E and IHC tiles from >350k slides.",
        # SwiGLUPacked splits the hidden layer in two: width 64 x 5.33 gives an odd size, so the twin uses 4.
        twin={"mlp_ratio": 4.0},
    ),
    _virchow(
        "Virchow",
        "Vorontsov et al., A foundation model for clinical-grade computational pathology and rare cancers "
        "detection, Nature Medicine 2024",
        "ViT-H/14 with SwiGLU, DINOv2-trained on 1.5M H&E slides from MSKCC.",
        registers=0,
        license="apache-2.0",
    ),
    _virchow(
        "Virchow2",
        "Zimmermann et al., Virchow2: Scaling self-supervised mixed magnification models in pathology, "
        "arXiv:2408.00738, 2024",
        "ViT-H/14 with 4 registers and SwiGLU, trained on 3.1M H&E and IHC slides at mixed magnification.",
        registers=4,
        license="cc-by-nc-nd-4.0",
    ),
    _hoptimus(
        "0",
        "Saillard et al., H-optimus-0, Bioptimus 2024 (github.com/bioptimus/releases)",
        "ViT-g/14 with 4 registers trained on >500k H&E slides.",
        license="apache-2.0",
        weights={
            "weights": "pickled pytorch_model.bin (a safetensors conversion exists only as an open Hub PR)"
        },
    ),
    _hoptimus(
        "1",
        "Bioptimus, H-optimus-1, 2025 (huggingface.co/bioptimus/H-optimus-1)",
        "ViT-g/14 with 4 registers trained on >1M slides from >800k patients.",
        license="cc-by-nc-nd-4.0",
        weights={},
    ),
    # Card (huggingface.co/bioptimus/H0-mini): create_model("hf-hub:bioptimus/H0-mini", pretrained=True,
    # mlp_layer=SwiGLUPacked, act_layer=SiLU); output (1, 261, 768); preprocessing from the Hub pretrained_cfg
    # (H-optimus stats). Pooling: the card's text could not be read here; both harnesses default to the class
    # token (kaiko-ai/eva bioptimus.py L48 ``include_patch_tokens=False``; mahmoodlab/TRIDENT load.py L1398
    # ``return_type="cls_token"``, L1446), so hfm follows them: CLS, 768-d. Their optional CLS+mean is the
    # same as ``pooling="cls+mean"`` with 5 prefix tokens.
    BackboneSpec(
        name="pathology/h0-mini",
        hub_id="bioptimus/H0-mini",
        loader="timm",
        architecture="vit_base_patch14_reg4_dinov2",
        loader_kwargs={"mlp_layer": "timm.layers.SwiGLUPacked", "act_layer": "torch.nn.SiLU"},
        input_size=224,
        mean=HOPTIMUS_MEAN,
        std=HOPTIMUS_STD,
        pooling="cls",
        num_prefix_tokens=5,
        embed_dim=768,
        lora_targets=TIMM_VIT_LORA,
        modality="pathology",
        license="cc-by-nc-nd-4.0",
        gated=True,
        params_m=86.0,
        citation="Filiot et al., Distilling foundation models for robust and efficient models in digital "
        "pathology, arXiv:2501.16239, 2025",
        source="https://huggingface.co/bioptimus/H0-mini",
        provenance={
            "pooling": "kaiko-ai/eva bioptimus.py L48 include_patch_tokens=False; mahmoodlab/TRIDENT load.py "
            "L1398 return_type='cls_token' (card not checked)",
            "loader_kwargs": "mahmoodlab/TRIDENT load.py L1416-1423; kaiko-ai/eva bioptimus.py L70-74",
        },
        description="ViT-B/14 with 4 registers distilled from H-optimus-0 on TCGA tiles.",
    ),
    # Card (huggingface.co/prov-gigapath/prov-gigapath): tile encoder timm.create_model(
    # "hf_hub:prov-gigapath/prov-gigapath", pretrained=True); Resize(256, bicubic) + CenterCrop(224) + ImageNet
    # norm; Hub model_args (TRIDENT): vit_giant_patch14_dinov2 with patch_size=16, embed_dim=1536, depth=40,
    # num_heads=24, mlp_ratio=5.33334; CLS 1536-d.
    BackboneSpec(
        name="pathology/prov-gigapath",
        hub_id="prov-gigapath/prov-gigapath",
        loader="timm",
        architecture="vit_giant_patch14_dinov2",
        loader_kwargs={
            "img_size": 224,
            "in_chans": 3,
            "patch_size": 16,
            "embed_dim": 1536,
            "depth": 40,
            "num_heads": 24,
            "init_values": 1e-5,
            "mlp_ratio": 5.33334,
            "num_classes": 0,
        },
        input_size=224,
        crop_pct=0.875,
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=1536,
        lora_targets=TIMM_VIT_LORA,
        modality="pathology",
        license="apache-2.0",
        gated=True,
        params_m=1134.0,
        citation="Xu et al., A whole-slide foundation model for digital pathology from real-world data, Nature 2024",
        source="https://huggingface.co/prov-gigapath/prov-gigapath",
        provenance={
            "interpolation": "prov-gigapath card: Resize(256, BICUBIC), CenterCrop(224); TRIDENT load.py L955",
            "crop_pct": "prov-gigapath card: Resize(256) then CenterCrop(224)",
        },
        description="Prov-GigaPath tile encoder: ViT-g/16 DINOv2-trained on 1.3B tiles from 171k slides.",
        # timm registers the DINOv2 giant with SwiGLUPacked: keep the twin's hidden size even.
        twin={"mlp_ratio": 4.0},
    ),
    # Card (huggingface.co/owkin/phikon): ViTModel.from_pretrained("owkin/phikon", add_pooling_layer=False);
    # features = last_hidden_state[:, 0, :] (768-d); ImageNet norm at 224 (TRIDENT: bilinear resize).
    BackboneSpec(
        name="pathology/phikon",
        hub_id="owkin/phikon",
        loader="transformers",
        architecture="vit",
        loader_kwargs={"add_pooling_layer": False},
        input_size=224,
        interpolation="bilinear",
        resize_mode="squash",
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=768,
        lora_targets=HF_ATTN_LORA,
        modality="pathology",
        license="other",
        params_m=86.0,
        citation="Filiot et al., Scaling self-supervised learning for histopathology with masked image modeling, "
        "medRxiv 2023",
        source="https://huggingface.co/owkin/phikon",
        provenance={"resize_mode": "ViTImageProcessor size {height: 224, width: 224} (owkin/phikon card)"},
        description="ViT-B/16 iBOT-trained on 40M TCGA tiles (Owkin non-commercial licence).",
    ),
    # Card (huggingface.co/owkin/phikon-v2): AutoModel.from_pretrained("owkin/phikon-v2") (model_type dinov2,
    # ViT-L/16); features = last_hidden_state[:, 0, :] (1024-d); TRIDENT: Resize(224)+CenterCrop(224)+ImageNet.
    BackboneSpec(
        name="pathology/phikon-v2",
        hub_id="owkin/phikon-v2",
        loader="transformers",
        architecture="dinov2",
        input_size=224,
        interpolation="bilinear",
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=1024,
        lora_targets=HF_ATTN_LORA,
        modality="pathology",
        license="other",
        params_m=304.0,
        citation="Filiot et al., Phikon-v2, a large and public feature extractor for biomarker prediction, "
        "arXiv:2409.09173, 2024",
        source="https://huggingface.co/owkin/phikon-v2",
        provenance={
            "interpolation": "mahmoodlab/TRIDENT load.py L1279: T.Resize(224) (bilinear default)",
            "pooling": "owkin/phikon-v2 card: last_hidden_state[:, 0, :]",
        },
        description="ViT-L/16 DINOv2-trained on 460M public tiles (PANCAN-XL); Owkin non-commercial licence.",
    ),
    _hibou(
        "b",
        "hibou-b",
        768,
        86.0,
        "ViT-B/14 with 4 registers and SwiGLU, DINOv2-trained on 1.2B tiles (H&E and non-H&E).",
        use_swiglu_ffn=True,
    ),
    _hibou(
        "l",
        "hibou-L",
        1024,
        304.0,
        "ViT-L/14 with 4 registers, DINOv2-trained on 1.2B tiles (H&E and non-H&E).",
    ),
    # Card (huggingface.co/kaiko-ai/midnight): AutoModel.from_pretrained('kaiko-ai/midnight'); Resize(224) +
    # CenterCrop(224) + Normalize(0.5, 0.5); classification embedding cat([t[:, 0], t[:, 1:].mean(1)]) -> 3072-d.
    BackboneSpec(
        name="pathology/midnight",
        hub_id="kaiko-ai/midnight",
        loader="transformers",
        architecture="dinov2",
        input_size=224,
        mean=HALF,
        std=HALF,
        interpolation="bilinear",
        pooling="cls+mean",
        num_prefix_tokens=1,
        embed_dim=3072,
        lora_targets=HF_ATTN_LORA,
        modality="pathology",
        license="mit",
        params_m=1137.0,
        citation="Karasikov et al., Training state-of-the-art pathology foundation models with orders of magnitude "
        "less data, arXiv:2504.05186, 2025",
        source="https://huggingface.co/kaiko-ai/midnight",
        provenance={
            "interpolation": "kaiko-ai/midnight card: v2.Resize(224) (bilinear default), v2.CenterCrop(224)",
            "pooling": "kaiko-ai/midnight card: cat([output[:, 0], output[:, 1:].mean(1)]) for classification",
        },
        description="Midnight-12k: ViT-g/14 DINOv2-trained on 12k TCGA slides.",
    ),
    # Port card + TRIDENT: timm.create_model("hf-hub:1aurent/vit_base_patch16_224.kaiko_ai_towards_large_pathology_fms",
    # pretrained=True, dynamic_img_size=True); kaiko README: Resize(224) + CenterCrop(224) + Normalize(0.5, 0.5);
    # CLS 768-d (torch.hub original returns 768-d features for ViT-B/16).
    BackboneSpec(
        name="pathology/kaiko-vitb16",
        hub_id="1aurent/vit_base_patch16_224.kaiko_ai_towards_large_pathology_fms",
        loader="timm",
        architecture="vit_base_patch16_224",
        loader_kwargs={"dynamic_img_size": True},
        input_size=224,
        mean=HALF,
        std=HALF,
        interpolation="bilinear",
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=768,
        lora_targets=TIMM_VIT_LORA,
        modality="pathology",
        license="kaiko-non-commercial",
        params_m=86.0,
        citation="kaiko.ai et al., Towards large-scale training of pathology foundation models, "
        "arXiv:2404.15217, 2024",
        source="https://github.com/kaiko-ai/towards_large_pathology_fms",
        provenance={
            "interpolation": "mahmoodlab/TRIDENT load.py L595: Resize + CenterCrop, InterpolationMode.BILINEAR",
            "mean": "kaiko-ai/towards_large_pathology_fms README: Normalize(mean=0.5, std=0.5)",
        },
        description="kaiko.ai ViT-B/16 (DINO on TCGA), timm port of the torch.hub release by 1aurent.",
    ),
    # TRIDENT: timm.create_model("hf-hub:1aurent/vit_small_patch8_224.lunit_dino", pretrained=True,
    # dynamic_img_size=True); Lunit training stats mean (0.70322989, 0.53606487, 0.66096631),
    # std (0.21716536, 0.26081574, 0.20723464) (eva lunit.py); CLS 384-d.
    BackboneSpec(
        name="pathology/lunit-vits8",
        hub_id="1aurent/vit_small_patch8_224.lunit_dino",
        loader="timm",
        architecture="vit_small_patch8_224",
        loader_kwargs={"dynamic_img_size": True},
        input_size=224,
        mean=LUNIT_MEAN,
        std=LUNIT_STD,
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=384,
        lora_targets=TIMM_VIT_LORA,
        modality="pathology",
        license="lunit-non-commercial",
        params_m=22.0,
        citation="Kang et al., Benchmarking self-supervised learning on diverse pathology datasets, CVPR 2023",
        source="https://huggingface.co/1aurent/vit_small_patch8_224.lunit_dino",
        provenance={"mean": "kaiko-ai/eva lunit.py: Lunit training statistics"},
        description="Lunit DINO ViT-S/8 trained on 19M TCGA/TULIP tiles, timm port by 1aurent.",
    ),
]
