"""Active-learning samplers: which pool images get labels, chosen on cached embeddings.

A sampler fills the labelled part of a :class:`~hfm.data.episodes.Draw` in one or more query rounds
(:class:`~hfm.data.episodes.QueryRound`), instead of the default draw of exactly k random examples per class.
The query strategies themselves are scikit-activeml's (TypiClust, ProbCover, CoreSet k-center greedy, random,
uncertainty sampling, BADGE); this module adapts them to hfm's positions, seeds and leakage rule:

* only eligible train positions are ever candidates (never val/test, never an example whose group is held out:
  :func:`hfm.data.episodes.eligible`);
* embeddings are L2-normalised first, so ProbCover's ball radii (0.2 … 2.0) mean the same for every backbone;
* every choice is deterministic from ``(seed, round)``.

Cold-start strategies (``typiclust``, ``probcover``, ``kcenter``, ``random``) need no label; the uncertainty
strategies (``margin``, ``entropy``, ``badge``) need the labels of earlier rounds and refuse to start cold.
``class-balanced`` is today's default draw generalised to any budget: it reads the true labels of the pool,
so it exists for simulation only (as the cheating baseline a study shows next to ``random``).

Third-party code adds a sampler with :func:`register_sampler`, as methods and tuners are added.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from hfm.data.episodes import Draw, Episode, QueryRound, eligible, group_name
from hfm.data.partition import derive_seed
from hfm.data.splits import Splits
from hfm.errors import DataError, MethodError
from hfm.sweep import DEFAULT_SAMPLER

_REGISTRY: dict[str, type[Sampler]] = {}

S = TypeVar("S", bound="type[Sampler]")


@dataclass(frozen=True)
class QueryInput:
    """What one query round sees.

    Attributes:
        embeddings: ``[N, D]`` embeddings of the eligible train positions (L2-normalised).
        labels: ``[N]`` labels known so far (``-1``: not labelled).
        candidates: Rows of ``embeddings`` that may be chosen (unlabelled and eligible).
        budget: How many rows to choose.
        n_classes: Number of classes of the task.
        seed: Seed of this round (derived from the run's seed and the round number).
        truth: True labels of every row; only a sampler with ``reads_truth`` may look (simulation only).
    """

    embeddings: np.ndarray
    labels: np.ndarray
    candidates: np.ndarray
    budget: int
    n_classes: int
    seed: int
    truth: np.ndarray | None = None


class Sampler(ABC):
    """A query strategy: choose ``budget`` rows among the candidates, with a score for each.

    Attributes:
        sampler_name: The registered name (set by :func:`register_sampler`).
        cold_start: Whether it can choose with no label known.
        reads_truth: Whether it reads the true labels of the pool (simulation only; refused by ``hfm select``).
    """

    sampler_name: ClassVar[str] = ""
    cold_start: ClassVar[bool] = True
    reads_truth: ClassVar[bool] = False

    @abstractmethod
    def query(self, data: QueryInput) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``data.embeddings`` chosen (distinct candidates, in choice order) and their scores."""


def register_sampler(name: str) -> Callable[[S], S]:
    """Class decorator: register a :class:`Sampler` subclass under ``name``."""

    def decorator(cls: S) -> S:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"sampler name {name!r} is already registered by {existing.__qualname__}")
        cls.sampler_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def get_sampler(name: str) -> type[Sampler]:
    """The sampler class registered as ``name``.

    Raises:
        MethodError: For an unknown name (the message lists the known ones).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise MethodError(f"unknown sampler {name!r}: use one of {', '.join(list_samplers())}") from None


def list_samplers() -> list[str]:
    """Registered sampler names, sorted."""
    return sorted(_REGISTRY)


# ---- scikit-activeml adapters -----------------------------------------------------------------------------
def _skactiveml_query(strategy: Any, data: QueryInput, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Run a scikit-activeml pool strategy and read each chosen row's utility at the step it was chosen."""
    y = np.where(data.labels >= 0, data.labels, np.nan).astype(float)
    chosen, utilities = strategy.query(
        data.embeddings,
        y,
        candidates=data.candidates,
        batch_size=data.budget,
        return_utilities=True,
        **kwargs,
    )
    chosen = np.asarray(chosen, dtype=np.int64)
    scores = np.array([utilities[step, row] for step, row in enumerate(chosen)], dtype=np.float64)
    return chosen, np.nan_to_num(scores, nan=0.0)


def _classifier(n_classes: int, seed: int) -> Any:
    """The model uncertainty strategies ask: a logistic regression on the embeddings (scikit-activeml wrapper)."""
    from skactiveml.classifier import SklearnClassifier
    from sklearn.linear_model import LogisticRegression

    return SklearnClassifier(
        LogisticRegression(max_iter=1000),
        classes=np.arange(n_classes),
        missing_label=np.nan,
        random_state=seed,
    )


def _needs_labels(name: str, data: QueryInput) -> None:
    if not (data.labels >= 0).any():
        raise MethodError(
            f"sampler {name!r} needs labels from an earlier round; start with a cold-start strategy "
            "(typiclust, probcover, kcenter or random)"
        )


