"""Each catalog family's embedding, computed the way its publishers' own snippet computes it.

Written independently of hfm's loaders, transforms and pooling: timm, transformers, open_clip and torchvision
are called directly on a twin's files, with preprocessing values typed in from the publishers' code or model
card (not read from the twin, whose configs hfm writes from the catalog) and pooling as in their code. Sizes
the publishers fix at 224 (or 256/224 for a crop) are scaled to the twin's input size ``size`` by the same
formula the publisher uses.

Every recipe maps ``(snapshot folder, input size)`` to a function from one RGB PIL image to its embedding
``[1, D]``.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import timm
import torch
from PIL import Image
from torch import nn
from torchvision import transforms as T

Embed = Callable[[Image.Image], torch.Tensor]
Recipe = Callable[[Path, int], Embed]

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HALF = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# H-optimus cards (huggingface.co/bioptimus/H-optimus-0): transforms.Normalize(mean=..., std=...).
HOPTIMUS = ((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517))
# Hibou (TRIDENT get_constants('hibou'); the Hub preprocessor_config of histai/hibou-*).
HIBOU = ((0.7068, 0.5755, 0.722), (0.195, 0.2316, 0.1816))
# eva lunit.py / TRIDENT: Lunit DINO training statistics.
LUNIT = ((0.70322989, 0.53606487, 0.66096631), (0.21716536, 0.26081574, 0.20723464))
BILINEAR = T.InterpolationMode.BILINEAR
BICUBIC = T.InterpolationMode.BICUBIC


def _tv(
    *steps: Any, norm: tuple[tuple[float, ...], tuple[float, ...]]
) -> Callable[[Image.Image], torch.Tensor]:
    """A torchvision eval transform: the given resize/crop steps, ToTensor, Normalize."""
    return T.Compose([*steps, T.ToTensor(), T.Normalize(*norm)])


def _timm_transform(size: int, interpolation: str, crop_pct: float, norm: Any) -> Callable[..., torch.Tensor]:
    """timm's own eval transform (``create_transform(**data_config, is_training=False)``)."""
    from timm.data import create_transform

    return create_transform(  # type: ignore[no-any-return]
        input_size=(3, size, size),
        interpolation=interpolation,
        crop_pct=crop_pct,
        mean=norm[0],
        std=norm[1],
        is_training=False,
    )


def _timm(folder: Path, **kwargs: Any) -> nn.Module:
    """``timm.create_model("hf-hub:...", pretrained=True, **card_kwargs)``, on the local snapshot."""
    return timm.create_model(f"local-dir:{folder}", pretrained=True, **kwargs).eval()


def _embed(
    transform: Callable[[Image.Image], torch.Tensor], forward: Callable[[torch.Tensor], torch.Tensor]
) -> Embed:
    def embed(image: Image.Image) -> torch.Tensor:
        with torch.no_grad():
            return forward(transform(image).unsqueeze(0))

    return embed


# -- pathology ----------------------------------------------------------------------------------------------
def uni(folder: Path, size: int) -> Embed:
    # mahmoodlab/UNI get_encoder.py: timm kwargs init_values=1e-5, dynamic_img_size=True, num_classes=0;
    # get_eval_transforms: transforms.Resize(224) (bilinear default), ToTensor, ImageNet Normalize; model(x).
    model = _timm(folder, init_values=1e-5, dynamic_img_size=True, num_classes=0)
    return _embed(_tv(T.Resize(size), norm=IMAGENET), model)


def uni2_h(folder: Path, size: int) -> Embed:
    # get_encoder.py 'uni2-h' kwargs (sizes come from the twin's config): SwiGLUPacked, SiLU, 8 registers,
    # no_embed_class, init_values 1e-5, dynamic_img_size; the same bilinear Resize + ImageNet; model(x).
    model = _timm(
        folder,
        init_values=1e-5,
        num_classes=0,
        no_embed_class=True,
        mlp_layer=timm.layers.SwiGLUPacked,
        act_layer=nn.SiLU,
        reg_tokens=8,
        dynamic_img_size=True,
    )
    return _embed(_tv(T.Resize(size), norm=IMAGENET), model)


