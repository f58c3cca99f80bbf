"""DINO self-distillation on lightly: projection head, loss (with centring and teacher temperature), EMA update.

The student is the backbone being adapted plus a new projection head; the teacher starts as an exact copy of
both (so continued pretraining starts from the public weights, not from noise) and follows the student by an
exponential moving average. The teacher sees only the global views; the student sees all of them.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING

import torch
from torch import nn

from hfm.pretrain.views import needs_lightly

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone
    from hfm.pretrain.config import DinoBlock


class Branch(nn.Module):
    """A backbone and its projection head: a list of same-size view batches in, head outputs out."""

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        """Views of one size go through the backbone in one batch; the outputs come back per view."""
        out: list[torch.Tensor] = []
        start = 0
        while start < len(views):
            end = start
            while end < len(views) and views[end].shape == views[start].shape:
                end += 1
            batch = torch.cat(views[start:end])
            out.extend(self.head(self.backbone(batch)).chunk(end - start))
            start = end
        return out


class Dino(nn.Module):
    """Student and teacher branches with lightly's DINO head and loss.

    Args:
        backbone: The backbone to adapt (already set up by :func:`hfm.pretrain.adapt.apply`).
        block: The objective's settings.
        epochs: Pretraining epochs (for the teacher-temperature warm-up).
    """

    def __init__(self, backbone: Backbone, block: DinoBlock, epochs: int) -> None:
        super().__init__()
        needs_lightly()
        from lightly.loss import DINOLoss
        from lightly.models.modules import DINOProjectionHead

        self.block = block

        def make_head() -> nn.Module:
            return DINOProjectionHead(
                input_dim=backbone.spec.embed_dim,
                hidden_dim=block.hidden_dim,
                bottleneck_dim=block.bottleneck_dim,
                output_dim=block.out_dim,
                batch_norm=block.batch_norm,
                freeze_last_layer=block.freeze_last_layer_epochs,
            )

        with warnings.catch_warnings():
            # lightly's head uses torch's older weight_norm; nothing for a user to act on.
            warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
            student_head, teacher_head = make_head(), make_head()
        self.student = Branch(backbone, student_head)
        # The head's weight norm cannot be deep-copied: the teacher gets a new head with the same weights.
        teacher_head.load_state_dict(self.student.head.state_dict())
        self.teacher = Branch(copy.deepcopy(backbone), teacher_head)
        self.teacher.requires_grad_(False)
        self.criterion = DINOLoss(
            output_dim=block.out_dim,
            warmup_teacher_temp=block.warmup_teacher_temp,
            teacher_temp=block.teacher_temp,
            warmup_teacher_temp_epochs=max(1, min(block.warmup_teacher_temp_epochs, epochs)),
            student_temp=block.student_temp,
            center_momentum=block.center_momentum,
        )

    def loss(self, student: nn.Module, views: list[torch.Tensor], epoch: int) -> torch.Tensor:
        """The DINO loss of one batch of views; ``student`` is the (possibly DDP-wrapped) student branch."""
        with torch.no_grad():
            teacher_out = self.teacher(views[:2])
        student_out = student(views)
        temp = None
        if epoch >= self.block.warmup_teacher_temp_epochs:
            temp = self.block.teacher_temp
        return self.criterion(
            [t.float() for t in teacher_out], [s.float() for s in student_out], teacher_temp=temp, epoch=epoch
        )

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """Move the teacher towards the student by an exponential moving average."""
        from lightly.models.utils import update_momentum

        update_momentum(self.student, self.teacher, m=momentum)

    def after_backward(self, epoch: int) -> None:
        """Keep the head's last layer fixed during its first epochs (DINO's stabiliser)."""
        head = self.student.head
        cancel = getattr(head, "cancel_last_layer_gradients", None)
        if callable(cancel):
            cancel(epoch)
