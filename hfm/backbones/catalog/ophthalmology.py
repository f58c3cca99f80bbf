"""Ophthalmology backbones (colour fundus photographs, OCT). Each entry cites where its loading facts come from.

RETFound's official weights (``YukunZhou/RETFound_mae_natureCFP``, ``..._natureOCT``, ``..._meh``) are gated
pickled ``.pth`` files loaded by the authors' own ``models_vit`` code. The entries below use Bitfount's timm
re-uploads, which load with plain ``timm.create_model('hf-hub:...')``; the preprocessing is the RETFound eval
transform (``rmaphoh/RETFound_MAE`` ``util/datasets.py``: Resize(256, bicubic), CenterCrop(224), ImageNet
mean/std) and the pooling is RETFound's fine-tuning ``global_pool`` (mean of the patch tokens), not the CLS token
of the MAE encoder, which MAE never trains.
"""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

TIMM_VIT_LORA = r".*blocks\.\d+\.attn\.(qkv|proj)"
RETFOUND_CITATION = (
    "Zhou et al., A foundation model for generalizable disease detection from retinal images, Nature 2023"
)

SPECS: list[BackboneSpec] = [
    # Hub (huggingface.co/bitfount/RETFound_MAE): timm repo, config architecture vit_large_patch16_224, copy of
    # the RETFound colour-fundus MAE encoder. Safest option: revision "refs/pr/2" is the Hub's safetensors
    # conversion (model.safetensors); main holds only a pickled pytorch_model.bin. Licence CC BY-NC 4.0.
    BackboneSpec(
        name="ophthalmology/retfound-cfp",
        hub_id="bitfount/RETFound_MAE",
        loader="timm",
        architecture="vit_large_patch16_224",
        revision="refs/pr/2",
        loader_kwargs={"num_classes": 0},
        input_size=224,
        crop_pct=0.875,
        pooling="mean",
        num_prefix_tokens=1,
        embed_dim=1024,
        lora_targets=TIMM_VIT_LORA,
        modality="ophthalmology",
        license="cc-by-nc-4.0",
        params_m=303.0,
        citation=RETFOUND_CITATION,
        source="https://huggingface.co/bitfount/RETFound_MAE",
        description="RETFound ViT-L/16 MAE encoder for colour fundus photographs (1.6M images), timm port.",
    ),
    # Hub (huggingface.co/bitfount/RETFound_MAE_OCT): timm repo, config architecture vit_large_patch16_224, a
    # copy of the RETFound OCT encoder. Only a pickled pytorch_model.bin exists there (no safetensors variant
    # found); timm reads it with torch.load(weights_only=True). Licence CC BY-NC 4.0 like the original.
    BackboneSpec(
        name="ophthalmology/retfound-oct",
        hub_id="bitfount/RETFound_MAE_OCT",
        loader="timm",
        architecture="vit_large_patch16_224",
        loader_kwargs={"num_classes": 0},
        input_size=224,
        crop_pct=0.875,
        pooling="mean",
        num_prefix_tokens=1,
        embed_dim=1024,
        lora_targets=TIMM_VIT_LORA,
        modality="ophthalmology",
        license="cc-by-nc-4.0",
        params_m=303.0,
        citation=RETFOUND_CITATION,
        source="https://huggingface.co/bitfount/RETFound_MAE_OCT",
        description="RETFound ViT-L/16 MAE encoder for OCT B-scans (0.7M images), timm port.",
    ),
]
