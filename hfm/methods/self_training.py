"""Self-training around the probe on cached embeddings (scikit-learn's ``SelfTrainingClassifier``).

The probe is first fitted on the labelled examples alone (choosing its L2 strength on val). scikit-learn's
:class:`~sklearn.semi_supervised.SelfTrainingClassifier` then runs the self-training loop (Yarowsky 1995):
a logistic regression with the probe's chosen strength labels the pool examples it is confident about, is
refitted on them, and repeats. The pool examples it labelled join the labelled ones for the probe's final fit.

The loop's classifier is scikit-learn's ``LogisticRegression`` rather than hfm's probe because the loop clones
its estimator through scikit-learn's parameter protocol, which a torch model holding a backbone does not follow;
the regularisation matches (``C = 1 / (l2 * n_labelled)``: the probe's penalty is on the mean loss).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import torch

from hfm.errors import MethodError
from hfm.methods import register_method
from hfm.methods.base import MethodConfig, MethodResult, RunContext
from hfm.methods.embedded import PoolLabels, PoolLabelsConfig, unit_rows

if TYPE_CHECKING:
    from hfm.tuners.base import AdaptedModel


@dataclasses.dataclass
class SelfTrainingConfig(PoolLabelsConfig):
    """Self-training parameters (scikit-learn's names and defaults).

    Attributes:
        criterion: ``threshold``: label every pool example above ``threshold`` each round; ``k_best``: the
            ``k_best`` most confident ones.
        threshold: Probability a pseudo-label needs (``criterion="threshold"``).
        k_best: Pool examples labelled per round (``criterion="k_best"``).
        max_iter: Rounds.
        l2: Fixed L2 strength of the loop's classifier; ``None`` takes the probe's choice on the labelled set.
    """

    criterion: Literal["threshold", "k_best"] = "threshold"
    threshold: float = 0.75
    k_best: int = 10
    max_iter: int = 10
    l2: float | None = None

    def check(self, name: str) -> None:
        super().check(name)
        if not 0.0 <= self.threshold < 1.0:
            raise MethodError(f"method {name!r}: threshold must lie in [0, 1), got {self.threshold}")
        if self.k_best < 1 or self.max_iter < 1 or (self.l2 is not None and self.l2 <= 0):
            raise MethodError(f"method {name!r}: k_best, max_iter and l2 must be positive")


@register_method("self-training")
class SelfTraining(PoolLabels):
    """Self-training: the probe's own confident predictions on the pool become labels, round after round."""

    config_cls: ClassVar[type[MethodConfig]] = SelfTrainingConfig
    config: SelfTrainingConfig
    _l2: float = 1e-2

    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        if self.config.l2 is None:  # the probe's own choice on the labelled examples (and val)
            emb = ctx.embeddings()
            labels = torch.as_tensor(ctx.splits.train.labels[ctx.draw.indices])
            val = torch.as_tensor(ctx.splits.val.labels)
            info = model.fit_embeddings(emb.of(ctx.draw.indices), labels, emb.val, val)  # type: ignore[operator]
            self._l2 = float(info["l2"])
        else:
            self._l2 = self.config.l2
        return super().fit(model, ctx)

    def pool_labels(
        self, labelled: np.ndarray, labels: np.ndarray, pool: np.ndarray, n_classes: int, seed: int
    ) -> np.ndarray:
        from sklearn.linear_model import LogisticRegression
        from sklearn.semi_supervised import SelfTrainingClassifier

        cfg = self.config
        lab, unl = unit_rows(labelled, pool)
        if len(np.unique(labels)) < 2:
            raise MethodError(f"method {self.method_name!r} needs labelled examples of at least two classes")
        base = LogisticRegression(C=1.0 / (max(self._l2, 1e-8) * len(lab)), max_iter=1000, random_state=seed)
        loop = SelfTrainingClassifier(
            base, threshold=cfg.threshold, criterion=cfg.criterion, k_best=cfg.k_best, max_iter=cfg.max_iter
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # k_best larger than what is left, convergence notes
            loop.fit(np.concatenate([lab, unl]), np.concatenate([labels, np.full(len(unl), -1)]))
        chosen = np.asarray(loop.labeled_iter_[len(lab) :]) > 0
        proba = np.zeros((len(unl), n_classes))
        rows = np.flatnonzero(chosen)
        if len(rows):
            proba[rows[:, None], loop.classes_[None, :]] = loop.predict_proba(unl[rows])
        return proba
