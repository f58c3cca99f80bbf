"""End-to-end semi-supervised methods: pseudo-labelling, FixMatch and FreeMatch, trained by :func:`hfm.train.fit`.

Each step sees a labelled batch of ``B`` images and an unlabelled batch of ``mu * B`` pool images (weak, and
for FixMatch/FreeMatch strong, views: :mod:`hfm.methods.views`). The loss is the supervised cross-entropy plus
``lambda_u`` times the unlabelled loss of :mod:`hfm.methods.ssl_losses`. Any trainable tuner (LoRA, DoRA, VPT,
BitFit, full) works: the method only changes the loss and the data each step sees, never the loop.

The labelled images and every unlabelled view go through the model in ONE forward pass (concatenated, then the
logits are split), as in the published FixMatch code: with BatchNorm in the backbone, separate passes would
normalise each part with its own batch statistics (the pseudo-labels under other statistics than the supervised
loss) and leave the running statistics to whichever pass came last (the strong views). The weak view's targets
are the joint pass's weak logits, detached.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from hfm.data.augment import Augment, AugmentConfig
from hfm.errors import MethodError
from hfm.methods import register_method
from hfm.methods.base import Method, MethodConfig, MethodResult, Needs, RunContext
from hfm.methods.ssl_losses import (
    FreeMatchThreshold,
    fixmatch_loss,
    freematch_fairness_loss,
    masked_cross_entropy,
)
from hfm.methods.supervised import as_numpy
from hfm.methods.views import PoolViews, StrongAugment, StrongAugmentConfig

if TYPE_CHECKING:
    from hfm.data.splits import Subset
    from hfm.train import Batch, Forward, TrainConfig
    from hfm.tuners.base import AdaptedModel


@dataclasses.dataclass
class ConsistencyConfig(MethodConfig):
    """Parameters of the end-to-end semi-supervised methods (FixMatch's defaults).

    Attributes:
        threshold: Confidence a pseudo-label needs (FreeMatch adapts its own and ignores this).
        mu: Unlabelled images per labelled image in a step (the unlabelled batch is ``mu * batch_size``).
        lambda_u: Weight of the unlabelled loss.
        momentum: EMA momentum of FreeMatch's thresholds.
        fairness_weight: Weight ``w_f`` of FreeMatch's self-adaptive fairness loss (0.01, the authors' default;
            0 turns it off). Other methods ignore it.
        weak_augment: The weak view (``training.augment``'s keys); ``{}``: hfm's default light augmentation.
        strong_augment: The strong view (:class:`~hfm.methods.views.StrongAugmentConfig`'s keys: ``policy``,
            ``num_ops``, ``magnitude``, ``exclude``).
    """

    threshold: float = 0.95
    mu: int = 7
    lambda_u: float = 1.0
    momentum: float = 0.999
    fairness_weight: float = 0.01
    weak_augment: dict[str, Any] = dataclasses.field(default_factory=dict)
    strong_augment: dict[str, Any] = dataclasses.field(default_factory=dict)

    def check(self, name: str) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise MethodError(f"method {name!r}: threshold must lie in [0, 1], got {self.threshold}")
        if self.mu < 1 or self.lambda_u < 0 or self.fairness_weight < 0 or not 0.0 <= self.momentum < 1.0:
            raise MethodError(
                f"method {name!r}: mu must be >= 1, lambda_u and fairness_weight >= 0 and momentum in [0, 1)"
            )
        for key, block in (("weak_augment", AugmentConfig), ("strong_augment", StrongAugmentConfig)):
            try:
                block(**getattr(self, key))
            except ValueError as err:
                first = err.errors()[0] if hasattr(err, "errors") else {"msg": str(err), "loc": ()}
                where = ".".join(str(p) for p in first["loc"])
                raise MethodError(f"method {name!r}: {key}.{where}: {first['msg']}") from None


class Consistency(Method):
    """Base of the end-to-end methods: supervised cross-entropy + the weighted unlabelled loss terms."""

    config_cls: ClassVar[type[MethodConfig]] = ConsistencyConfig
    config: ConsistencyConfig
    needs = Needs(inputs="images", pool=True)
    #: Whether the unlabelled batch carries a strong view beside the weak one.
    strong_view: ClassVar[bool] = True

    def unlabelled_loss(self, logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """The unlabelled loss of one batch, with its weights (``lambda_u``, ...) applied.

        Args:
            logits: The joint forward pass's logits of each view (weak first, then strong), not detached.
        """
        raise NotImplementedError

    def state(self) -> Any | None:
        """State the loss keeps across steps (checkpointed by :func:`hfm.train.fit`); ``None``: stateless."""
        return None

    def reset(self, num_classes: int) -> None:
        """Start a fresh fit (stateful methods re-initialise their state)."""

    def loss(self, forward: Forward, batch: Batch, config: TrainConfig) -> torch.Tensor:
        """Supervised cross-entropy (label smoothing as :func:`hfm.train.cross_entropy`) + the unlabelled loss,
        from one forward pass over the labelled images and all views (see the module docstring for why)."""
        from hfm.train import cross_entropy

        if batch.unlabelled is None:
            return cross_entropy(forward, batch, config)
        views = batch.unlabelled
        logits = forward(torch.cat([batch.images, *views]))
        parts = logits.split([len(batch.images), *(len(v) for v in views)])
        supervised = F.cross_entropy(parts[0].float(), batch.labels, label_smoothing=config.label_smoothing)
        return supervised + self.unlabelled_loss(parts[1:])

    def train(
        self, model: AdaptedModel, train: Any, val: Any, pool: Subset, config: TrainConfig
    ) -> dict[str, Any]:
        """Train ``model`` on labelled ``train`` and the unlabelled ``pool`` with :func:`hfm.train.fit`.

        Raises:
            MethodError: When the pool is empty.
        """
        from hfm.train import fit

        cfg = self.config
        if len(pool) == 0:
            raise MethodError(
                f"method {self.method_name!r}: the unlabelled pool is empty (every train example is labelled "
                "or excluded by its group); use the supervised preset or add unlabelled images"
            )
        u_batch = cfg.mu * config.batch_size
        if len(pool) < u_batch:
            warnings.warn(
                f"method {self.method_name!r}: the unlabelled pool has {len(pool)} images, fewer than mu x "
                f"batch_size = {u_batch}; each step uses all {len(pool)} instead (add unlabelled images or "
                "lower mu)",
                stacklevel=2,
            )
            u_batch = len(pool)
        self.reset(model.num_classes)
        strong = StrongAugment(cfg.strong_augment) if self.strong_view else None
        views = PoolViews(pool, model.backbone.transform, Augment(cfg.weak_augment), strong)
        result = fit(
            model, train, val, config, loss=self.loss, method=self.method_name,
            unlabelled=views, unlabelled_batch_size=u_batch, method_state=self.state(),
        )  # fmt: skip
        info = result.to_dict()
        info["unlabelled_batch_size"] = u_batch
        return info

    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        config, augment = ctx.train_config()
        splits = ctx.splits
        pool = ctx.pool()
        train = ctx.images(ctx.labelled(), augment)
        val = ctx.images(splits.val) if len(splits.val) else None
        info = self.train(model, train, val, pool, config)
        info["pool"] = ctx.pool_record()
        return MethodResult(
            proba=as_numpy(ctx.predict(model, splits.test)), info=info, n_unlabelled=len(pool)
        )


@register_method("pseudo-label")
class PseudoLabel(Consistency):
    """Pseudo-labelling: the model's confident predictions on weak views become their own targets."""

    strong_view = False

    def unlabelled_loss(self, logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
        weak = logits[0]
        return self.config.lambda_u * fixmatch_loss(weak.detach(), weak, self.config.threshold)[0]


@register_method("fixmatch")
class FixMatch(Consistency):
    """FixMatch: confident weak-view predictions are the targets of the strong view."""

    def unlabelled_loss(self, logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
        weak, strong = logits
        return self.config.lambda_u * fixmatch_loss(weak.detach(), strong, self.config.threshold)[0]


@register_method("freematch")
class FreeMatch(Consistency):
    """FreeMatch: FixMatch with self-adaptive, class-wise thresholds (an EMA of the model's confidence) and the
    self-adaptive fairness loss: ``lambda_u L_u + fairness_weight L_f``."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.thresholds: FreeMatchThreshold | None = None

    def reset(self, num_classes: int) -> None:
        self.thresholds = FreeMatchThreshold(num_classes, self.config.momentum)

    def state(self) -> FreeMatchThreshold | None:
        return self.thresholds

    def unlabelled_loss(self, logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
        weak, strong_logits = logits
        probs = weak.detach().float().softmax(dim=-1)
        if self.thresholds is None:
            self.reset(strong_logits.shape[-1])
        assert self.thresholds is not None
        self.thresholds.update(probs)
        targets, mask = self.thresholds.mask(probs)
        loss = self.config.lambda_u * masked_cross_entropy(strong_logits, targets, mask)
        if self.config.fairness_weight > 0:
            fairness = freematch_fairness_loss(
                strong_logits, mask, self.thresholds.class_confidence, self.thresholds.label_histogram
            )
            loss = loss + self.config.fairness_weight * fairness
        return loss


__all__ = ["Consistency", "ConsistencyConfig", "FixMatch", "FreeMatch", "PseudoLabel"]