@register_sampler("random")
class RandomSampler(Sampler):
    """Uniformly random among the candidates (the baseline every strategy is compared with)."""

    def query(self, data: QueryInput) -> tuple[np.ndarray, np.ndarray]:
        from skactiveml.pool import RandomSampling

        return _skactiveml_query(RandomSampling(random_state=data.seed), data)


@register_sampler("typiclust")
class TypiClustSampler(Sampler):
    """TypiClust (Hacohen et al. 2022): the most typical example of each of the largest uncovered clusters."""

    def query(self, data: QueryInput) -> tuple[np.ndarray, np.ndarray]:
        from skactiveml.pool import TypiClust

        strategy = TypiClust(random_state=data.seed, cluster_algo_dict={"n_init": 3})
        return _skactiveml_query(strategy, data)


@register_sampler("probcover")
class ProbCoverSampler(Sampler):
    """ProbCover (Yehuda et al. 2022): greedy maximum coverage of balls whose radius keeps clusters pure."""

    def query(self, data: QueryInput) -> tuple[np.ndarray, np.ndarray]:
        import warnings

        from skactiveml.pool import ProbCover

        strategy = ProbCover(
            n_classes=max(data.n_classes, 2), random_state=data.seed, cluster_algo_dict={"n_init": 3}
        )
        with warnings.catch_warnings():  # "no delta reaches alpha": it then takes the smallest, as documented
            warnings.simplefilter("ignore")
            return _skactiveml_query(strategy, data)


@register_sampler("kcenter")
class KCenterSampler(Sampler):
    """CoreSet k-center greedy (Sener & Savarese 2018): farthest-first from what is labelled already."""

    def query(self, data: QueryInput) -> tuple[np.ndarray, np.ndarray]:
        from skactiveml.pool import CoreSet

        return _skactiveml_query(CoreSet(random_state=data.seed), data)


class _UncertaintySampler(Sampler):
    cold_start = False
    method: ClassVar[str] = ""

    def query(self, data: QueryInput) -> tuple[np.ndarray, np.ndarray]:
        from skactiveml.pool import UncertaintySampling

        _needs_labels(self.sampler_name, data)
        strategy = UncertaintySampling(method=self.method, random_state=data.seed)
        return _skactiveml_query(strategy, data, clf=_classifier(data.n_classes, data.seed))


@register_sampler("margin")
class MarginSampler(_UncertaintySampler):
    """Smallest margin between the two most probable classes of a probe fitted on the labels so far."""

    method = "margin_sampling"


@register_sampler("entropy")
class EntropySampler(_UncertaintySampler):
    """Highest predictive entropy of a probe fitted on the labels so far."""

    method = "entropy"


@register_sampler("badge")
class BadgeSampler(Sampler):
    """BADGE (Ash et al. 2020): k-means++ seeding on the probe's gradient embeddings (uncertain and diverse)."""

    cold_start = False

    def query(self, data: QueryInput) -> tuple[np.ndarray, np.ndarray]:
        from skactiveml.pool import Badge

        _needs_labels(self.sampler_name, data)
        return _skactiveml_query(
            Badge(random_state=data.seed), data, clf=_classifier(data.n_classes, data.seed)
        )


@register_sampler("class-balanced")
class ClassBalancedSampler(Sampler):
    """Random, class by class in turn: the default draw for any budget. Reads the true labels (simulation only).

    Written here rather than taken from scikit-activeml because no strategy there may read the pool's labels;
    that is the point of this one, the optimistic baseline. Each class keeps its own seeded permutation, so the
    rows chosen at one budget are inside those chosen at a larger one.
    """

    reads_truth = True

    def query(self, data: QueryInput) -> tuple[np.ndarray, np.ndarray]:
        if data.truth is None:
            raise MethodError(
                "sampler 'class-balanced' reads the true labels: it exists for simulations only"
            )
        open_rows = np.zeros(len(data.labels), dtype=bool)
        open_rows[data.candidates] = True
        have = np.bincount(data.labels[data.labels >= 0], minlength=data.n_classes)
        queues = {}
        for c in range(data.n_classes):
            rows = np.flatnonzero((data.truth == c) & open_rows)
            queues[c] = list(rows[np.random.default_rng([data.seed, c]).permutation(len(rows))])
        chosen: list[int] = []
        while len(chosen) < data.budget and any(queues.values()):
            # the class with the fewest labels so far goes next (ties: lowest class index)
            c = min((c for c in queues if queues[c]), key=lambda c: (have[c], c))
            chosen.append(int(queues[c].pop(0)))
            have[c] += 1
        return np.asarray(chosen, dtype=np.int64), np.ones(len(chosen))


