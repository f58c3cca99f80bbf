"""MAE masked reconstruction (He et al. 2022) for timm Vision Transformers, on lightly's masked-ViT wrappers.

The student is the only network (no teacher, no EMA): lightly's ``MaskedVisionTransformerTIMM`` runs the
backbone's own timm ViT on the kept patch tokens, lightly's ``MaskedVisionTransformerDecoderTIMM`` (a new,
small transformer between two linear maps) fills in the masked ones, and the loss is the mean squared error of
the predicted pixels of the masked patches (per-patch normalised targets by default, as in the paper). The
wrapper shares the ViT's parameters, so the exported backbone is the encoder alone; the decoder is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hfm.pretrain.config import PretrainError
from hfm.pretrain.views import needs_lightly

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone
    from hfm.pretrain.config import MaeBlock

# The parts of a timm ViT on the masked encoder's path; anything else (fc_norm, head, attention pool) gets no
# gradient from MAE and is frozen so that DDP does not wait for it.
_ENCODER_PARTS = ("patch_embed", "cls_token", "reg_token", "pos_embed", "norm_pre", "blocks", "norm")


def timm_vit(backbone: Backbone, label: str) -> Any:
    """The backbone's timm ``VisionTransformer`` (under LoRA: the peft-wrapped base), or a one-line error."""
    from timm.models.vision_transformer import VisionTransformer

    model: Any = backbone.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if backbone.family != "timm" or not isinstance(base, VisionTransformer):
        kind = f"{backbone.family} {type(base).__name__}"
        raise PretrainError(
            f"objective mae wraps timm Vision Transformers only; {label} is a {kind}: use objective dino"
        )
    return base


class MaeBranch(nn.Module):
    """The backbone's ViT behind lightly's masking wrapper, plus the reconstruction decoder.

    ``forward(images)`` returns the loss (so that DDP sees every parameter used in one forward call).
    """

    def __init__(self, backbone: Backbone, vit: Any, block: MaeBlock) -> None:
        super().__init__()
        from lightly.models.modules import MaskedVisionTransformerDecoderTIMM, MaskedVisionTransformerTIMM

        self.backbone = backbone
        self.block = block
        # "skip": the wrapper keeps the backbone's own weights and position embeddings (continued pretraining
        # starts from them, a from-scratch start from timm's seeded initialisation).
        self.encoder = MaskedVisionTransformerTIMM(
            vit=vit, weight_initialization="skip", pos_embed_initialization="skip"
        )
        self.encoder.mask_token.requires_grad_(False)  # unused: masked tokens are dropped, not replaced
        self.patch_size = int(vit.patch_embed.patch_size[0])
        self.prefix = int(vit.num_prefix_tokens)
        self.patches = int(vit.patch_embed.num_patches)
        channels = int(getattr(vit.patch_embed.proj, "in_channels", 3))
        self.decoder_embed = nn.Linear(int(vit.embed_dim), block.decoder_dim)
        self.decoder = MaskedVisionTransformerDecoderTIMM(
            num_patches=self.patches,
            embed_dim=block.decoder_dim,
            depth=block.decoder_depth,
            num_heads=block.decoder_heads,
            num_prefix_tokens=self.prefix,
            mlp_ratio=block.decoder_mlp_ratio,
        )
        self.decoder_pred = nn.Linear(block.decoder_dim, self.patch_size**2 * channels)
        on_path = {id(p) for part in _ENCODER_PARTS for p in _parameters(vit, part)}
        for p in vit.parameters():
            if id(p) not in on_path:
                p.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """The reconstruction loss of one batch (the mask comes from torch's global generator)."""
        from lightly.models import utils

        batch = images.shape[0]
        # Patch positions only (every prefix token is kept), then shifted past the prefix tokens.
        keep_patches, mask_patches = utils.random_token_mask(
            size=(batch, self.patches),
            mask_ratio=self.block.mask_ratio,
            mask_class_token=True,
            device=images.device,
        )
        prefix = torch.arange(self.prefix, device=images.device).expand(batch, -1)
        idx_keep = torch.cat([prefix, keep_patches + self.prefix], dim=1)
        idx_mask = mask_patches + self.prefix
        tokens = self.decoder_embed(self.encoder.encode(images=images, idx_keep=idx_keep))
        filled = utils.repeat_token(self.decoder.mask_token, (batch, self.patches + self.prefix))
        filled = utils.set_at_index(filled, idx_keep, tokens.type_as(filled))
        predicted = self.decoder_pred(utils.get_at_index(self.decoder(filled), idx_mask))
        target = utils.get_at_index(utils.patchify(images, self.patch_size), mask_patches)
        if self.block.norm_pix_loss:
            mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
        return ((predicted.float() - target.float()) ** 2).mean()


def _parameters(vit: nn.Module, name: str) -> list[nn.Parameter]:
    part = getattr(vit, name, None)
    if isinstance(part, nn.Parameter):
        return [part]
    if isinstance(part, nn.Module):
        return list(part.parameters())
    return []


class Mae(nn.Module):
    """MAE on the backbone: one student branch, no teacher.

    The surface the training loop uses of :class:`hfm.pretrain.dino.Dino` (``student``, ``teacher`` is
    ``None``, ``loss``, ``after_backward``); there is no teacher to update.

    Args:
        backbone: The backbone to adapt (already set up by :func:`hfm.pretrain.adapt.apply`).
        block: The objective's settings.
        label: How messages name the starting backbone.
    """

    teacher = None

    def __init__(self, backbone: Backbone, block: MaeBlock, label: str) -> None:
        super().__init__()
        needs_lightly()
        vit = timm_vit(backbone, label)
        size = backbone.spec.input_size
        if size % int(vit.patch_embed.patch_size[0]):
            raise PretrainError(f"objective mae: input size {size} is not a multiple of the patch size")
        if int(vit.patch_embed.num_patches * (1 - block.mask_ratio)) < 1:
            raise PretrainError(
                f"objective mae: mask_ratio {block.mask_ratio} masks all {vit.patch_embed.num_patches} patches: "
                "lower it"
            )
        self.student = MaeBranch(backbone, vit, block)

    def loss(self, student: nn.Module, views: list[torch.Tensor], epoch: int) -> torch.Tensor:
        """The reconstruction loss of one batch; ``student`` is the (possibly DDP-wrapped) branch."""
        del epoch
        loss: torch.Tensor = student(views[0])
        return loss

    def after_backward(self, epoch: int) -> None:
        """Nothing to do (DINO freezes its head's last layer here)."""
