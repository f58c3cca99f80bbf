"""Ophthalmology backbones (colour fundus photographs, OCT). Each entry cites where its loading facts come from.

Facts checked against ``rmaphoh/RETFound_MAE`` (commit 897d71c): ``models_vit.py``, ``main_finetune.py``,
``util/datasets.py`` and ``latent_feature.ipynb``.

- Preprocessing: the eval transform in ``util/datasets.py`` (``build_transform``): for ``input_size <= 224``
  ``crop_pct = 224 / 256``, ``Resize(int(224 / crop_pct) = 256, BICUBIC)``, ``CenterCrop(224)``, ImageNet
  mean/std (timm's ``IMAGENET_DEFAULT_*``). The README's fine-tuning command passes ``--input_size 224``.
- MAE encoders (``RETFound_mae``): ``models_vit.py`` L15-48 with ``global_pool=True`` (``main_finetune.py``
  ``set_defaults(global_pool=True)``) deletes the final ``norm``, averages the patch tokens of the last block
  (CLS excluded) and applies a fresh ``fc_norm = LayerNorm(1024, eps=1e-6)``, identity affine until fine-tuned.
  hfm's ``fc_norm=True`` does the same. (``latent_feature.ipynb`` uses the same model but standardises each
  image per channel instead of the ImageNet eval transform; hfm follows the fine-tuning eval transform.)
- DINOv2 encoders (``RETFound_dinov2``): ``models_vit.py`` L59-66 is
  ``timm.create_model('vit_large_patch14_dinov2.lvd142m', pretrained=True, img_size=224)``, default
  ``global_pool='token'``: the embedding is the final-normed CLS token (1024-d), 16x16 patches of 14 px.
  ``main_finetune.py`` L189-204 downloads ``YukunZhou/<name>/<name>.pth`` and reads ``checkpoint['teacher']``
  with the ``backbone.`` prefix stripped: a pickled file, so loading needs ``allow_pickle=True``.
- Licence: the repository's LICENSE is CC BY-NC 4.0; the YukunZhou repos are gated (README: "access" links and
  ``huggingface-cli login``).

The MAE entries use Bitfount's timm re-uploads, which load with plain ``timm.create_model('hf-hub:...')``.
"""

from __future__ import annotations

from hfm.backbones.spec import BackboneSpec

TIMM_VIT_LORA = r".*blocks\.\d+\.attn\.(qkv|proj)"
RETFOUND_CITATION = (
    "Zhou et al., A foundation model for generalizable disease detection from retinal images, Nature 2023"
)

_EVAL_TRANSFORM = (
    "rmaphoh/RETFound_MAE util/datasets.py build_transform (eval): Resize(256, BICUBIC), CenterCrop(224)"
)
_PROVENANCE = {
    "interpolation": _EVAL_TRANSFORM,
    "crop_pct": _EVAL_TRANSFORM + "; crop_pct = 224 / 256",
    "mean": "rmaphoh/RETFound_MAE util/datasets.py: timm IMAGENET_DEFAULT_MEAN / IMAGENET_DEFAULT_STD",
    "license": "rmaphoh/RETFound_MAE LICENSE: Attribution-NonCommercial 4.0 International",
}