# ---- rounds over a split ---------------------------------------------------------------------------------
def normalise(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def round_budgets(budget: int, rounds: int) -> list[int]:
    """Split a total budget over rounds as evenly as possible, earlier rounds first (``10, 3 -> [4, 3, 3]``)."""
    if rounds < 1:
        raise MethodError(f"rounds must be at least 1, got {rounds}")
    base, extra = divmod(budget, rounds)
    return [base + (1 if r < extra else 0) for r in range(rounds) if base + (1 if r < extra else 0) > 0]


def query_round(
    sampler: str,
    train_embeddings: np.ndarray,
    allowed: np.ndarray,
    known: dict[int, int],
    budget: int,
    *,
    n_classes: int,
    seed: int,
    round_no: int,
    truth: np.ndarray | None = None,
) -> QueryRound:
    """One round: choose ``budget`` eligible, not yet labelled train positions with ``sampler``.

    Args:
        sampler: Registered sampler name.
        train_embeddings: ``[N_train, D]`` embeddings of the whole train split (rows not ``allowed`` are ignored).
        allowed: Boolean mask of eligible train positions (:func:`hfm.data.episodes.eligible`).
        known: Train position -> label of every example labelled so far.
        budget: Number of positions to choose.
        n_classes: Number of classes.
        seed: The run's seed (the round's seed is derived from it and ``round_no``).
        round_no: Round number (0: the cold start).
        truth: True train labels, for a sampler that reads them (simulation).

    Raises:
        DataError: The budget exceeds what is left to label.
        MethodError: The sampler cannot run here (unknown, needs labels, or reads the truth without it).
    """
    cls = get_sampler(sampler)
    rows = np.flatnonzero(allowed)
    labels = np.array([known.get(int(p), -1) for p in rows], dtype=np.int64)
    candidates = np.flatnonzero(labels < 0)
    if budget > len(candidates):
        raise DataError(
            f"budget {budget} is larger than the {len(candidates)} unlabelled eligible images; lower the budget"
        )
    data = QueryInput(
        embeddings=normalise(np.asarray(train_embeddings)[rows]),
        labels=labels,
        candidates=candidates,
        budget=int(budget),
        n_classes=n_classes,
        seed=derive_seed("query", seed, round_no) % (2**31),
        truth=None if truth is None else np.asarray(truth)[rows],
    )
    chosen, scores = cls().query(data)
    positions = rows[chosen]
    if len(set(positions.tolist())) != len(positions) or any(int(p) in known for p in positions):
        raise MethodError(f"sampler {sampler!r} chose an example twice or one already labelled")
    return QueryRound(
        round=round_no,
        strategy=sampler,
        indices=tuple(int(p) for p in positions),
        scores=tuple(float(s) for s in scores),
    )


def labelled_draw(
    splits: Splits,
    rounds: Sequence[QueryRound],
    labels: dict[int, int],
    *,
    k: Any,
    seed: int,
) -> Draw:
    """The draw whose labelled examples are those of ``rounds`` (labels from ``labels``, by train position).

    The pool is every other eligible train example, as in :func:`hfm.data.episodes.draw`.
    """
    train = splits.train
    held = splits.heldout_groups() if train.groups is not None else None
    allowed = eligible(train, held)
    indices = np.array([p for r in rounds for p in r.indices], dtype=np.int64)
    if len(indices) and not allowed[indices].all():
        raise DataError("a labelled example is not eligible (its group is in val or test)")
    label_array = np.array([labels[int(p)] for p in indices], dtype=np.int64)
    counts = {c: int((label_array == c).sum()) for c in range(splits.num_classes)}
    episode = Episode(
        indices=indices,
        ids=[train.ids[int(p)] for p in indices],
        labels=label_array,
        k=k,
        seed=int(seed),
        fingerprint=splits.fingerprint,
        group_key=group_name(splits),
        excluded=int((~allowed).sum()),
        counts=counts,
    )
    allowed[indices] = False
    return Draw(episode=episode, pool=np.flatnonzero(allowed).astype(np.int64), rounds=tuple(rounds))


def simulate(
    splits: Splits,
    train_embeddings: np.ndarray,
    sampler: str,
    budget: int,
    seed: int,
    *,
    k: Any = None,
    rounds: int = 1,
    cold_start: str = "typiclust",
) -> Draw:
    """A simulated study's draw: ``rounds`` query rounds up to ``budget`` labels, the true labels as annotator.

    A sampler that cannot start cold (margin, entropy, BADGE) takes its first round from ``cold_start``.
    """
    train = splits.train
    held = splits.heldout_groups() if train.groups is not None else None
    allowed = eligible(train, held)
    known: dict[int, int] = {}
    done: list[QueryRound] = []
    for round_no, size in enumerate(round_budgets(budget, rounds)):
        name = sampler if (known or get_sampler(sampler).cold_start) else cold_start
        query = query_round(
            name, train_embeddings, allowed, known, size,
            n_classes=splits.num_classes, seed=seed, round_no=round_no, truth=train.labels,
        )  # fmt: skip
        done.append(query)
        known.update({p: int(train.labels[p]) for p in query.indices})
    return labelled_draw(splits, done, known, k=budget if k is None else k, seed=seed)


__all__ = [
    "DEFAULT_SAMPLER",
    "QueryInput",
    "Sampler",
    "get_sampler",
    "labelled_draw",
    "list_samplers",
    "normalise",
    "query_round",
    "register_sampler",
    "round_budgets",
    "simulate",
]