def _virchow(patch_start: int) -> Recipe:
    # Virchow/Virchow2 cards: create_model(..., mlp_layer=SwiGLUPacked, act_layer=SiLU); the Hub pretrained_cfg
    # (224, bicubic, crop_pct 1.0, ImageNet) through timm's create_transform; output = model(x);
    # embedding = cat([output[:, 0], output[:, patch_start:].mean(1)]).
    def recipe(folder: Path, size: int) -> Embed:
        model = _timm(folder, mlp_layer=timm.layers.SwiGLUPacked, act_layer=nn.SiLU)

        def forward(x: torch.Tensor) -> torch.Tensor:
            out = model(x)
            return torch.cat([out[:, 0], out[:, patch_start:].mean(1)], dim=-1)

        return _embed(_timm_transform(size, "bicubic", 1.0, IMAGENET), forward)

    return recipe


def hoptimus(folder: Path, size: int) -> Embed:
    # H-optimus-0/1 cards: create_model(..., init_values=1e-5, dynamic_img_size=False); ToTensor + their
    # Normalize; TRIDENT adds transforms.Resize(img_size) (bilinear). CLS = model(x) (global_pool 'token').
    model = _timm(folder, init_values=1e-5, dynamic_img_size=False)
    return _embed(_tv(T.Resize(size), norm=HOPTIMUS), model)


def h0_mini(folder: Path, size: int) -> Embed:
    # TRIDENT H0MiniInferenceEncoder / eva bioptimus_h0_mini: SwiGLUPacked, SiLU, dynamic_img_size; the Hub
    # pretrained_cfg transform (224, bicubic, crop 1.0, H-optimus statistics); class token of model(x).
    model = _timm(folder, mlp_layer=timm.layers.SwiGLUPacked, act_layer=nn.SiLU, dynamic_img_size=True)

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        return out[:, 0] if out.ndim == 3 else out

    return _embed(_timm_transform(size, "bicubic", 1.0, HOPTIMUS), forward)


def prov_gigapath(folder: Path, size: int) -> Embed:
    # Card: create_model("hf_hub:prov-gigapath/prov-gigapath", pretrained=True); Resize(256, BICUBIC),
    # CenterCrop(224), ToTensor, ImageNet Normalize; model(x) is the 1536-d CLS embedding.
    model = _timm(folder)
    resize = int(size * 256 / 224)
    return _embed(_tv(T.Resize(resize, interpolation=BICUBIC), T.CenterCrop(size), norm=IMAGENET), model)


def kaiko_vitb16(folder: Path, size: int) -> Embed:
    # TRIDENT: create_model("hf-hub:1aurent/...kaiko...", pretrained=True, dynamic_img_size=True); kaiko README:
    # Resize(224) + CenterCrop(224) + Normalize(0.5, 0.5); CLS.
    model = _timm(folder, dynamic_img_size=True)
    return _embed(_tv(T.Resize(size, interpolation=BILINEAR), T.CenterCrop(size), norm=HALF), model)


def lunit_vits8(folder: Path, size: int) -> Embed:
    # TRIDENT: create_model("hf-hub:1aurent/vit_small_patch8_224.lunit_dino", dynamic_img_size=True);
    # create_transform from the port's pretrained_cfg (224, bicubic, crop 1.0) with Lunit statistics; CLS.
    model = _timm(folder, dynamic_img_size=True)
    return _embed(_timm_transform(size, "bicubic", 1.0, LUNIT), model)


def _hf_model(folder: Path, **kwargs: Any) -> nn.Module:
    import transformers

    return transformers.AutoModel.from_pretrained(str(folder), **kwargs).eval()


def _pil_processor(name: str) -> Any:
    """The PIL-based image processor class (``<name>Pil`` in transformers 5; the plain class before)."""
    import transformers

    return getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)