def _retfound_mae(kind: str, hub_id: str, revision: str | None, images: str, weights: str) -> BackboneSpec:
    """A RETFound MAE ViT-L/16 encoder (Bitfount's timm port) with RETFound's ``global_pool`` pooling."""
    return BackboneSpec(
        name=f"ophthalmology/retfound-{kind}",
        hub_id=hub_id,
        loader="timm",
        architecture="vit_large_patch16_224",
        revision=revision,
        loader_kwargs={"num_classes": 0},
        input_size=224,
        crop_pct=0.875,
        pooling="mean",
        num_prefix_tokens=1,
        fc_norm=True,
        embed_dim=1024,
        lora_targets=TIMM_VIT_LORA,
        modality="ophthalmology",
        license="cc-by-nc-4.0",
        params_m=303.0,
        citation=RETFOUND_CITATION,
        source=f"https://huggingface.co/{hub_id}",
        provenance={
            **_PROVENANCE,
            "pooling": "rmaphoh/RETFound_MAE models_vit.py L41-43: x[:, 1:, :].mean(dim=1) -> fc_norm (global_pool)",
            "fc_norm": "rmaphoh/RETFound_MAE models_vit.py L22-27: fc_norm = LayerNorm(eps=1e-6); del self.norm",
            "architecture": f"huggingface.co/{hub_id} config.json: architecture vit_large_patch16_224",
            "weights": weights,
        },
        description=f"RETFound ViT-L/16 MAE encoder for {images}, timm port.",
    )


def _retfound_dinov2(site: str, where: str) -> BackboneSpec:
    """A RETFound DINOv2 ViT-L/14 encoder from the authors' own (gated, pickled) Hub repository."""
    hub_id = f"YukunZhou/RETFound_dinov2_{site}"
    return BackboneSpec(
        name=f"ophthalmology/retfound-dinov2-{site}",
        hub_id=hub_id,
        loader="timm",
        architecture="vit_large_patch14_dinov2",
        loader_kwargs={"img_size": 224, "num_classes": 0},
        input_size=224,
        crop_pct=0.875,
        pooling="cls",
        num_prefix_tokens=1,
        embed_dim=1024,
        lora_targets=TIMM_VIT_LORA,
        modality="ophthalmology",
        license="cc-by-nc-4.0",
        gated=True,
        params_m=304.0,
        citation="Zhou et al., RETFound-DINOv2 (github.com/rmaphoh/RETFound_MAE), 2025; " + RETFOUND_CITATION,
        source=f"https://huggingface.co/{hub_id}",
        provenance={
            **_PROVENANCE,
            "architecture": "rmaphoh/RETFound_MAE models_vit.py L59-66: "
            "timm.create_model('vit_large_patch14_dinov2.lvd142m', img_size=224)",
            "pooling": "timm vit_large_patch14_dinov2 default global_pool='token' (final-normed CLS)",
            "weights": f"rmaphoh/RETFound_MAE main_finetune.py L189-204: {hub_id}/RETFound_dinov2_{site}.pth, "
            "checkpoint['teacher'], 'backbone.' prefix stripped (pickled: needs allow_pickle=True)",
            "gated": "rmaphoh/RETFound_MAE README: request access, then huggingface-cli login",
        },
        description=f"RETFound DINOv2 ViT-L/14 for colour fundus photographs ({where}).",
    )


SPECS: list[BackboneSpec] = [
    # Hub (huggingface.co/bitfount/RETFound_MAE): copy of the RETFound colour-fundus MAE encoder. Revision
    # "refs/pr/2" is the Hub's safetensors conversion (model.safetensors); main holds only pytorch_model.bin.
    _retfound_mae(
        "cfp",
        "bitfount/RETFound_MAE",
        "refs/pr/2",
        "colour fundus photographs (1.6M images)",
        "huggingface.co/bitfount/RETFound_MAE refs/pr/2: model.safetensors (main: pickled pytorch_model.bin)",
    ),
    # Hub (huggingface.co/bitfount/RETFound_MAE_OCT): a copy of the RETFound OCT encoder; only a pickled
    # pytorch_model.bin exists there (no safetensors variant found).
    _retfound_mae(
        "oct",
        "bitfount/RETFound_MAE_OCT",
        None,
        "OCT B-scans (0.7M images)",
        "huggingface.co/bitfount/RETFound_MAE_OCT: pickled pytorch_model.bin only (needs allow_pickle=True)",
    ),
    _retfound_dinov2("meh", "Moorfields Eye Hospital"),
    _retfound_dinov2("shanghai", "Shanghai cohort"),
]
