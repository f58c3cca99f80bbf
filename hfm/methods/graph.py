"""Label spreading and label propagation on cached embeddings (scikit-learn's graph-based estimators).

Both build a similarity graph over the labelled and unlabelled embeddings and let the labels diffuse along it
(Zhou et al. 2004, "Learning with local and global consistency"; Zhu and Ghahramani 2002). scikit-learn's
:class:`~sklearn.semi_supervised.LabelSpreading` and :class:`~sklearn.semi_supervised.LabelPropagation` do the
diffusion; hfm normalises the embeddings (:func:`~hfm.methods.embedded.unit_rows`) and then fits the probe on
the labelled examples plus the pool's diffused labels (:class:`~hfm.methods.embedded.PoolLabels`).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, ClassVar, Literal

import numpy as np

from hfm.errors import MethodError
from hfm.methods import register_method
from hfm.methods.base import MethodConfig
from hfm.methods.embedded import PoolLabels, PoolLabelsConfig, unit_rows


@dataclasses.dataclass
class GraphConfig(PoolLabelsConfig):
    """Graph parameters (scikit-learn's names; its defaults but for ``kernel`` and ``alpha``).

    Attributes:
        kernel: ``knn`` (a sparse k-nearest-neighbour graph; robust on small pools) or ``rbf`` (dense).
        n_neighbors: Neighbours per node of the ``knn`` graph (capped at the number of examples minus one).
        gamma: RBF width on the unit-normalised embeddings.
        alpha: Label spreading's clamping factor: the share of a node's label that comes from its neighbours
            (label propagation clamps the labelled examples fully and ignores it). 0.99 as in Zhou et al. and
            Iscen et al. 2019: scikit-learn's 0.2 lets a label fade within a few hops, so with one or four
            labelled examples per class most of the pool is never reached.
        max_iter: Diffusion iterations.
    """

    kernel: Literal["knn", "rbf"] = "knn"
    n_neighbors: int = 7
    gamma: float = 20.0
    alpha: float = 0.99
    max_iter: int = 1000

    def check(self, name: str) -> None:
        super().check(name)
        if self.n_neighbors < 1 or self.gamma <= 0 or self.max_iter < 1:
            raise MethodError(f"method {name!r}: n_neighbors, gamma and max_iter must be positive")
        if not 0.0 < self.alpha < 1.0:
            raise MethodError(f"method {name!r}: alpha must lie in (0, 1), got {self.alpha}")


class GraphMethod(PoolLabels):
    """Shared fit of the two scikit-learn graph estimators."""

    config_cls: ClassVar[type[MethodConfig]] = GraphConfig
    config: GraphConfig

    def estimator(self, n_neighbors: int) -> Any:
        """The scikit-learn estimator, configured from the preset."""
        raise NotImplementedError

    def pool_labels(
        self, labelled: np.ndarray, labels: np.ndarray, pool: np.ndarray, n_classes: int, seed: int
    ) -> np.ndarray:
        lab, unl = unit_rows(labelled, pool)
        x = np.concatenate([lab, unl])
        y = np.concatenate([labels, np.full(len(unl), -1)])
        estimator = self.estimator(min(self.config.n_neighbors, len(x) - 1))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings: the diffusion's last state is still used
            estimator.fit(x, y)
        dist = np.nan_to_num(np.asarray(estimator.label_distributions_[len(lab) :], dtype=np.float64))
        # scikit-learn orders columns by the classes it saw: a class absent from the labelled set gets none.
        proba = np.zeros((len(unl), n_classes))
        proba[:, estimator.classes_] = dist
        return proba


@register_method("label-spreading")
class LabelSpreadingMethod(GraphMethod):
    """Label spreading (normalised graph Laplacian, soft clamping of the labelled examples)."""

    def estimator(self, n_neighbors: int) -> Any:
        from sklearn.semi_supervised import LabelSpreading

        cfg = self.config
        return LabelSpreading(
            kernel=cfg.kernel,
            n_neighbors=n_neighbors,
            gamma=cfg.gamma,
            alpha=cfg.alpha,
            max_iter=cfg.max_iter,
        )


@register_method("label-propagation")
class LabelPropagationMethod(GraphMethod):
    """Label propagation (random-walk graph, labelled examples clamped to their labels)."""

    def estimator(self, n_neighbors: int) -> Any:
        from sklearn.semi_supervised import LabelPropagation

        cfg = self.config
        return LabelPropagation(
            kernel=cfg.kernel, n_neighbors=n_neighbors, gamma=cfg.gamma, max_iter=cfg.max_iter
        )