def _bit_processor(
    shortest: int, crop: int | None, resample: Image.Resampling, norm: Any
) -> Callable[..., Any]:
    """A transformers (PIL) ``BitImageProcessor`` with the publisher's values: DINOv2-family processors."""
    processor = _pil_processor("BitImageProcessor")(
        do_resize=True,
        size={"shortest_edge": shortest},
        resample=resample,
        do_center_crop=crop is not None,
        crop_size={"height": crop, "width": crop} if crop else None,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(norm[0]),
        image_std=list(norm[1]),
        do_convert_rgb=True,
    )
    return lambda image: processor(images=image, return_tensors="pt")["pixel_values"][0]


def phikon(folder: Path, size: int) -> Embed:
    # Card: ViTModel.from_pretrained("owkin/phikon", add_pooling_layer=False) + AutoImageProcessor (ViT
    # processor: 224x224, bilinear, ImageNet); features = last_hidden_state[:, 0, :].
    from transformers import ViTModel

    processor = _pil_processor("ViTImageProcessor")(
        size={"height": size, "width": size},
        resample=Image.Resampling.BILINEAR,
        image_mean=list(IMAGENET[0]),
        image_std=list(IMAGENET[1]),
    )
    model = ViTModel.from_pretrained(str(folder), add_pooling_layer=False).eval()

    def embed(image: Image.Image) -> torch.Tensor:
        with torch.no_grad():
            pixels = processor(images=image, return_tensors="pt")["pixel_values"]
            return model(pixel_values=pixels).last_hidden_state[:, 0, :]

    return embed


def phikon_v2(folder: Path, size: int) -> Embed:
    # Card: AutoModel.from_pretrained("owkin/phikon-v2"); TRIDENT: T.Resize(224), CenterCrop(224), ImageNet;
    # features = last_hidden_state[:, 0, :].
    model = _hf_model(folder)
    return _embed(
        _tv(T.Resize(size), T.CenterCrop(size), norm=IMAGENET),
        lambda x: model(pixel_values=x).last_hidden_state[:, 0, :],
    )


def hibou(folder: Path, size: int) -> Embed:
    # Card: AutoModel(..., trust_remote_code=True); outputs.pooler_output. TRIDENT: Resize(224, BICUBIC) and
    # the Hibou statistics. (The twin uses transformers' built-in class with the same layout.)
    model = _hf_model(folder)
    return _embed(
        _tv(T.Resize(size, interpolation=BICUBIC), norm=HIBOU), lambda x: model(pixel_values=x).pooler_output
    )


def midnight(folder: Path, size: int) -> Embed:
    # Card (kaiko-ai/midnight): v2.Resize(224), v2.CenterCrop(224), Normalize(0.5, 0.5);
    # classification embedding cat([output[:, 0], output[:, 1:].mean(1)]).
    model = _hf_model(folder)

    def forward(x: torch.Tensor) -> torch.Tensor:
        out = model(pixel_values=x).last_hidden_state
        return torch.cat([out[:, 0], out[:, 1:].mean(1)], dim=-1)

    return _embed(_tv(T.Resize(size), T.CenterCrop(size), norm=HALF), forward)


# -- radiology ----------------------------------------------------------------------------------------------
def rad_dino(folder: Path, size: int) -> Embed:
    # Card: AutoImageProcessor (BitImageProcessor: shortest_edge 518, crop 518, bicubic, mean 0.5307, std
    # 0.2583) + AutoModel; the image embedding is outputs.pooler_output (CLS).
    model = _hf_model(folder)
    norm = ((0.5307,) * 3, (0.2583,) * 3)
    return _embed(
        _bit_processor(size, size, Image.Resampling.BICUBIC, norm),
        lambda x: model(pixel_values=x).pooler_output,
    )


