"""Radiology backbones (X-ray, CT, MRI). Each entry cites where its loading facts come from.

Not in the catalog:
    MedSAM (``flaviagiammarino/medsam-vit-base``) ships only as a full ``SamModel`` (mask decoder and prompt
    encoder included) in pickled ``pytorch_model.bin`` form; its image encoder returns a 256-channel 64x64 neck
    map at a fixed 1024 px input rather than a token sequence with prefix tokens, and loading the encoder alone
    would need checkpoint key remapping that no hfm loader does. It does not fit the Backbone interface cleanly.
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
]
