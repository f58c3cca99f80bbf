"""Semi-supervised methods on cached embeddings: pseudo-label the pool, then fit the probe on both.

Each method here reads the sweep's embeddings of the draw's labelled examples and of its unlabelled pool
(``needs = Needs(inputs="embeddings", pool=True)``: the runner embeds the pool once per sweep), gives pool
examples labels with a scikit-learn semi-supervised estimator (label spreading, label propagation,
self-training), and fits the tuner's probe on the labelled examples plus the pool examples whose pseudo-label is
confident enough. The probe still chooses its L2 strength on val, and the adapter it saves is an ordinary probe:
``hfm.load_adapter`` predicts new images with it, which a transductive estimator alone could not do.

Only the probe (a tuner fitted on cached embeddings) is accepted: these methods never train backbone weights.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch

from hfm.errors import MethodError
from hfm.methods.base import Method, MethodConfig, MethodResult, Needs, RunContext
from hfm.methods.supervised import as_numpy

if TYPE_CHECKING:
    from hfm.tuners.base import AdaptedModel


@dataclasses.dataclass
class PoolLabelsConfig(MethodConfig):
    """Parameters every pool-labelling method shares.

    Attributes:
        min_confidence: Pool examples whose pseudo-label probability is below this are left out of the probe's
            fit (0 keeps every pool example).
    """

    min_confidence: float = 0.0

    def check(self, name: str) -> None:
        if not 0.0 <= self.min_confidence <= 1.0:
            raise MethodError(
                f"method {name!r}: min_confidence must lie in [0, 1], got {self.min_confidence}"
            )


def unit_rows(labelled: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre and scale both sets by their joint statistics, then L2-normalise every row.

    Graph kernels (k nearest neighbours, RBF) then compare directions, the way foundation-model embeddings are
    usually compared (cosine similarity), and one ``gamma`` suits any backbone's embedding scale.
    """
    both = np.concatenate([labelled, pool]).astype(np.float64)
    mean, std = both.mean(axis=0), both.std(axis=0) + 1e-6
    both = (both - mean) / std
    both /= np.linalg.norm(both, axis=1, keepdims=True) + 1e-12
    return both[: len(labelled)], both[len(labelled) :]


class PoolLabels(Method):
    """Base: label the pool from cached embeddings, then fit the probe on labelled + confident pool examples.

    Subclasses implement :meth:`pool_labels`; :meth:`fit` does the rest the same way for all of them.
    """

    config_cls: ClassVar[type[MethodConfig]] = PoolLabelsConfig
    needs = Needs(inputs="embeddings", pool=True)

    def check(self, tuner: type[AdaptedModel]) -> None:
        if not tuner.uses_embeddings:
            raise MethodError(
                f"method {self.method_name!r} fits a probe on cached embeddings; tuner {tuner.tuner_name!r} "
                "trains end to end: use tuner probe here, or fixmatch/pseudo-label/freematch with this tuner"
            )

    @abstractmethod
    def pool_labels(
        self, labelled: np.ndarray, labels: np.ndarray, pool: np.ndarray, n_classes: int, seed: int
    ) -> np.ndarray:
        """Class probabilities ``[n_pool, n_classes]`` of the pool examples (rows of zeros: no label).

        Args:
            labelled: Embeddings of the labelled examples ``[n, D]``.
            labels: Their labels ``[n]``.
            pool: Embeddings of the pool ``[n_pool, D]`` (never its labels).
            n_classes: Number of classes.
            seed: The run's seed, for estimators with random state.
        """

    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        emb = ctx.embeddings()
        labels = np.asarray(ctx.splits.train.labels[ctx.draw.indices], dtype=np.int64)
        labelled = emb.of(ctx.draw.indices).double().numpy()
        n_classes = ctx.splits.num_classes
        pool = ctx.pool_embeddings().double().numpy().reshape(-1, labelled.shape[1])
        if len(pool) == 0:
            raise MethodError(
                f"method {self.method_name!r}: the unlabelled pool is empty (every train example is labelled "
                "or excluded by its group); use the supervised preset or add unlabelled images"
            )
        proba = self.pool_labels(labelled, labels, pool, n_classes, ctx.seed)
        confidence = proba.max(axis=1)
        keep = np.flatnonzero(
            (confidence > 0) & (confidence >= self.config.min_confidence)  # type: ignore[attr-defined]
        )
        pseudo = proba.argmax(axis=1)[keep]
        x = torch.as_tensor(np.concatenate([labelled, pool[keep]]), dtype=torch.float32)
        y = torch.as_tensor(np.concatenate([labels, pseudo]), dtype=torch.long)
        model.fit_embeddings(x, y, emb.val, torch.as_tensor(ctx.splits.val.labels))  # type: ignore[operator]
        info = dict(getattr(model, "fit_info", {}) or {})
        info["pool"] = ctx.pool_record()
        info["pseudo_labelled"] = int(len(keep))
        info["pseudo_label_counts"] = np.bincount(pseudo, minlength=n_classes).astype(int).tolist()
        # recorded for diagnosis, never trained on: only the draw's pool (the first rows) has known labels
        own = keep < len(ctx.draw.pool)
        pool_truth = ctx.splits.train.labels[ctx.draw.pool][keep[own]]
        info["pseudo_label_accuracy"] = float((pseudo[own] == pool_truth).mean()) if own.any() else None
        test = model.predict_proba_embeddings(emb.test)  # type: ignore[operator]
        return MethodResult(proba=as_numpy(test), info=info, n_unlabelled=len(pool))
