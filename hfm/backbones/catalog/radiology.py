"""Radiology backbones (X-ray, CT, MRI). Each entry cites where its loading facts come from.

MedSAM's image encoder fits the Backbone interface as a feature-map model: the SAM ViT-B encoder's neck returns
a 256-channel 64x64 map at its fixed 1024 px input, which hfm reads as 4,096 tokens without prefix tokens and
mean-pools to one 256-d embedding; only the vision tower of the published ``SamModel`` is loaded (the prompt
encoder and mask decoder are dropped).
"""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

SPECS: list[BackboneSpec] = [
    # Card + preprocessor_config (huggingface.co/microsoft/rad-dino): AutoModel (Dinov2Model, ViT-B/14),
    # AutoImageProcessor resizes the shortest edge to 518 and centre-crops 518, mean 0.5307 / std 0.2583 (one grey
    # value per channel); the card's image embedding is the CLS token (pooler_output) 768-d. Licence: MIT on the
    # Hub since the repo's LICENSE commit "Use MIT license (#9)"; earlier revisions carried the MSRLA.
    BackboneSpec(
        name="radiology/rad-dino",
        hub_id="microsoft/rad-dino",
        loader="transformers",
        architecture="dinov2",
        input_size=518,
        mean=(0.5307, 0.5307, 0.5307),
        std=(0.2583, 0.2583, 0.2583),
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=768,
        lora_targets=("q_proj", "k_proj", "v_proj"),
        modality="radiology",
        license="mit",
        params_m=87.0,
        citation="Perez-Garcia et al., Exploring scalable medical image encoders beyond text supervision, "
        "Nature Machine Intelligence 2025",
        source="https://huggingface.co/microsoft/rad-dino",
        provenance={
            "license": "huggingface.co/microsoft/rad-dino LICENSE commit 'Use MIT license (#9)' (MSRLA before it)",
            "input_size": "huggingface.co/microsoft/rad-dino preprocessor_config.json: shortest_edge 518, crop 518",
            "mean": "huggingface.co/microsoft/rad-dino preprocessor_config.json: image_mean 0.5307, image_std 0.2583",
            "pooling": "huggingface.co/microsoft/rad-dino card: CLS token (pooler_output)",
        },
        description="DINOv2 ViT-B/14 trained on chest X-rays.",
        twin={
            "hidden_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "intermediate_size": 128,
            "image_size": 32,
            "patch_size": 8,
        },
    ),
    # Card (huggingface.co/wanglab/medsam-vit-base, license apache-2.0): a transformers ``SamModel`` (ViT-B) fine-
    # tuned from SAM on 1.57M medical image-mask pairs over 10 modalities. Its SamProcessor config (ImageNet
    # mean/std, bilinear) is not how MedSAM was trained or is run: bowang-lab/MedSAM ``MedSAM_Inference.py``
    # L121-126 resizes to 1024x1024 with ``skimage.transform.resize(order=3, anti_aliasing=True)`` (cubic),
    # casts to uint8, then min-max scales the whole image to [0, 1] ("normalize to [0, 1]") and feeds
    # ``image_encoder`` directly, with no mean/std; ``train_one_gpu.py`` L78-86 asserts the 1024 image lies in
    # [0, 1]. hfm resizes with PIL's bicubic filter (antialiased), not skimage's order-3 spline, so pixels can
    # differ slightly. Weights: commit a0a0e4b ("Adding `safetensors` variant of this model", SFconvertbot)
    # added model.safetensors on main, so no pickle is needed at that revision. The SAM vision attention
    # modules are ``layers.N.attn.qkv`` / ``.proj`` (transformers 5.24).
    BackboneSpec(
        name="radiology/medsam",
        hub_id="wanglab/medsam-vit-base",
        loader="transformers",
        architecture="sam",
        revision="a0a0e4bf38278213a0df876d2378f5736731a15e",
        input_size=1024,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        interpolation="bicubic",
        resize_mode="squash",
        scaling="minmax",
        pooling="mean",
        num_prefix_tokens=0,
        embed_dim=256,
        lora_targets=r".*layers\.\d+\.attn\.(qkv|proj)",
        modality="radiology",
        license="apache-2.0",
        params_m=89.7,
        citation="Ma et al., Segment anything in medical images, Nature Communications 2024",
        source="https://huggingface.co/wanglab/medsam-vit-base",
        provenance={
            "interpolation": "bowang-lab/MedSAM MedSAM_Inference.py L121-123: transform.resize(order=3) to 1024",
            "resize_mode": "bowang-lab/MedSAM MedSAM_Inference.py L121-123: resize to (1024, 1024) whatever the shape",
            "scaling": "bowang-lab/MedSAM MedSAM_Inference.py L124-126: (x - min) / clip(max - min, 1e-8)",
            "mean": "bowang-lab/MedSAM MedSAM_Inference.py L136: image_encoder(img_1024) with no mean/std; "
            "train_one_gpu.py L85-86 asserts [0, 1]; maintainers confirm in bowang-lab/MedSAM issue #125",
            "pooling": "hfm's choice: MedSAM publishes no pooled embedding; mean of the 256-channel neck map",
            "weights": "huggingface.co/wanglab/medsam-vit-base commit a0a0e4b: model.safetensors (SFconvertbot)",
        },
        description="SAM ViT-B image encoder fine-tuned for medical image segmentation (MedSAM); mean of the neck map.",
    ),
]