def medsam(folder: Path, size: int) -> Embed:
    # bowang-lab/MedSAM MedSAM_Inference.py L121-136: resize to 1024x1024 with order=3 (cubic; PIL's bicubic
    # stands in for skimage here), astype(uint8), (x - min) / clip(max - min, 1e-8), image_encoder(x) -> neck
    # map [1, 256, 64, 64]; hfm's embedding is its spatial mean (MedSAM publishes no pooled vector).
    from transformers import SamModel

    model = SamModel.from_pretrained(str(folder)).eval()

    def embed(image: Image.Image) -> torch.Tensor:
        img = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC)).astype(np.uint8)
        img = (img - img.min()) / np.clip(img.max() - img.min(), a_min=1e-8, a_max=None)
        x = torch.tensor(img).float().permute(2, 0, 1).unsqueeze(0)
        with torch.no_grad():
            return model.get_image_embeddings(pixel_values=x).mean(dim=(2, 3))

    return embed


# -- ophthalmology ------------------------------------------------------------------------------------------
def _retfound_transform(size: int) -> Callable[[Image.Image], torch.Tensor]:
    # rmaphoh/RETFound_MAE util/datasets.py build_transform (eval): crop_pct = 224 / 256 for input <= 224,
    # Resize(int(input_size / crop_pct), BICUBIC), CenterCrop(input_size), ToTensor, ImageNet Normalize.
    crop_pct = 224 / 256
    return _tv(T.Resize(int(size / crop_pct), interpolation=BICUBIC), T.CenterCrop(size), norm=IMAGENET)


