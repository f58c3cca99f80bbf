"""Radiology backbones (X-ray, CT, MRI). Each entry cites where its loading facts come from.

MedSAM's image encoder fits the Backbone interface as a feature-map model: the SAM ViT-B encoder's neck returns
a 256-channel 64x64 map at its fixed 1024 px input, which hfm reads as 4,096 tokens without prefix tokens and
mean-pools to one 256-d embedding; only the vision tower of the published ``SamModel`` is loaded (the prompt
encoder and mask decoder are dropped). The checkpoint is a pickled ``pytorch_model.bin``, so loading the real
weights needs ``allow_pickle=True`` (read with ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

SPECS: list[BackboneSpec] = [
    # Card + preprocessor_config (huggingface.co/microsoft/rad-dino): AutoModel (Dinov2Model, ViT-B/14),
    # AutoImageProcessor resizes the shortest edge to 518 and centre-crops 518, mean 0.5307 / std 0.2583 (one grey
    # value per channel); the card's image embedding is the CLS token (pooler_output) 768-d. Licence MSRLA.
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
        license="msrla",
        params_m=87.0,
        citation="Perez-Garcia et al., Exploring scalable medical image encoders beyond text supervision, "
        "Nature Machine Intelligence 2025",
        source="https://huggingface.co/microsoft/rad-dino",
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
    # tuned from SAM on 1.57M medical image-mask pairs over 10 modalities; its SamProcessor resizes the longest
    # side to 1024, normalises with ImageNet mean/std and pads to 1024x1024 (for square inputs, a plain resize).
    # The SAM vision attention modules are ``layers.N.attn.qkv`` / ``.proj`` (checked in transformers 5.24).
    # Segmentation needs prompts and the mask decoder; hfm uses the image encoder for classification only.
    BackboneSpec(
        name="radiology/medsam",
        hub_id="wanglab/medsam-vit-base",
        loader="transformers",
        architecture="sam",
        input_size=1024,
        interpolation="bilinear",
        pooling="mean",
        num_prefix_tokens=0,
        embed_dim=256,
        lora_targets=r".*layers\.\d+\.attn\.(qkv|proj)",
        modality="radiology",
        license="apache-2.0",
        params_m=89.7,
        citation="Ma et al., Segment anything in medical images, Nature Communications 2024",
        source="https://huggingface.co/wanglab/medsam-vit-base",
        description="SAM ViT-B image encoder fine-tuned for medical image segmentation (MedSAM); mean of the neck map.",
    ),
]