def retfound_mae(folder: Path, size: int) -> Embed:
    # models_vit.py with global_pool=True: blocks without the final norm, mean of x[:, 1:], fresh fc_norm
    # (LayerNorm eps 1e-6, identity affine).
    model = _timm(folder, num_classes=0)
    fc_norm = nn.LayerNorm(model.embed_dim, eps=1e-6)

    def forward(x: torch.Tensor) -> torch.Tensor:
        x = model.patch_embed(x)
        x = torch.cat((model.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + model.pos_embed
        for block in model.blocks:
            x = block(x)
        return fc_norm(x[:, 1:, :].mean(dim=1))

    return _embed(_retfound_transform(size), forward)


def retfound_dinov2(folder: Path, size: int) -> Embed:
    # models_vit.py RETFound_dinov2: timm vit_large_patch14_dinov2 with img_size=224 (the twin's size here),
    # default global_pool 'token': the pre-logits embedding is the final-normed CLS token.
    model = _timm(folder, num_classes=0)
    return _embed(
        _retfound_transform(size), lambda x: model.forward_head(model.forward_features(x), pre_logits=True)
    )


# -- multimodal ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _timm_trunk_kwargs(extra: dict[str, Any]) -> Iterator[None]:
    """Shrink open_clip's timm trunk to the twin's size (a twin-only need; the real config needs none)."""
    original = timm.create_model

    def create(*args: Any, **kwargs: Any) -> nn.Module:
        return original(*args, **{**kwargs, **extra})

    timm.create_model = create
    try:
        yield
    finally:
        timm.create_model = original


def biomedclip(folder: Path, size: int) -> Embed:
    # Card: open_clip.create_model_from_pretrained('hf-hub:microsoft/BiomedCLIP-...') -> CLIP(model_cfg) and
    # its eval preprocess (Resize(224, BICUBIC) + CenterCrop + OpenAI mean/std); model.encode_image(x).
    import open_clip
    from safetensors.torch import load_file

    config = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    vision = dict(config["vision_cfg"])
    trunk = vision.pop("hfm_trunk_kwargs", {})
    text = dict(config["text_cfg"])
    clip = open_clip.CLIP
    if text.get("hf_model_name"):
        # A Hugging Face text model (BiomedBERT): create_model_from_pretrained builds a CustomTextCLIP and reads
        # the text repo's config, which sits beside the snapshot in the same Hub-layout cache.
        repo = folder.parents[2] / ("models--" + text["hf_model_name"].replace("/", "--"))
        text.update(hf_model_name=str(next((repo / "snapshots").iterdir())), hf_model_pretrained=False)
        clip = open_clip.CustomTextCLIP
    with _timm_trunk_kwargs(trunk):
        model = clip(config["embed_dim"], vision, text).eval()
    state = load_file(str(folder / "open_clip_model.safetensors"))
    if "logit_scale" in state:  # a whole CLIP checkpoint, loaded as open_clip loads it
        model.load_state_dict(state)
    else:
        model.visual.load_state_dict({k.removeprefix("visual."): v for k, v in state.items()})
    preprocess = open_clip.image_transform(
        size, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN, std=open_clip.OPENAI_DATASET_STD
    )
    return _embed(preprocess, model.encode_image)


def medsiglip(folder: Path, size: int) -> Embed:
    # Card (google/medsiglip-448): AutoModel + AutoProcessor (SigLIP processor: 448x448, bilinear, rescale,
    # mean/std 0.5); image embedding = the vision tower's pooled output (get_image_features).
    processor = _pil_processor("SiglipImageProcessor")(
        size={"height": size, "width": size},
        resample=Image.Resampling.BILINEAR,
        image_mean=list(HALF[0]),
        image_std=list(HALF[1]),
    )
    model = _hf_model(folder)

    def embed(image: Image.Image) -> torch.Tensor:
        with torch.no_grad():
            pixels = processor(images=image, return_tensors="pt")["pixel_values"]
            out = model.get_image_features(pixel_values=pixels)  # the whole SigLIP: image and text towers
            return out if isinstance(out, torch.Tensor) else out.pooler_output

    return embed


# -- general ------------------------------------------------------------------------------------------------
def dinov2(folder: Path, size: int) -> Embed:
    # facebook/dinov2-* card + preprocessor_config: BitImageProcessor shortest_edge 256, crop 224, bicubic,
    # ImageNet; the CLS embedding is outputs.pooler_output.
    model = _hf_model(folder)
    processor = _bit_processor(int(size * 256 / 224), size, Image.Resampling.BICUBIC, IMAGENET)
    return _embed(processor, lambda x: model(pixel_values=x).pooler_output)


def dinov3(folder: Path, size: int) -> Embed:
    # timm card: create_model('vit_*_patch16_dinov3.lvd1689m', pretrained=True, num_classes=0) with
    # global_pool='token' (timm eva.py: "matches upstream DINOv3"); transform from timm's registered
    # pretrained_cfg (read from timm itself, not the twin).
    from timm.models import get_pretrained_cfg

    name = json.loads((folder / "config.json").read_text())["architecture"]
    cfg = get_pretrained_cfg(f"{name}.lvd1689m")
    assert cfg is not None
    model = _timm(folder, num_classes=0, global_pool="token")
    transform = _timm_transform(size, cfg.interpolation, cfg.crop_pct, (cfg.mean, cfg.std))
    assert math.isclose(cfg.crop_pct, 1.0)
    return _embed(transform, model)


RECIPES: dict[str, Recipe] = {
    "pathology/uni": uni,
    "pathology/uni2-h": uni2_h,
    "pathology/virchow": _virchow(1),
    "pathology/virchow2": _virchow(5),
    "pathology/h-optimus-0": hoptimus,
    "pathology/h-optimus-1": hoptimus,
    "pathology/h0-mini": h0_mini,
    "pathology/prov-gigapath": prov_gigapath,
    "pathology/phikon": phikon,
    "pathology/phikon-v2": phikon_v2,
    "pathology/hibou-b": hibou,
    "pathology/hibou-l": hibou,
    "pathology/midnight": midnight,
    "pathology/kaiko-vitb16": kaiko_vitb16,
    "pathology/lunit-vits8": lunit_vits8,
    "radiology/rad-dino": rad_dino,
    "radiology/medsam": medsam,
    "ophthalmology/retfound-cfp": retfound_mae,
    "ophthalmology/retfound-oct": retfound_mae,
    "ophthalmology/retfound-dinov2-meh": retfound_dinov2,
    "ophthalmology/retfound-dinov2-shanghai": retfound_dinov2,
    "multimodal/biomedclip": biomedclip,
    "multimodal/medsiglip": medsiglip,
    "general/dinov2-small": dinov2,
    "general/dinov2-base": dinov2,
    "general/dinov2-large": dinov2,
    "general/dinov3-small": dinov3,
    "general/dinov3-base": dinov3,
    "general/dinov3-large": dinov3,
}
