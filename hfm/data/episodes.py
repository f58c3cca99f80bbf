"""Few-shot episodes: exactly k labelled examples per class, drawn reproducibly from the train split.

The protocol:

* **Exact k.** An episode holds exactly ``k`` examples of every class (or all of them for ``k="all"``).
  A class with fewer than ``k`` examples is an error naming the class and its count, unless
  ``allow_fewer`` is set, in which case that class contributes what it has.
* **Leak-free.** Only the train split is ever sampled. With groups (patient, slide, study), examples
  whose group also appears in val or test are removed first, so no group straddles an episode and
  the data used to select or report a model.
* **Deterministic.** Each class gets its own permutation of its eligible examples from a PCG64
  generator seeded by a hash of ``(data fingerprint, seed, class)``; no global random state is used,
  so the same data, k and seed give the same example ids on any machine and Python version.
* **Nested.** The episode for ``k`` takes the first ``k`` examples of each class's permutation, so for
  one seed the k=1 episode is inside k=2, which is inside k=4, and so on. Label-efficiency curves then
  show the effect of more labels, not the luck of a fresh draw at every k, and are far less noisy.
  Different seeds give different permutations.

Each episode is saved as JSON (ids, labels, positions, k, seed, data fingerprint) so a run can be rebuilt
exactly and checked against the data it is applied to.

A :class:`Draw` is what one (k, seed) gives a run: the episode (the labelled part) and the **unlabelled pool**,
train minus the labelled examples minus every example whose group is in val or test. Both come from
:func:`draw`, so the leakage rule (:func:`eligible`) lives here once, for the labelled examples and the pool
alike. A draw has room for what later methods add: the query rounds of an active-learning sampler
(:class:`QueryRound`, recorded in ``episode.json``), and bags (a bag draw will index bags instead of images).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hfm.data.partition import rng_for
from hfm.data.splits import Splits, Subset
from hfm.errors import DataError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Episode:
    """One few-shot draw.

    Attributes:
        indices: Positions in the train split, class by class in draw order.
        ids: Example ids of those positions.
        labels: Their labels.
        k: Examples per class asked for (``"all"`` for every eligible example).
        seed: The episode seed.
        fingerprint: Data fingerprint the draw was made from.
        group_key: Name of the grouping (e.g. ``patient``) when groups were honoured.
        excluded: How many train examples were left out because their group is in val/test.
    """

    indices: np.ndarray
    ids: list[str]
    labels: np.ndarray
    k: int | Literal["all"]
    seed: int
    fingerprint: str
    group_key: str | None = None
    excluded: int = 0
    counts: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, train: Subset) -> Subset:
        """The episode's examples as a subset of ``train`` (checked: same ids at the same positions)."""
        positions = [int(i) for i in self.indices]
        if any(p >= len(train) for p in positions) or [train.ids[p] for p in positions] != self.ids:
            raise DataError(
                "episode does not match this training split (different data version?); "
                f"episode fingerprint {self.fingerprint}"
            )
        return train.take(positions)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "k": self.k,
            "seed": self.seed,
            "fingerprint": self.fingerprint,
            "group_key": self.group_key,
            "excluded_by_group": self.excluded,
            "counts": {str(c): n for c, n in sorted(self.counts.items())},
            "indices": [int(i) for i in self.indices],
            "ids": list(self.ids),
            "labels": [int(x) for x in self.labels],
        }

    def to_json(self) -> str:
        """The episode as a JSON string (what :meth:`save` writes)."""
        return json.dumps(self.to_dict(), indent=1)

    def save(self, path: str | Path) -> Path:
        """Write ``episode.json`` (atomically: temp file then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(self.to_json(), encoding="utf-8")
        temp.replace(path)
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Episode:
        return cls(
            indices=np.asarray(data["indices"], dtype=np.int64),
            ids=list(data["ids"]),
            labels=np.asarray(data["labels"], dtype=np.int64),
            k=data["k"],
            seed=int(data["seed"]),
            fingerprint=str(data["fingerprint"]),
            group_key=data.get("group_key"),
            excluded=int(data.get("excluded_by_group", 0)),
            counts={int(c): int(n) for c, n in data.get("counts", {}).items()},
        )

    @classmethod
    def load(cls, path: str | Path) -> Episode:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{path}: not a readable episode file ({err})") from None


def group_name(splits: Splits) -> str | None:
    """The name of the grouping the data source provides (its ``group_key`` or ``group_column``), or ``None``.

    Groups come from the data block alone; a split without groups has no name (``None``), whatever a recipe
    says. A source that has groups but no name for them is called ``"group"``.
    """
    if splits.train.groups is None:
        return None
    source = splits.source or {}
    name = source.get("group_key") or source.get("group_column")
    return str(name) if name else "group"


def eligible(train: Subset, exclude_groups: set[str] | None) -> np.ndarray:
    """Boolean mask of the train examples a draw may use: those whose group is not held out (val/test)."""
    if exclude_groups and train.groups is not None:
        return np.array([g not in exclude_groups for g in train.groups], dtype=bool)
    return np.ones(len(train), dtype=bool)


def episode(
    train: Subset | Splits,
    k: int | Literal["all"],
    seed: int,
    *,
    group_key: str | None = None,
    exclude_groups: set[str] | None = None,
    allow_fewer: bool = False,
    fingerprint: str | None = None,
    classes: list[str] | None = None,
) -> Episode:
    """Draw exactly ``k`` examples per class from the train split (see the module docstring).

    Args:
        train: The train :class:`Subset`, or whole :class:`Splits` (then the val/test groups are excluded,
            and the fingerprint and class names are taken from it).
        k: Examples per class, or ``"all"``.
        seed: Episode seed; different seeds give different episodes.
        group_key: Name of the grouping to honour (recorded); requires ``train.groups``.
        exclude_groups: Groups never to sample (those in val/test). Defaults to the val/test groups when
            ``Splits`` are given.
        allow_fewer: Let a class with fewer than ``k`` examples contribute what it has.
        fingerprint: Data fingerprint to seed from; defaults to the train subset's own fingerprint.
        classes: Class names, for error messages and to know classes absent from ``train``.

    Raises:
        DataError: k is invalid, or a class has fewer than k eligible examples (names class and count).
    """
    if isinstance(train, Splits):
        splits = train
        train = splits.train
        if exclude_groups is None and train.groups is not None:
            exclude_groups = splits.heldout_groups()
        fingerprint = fingerprint or splits.fingerprint
        classes = classes or splits.classes
    if k != "all" and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0):
        raise DataError(f"k must be a non-negative integer or 'all', got {k!r}")
    if group_key is not None and train.groups is None:
        raise DataError(f"group_key {group_key!r} given but the training split has no groups")
    fingerprint = fingerprint or train.fingerprint()
    allowed = eligible(train, exclude_groups)
    excluded = int((~allowed).sum())
    n_classes = len(classes) if classes is not None else (int(train.labels.max()) + 1 if len(train) else 0)
    present = sorted(set(train.labels.tolist())) if classes is None else list(range(n_classes))

    chosen: list[np.ndarray] = []
    counts: dict[int, int] = {}
    for label in present:
        pool = np.flatnonzero((train.labels == label) & allowed)
        name = classes[label] if classes is not None else str(label)
        want = len(pool) if k == "all" else int(k)
        if want and (len(pool) < want or len(pool) == 0):  # k = 0 (zero-shot) labels nothing
            if not allow_fewer or len(pool) == 0:
                note = f" after excluding {excluded} examples whose group is in val/test" if excluded else ""
                raise DataError(
                    f"class {name!r} has {len(pool)} training examples{note}, fewer than k={k}; "
                    "lower k, or set allow_fewer: true in the recipe to let it contribute what it has"
                )
            want = len(pool)
        order = rng_for("episode", fingerprint, seed, label).permutation(len(pool))
        picked = pool[order[:want]]
        chosen.append(picked)
        counts[label] = len(picked)
    indices = np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)
    return Episode(
        indices=indices.astype(np.int64),
        ids=[train.ids[i] for i in indices],
        labels=train.labels[indices],
        k=k if k == "all" else int(k),
        seed=int(seed),
        fingerprint=fingerprint,
        group_key=group_key,
        excluded=excluded,
        counts=counts,
    )


@dataclass(frozen=True)
class QueryRound:
    """One round of an active-learning sampler: which train positions it chose, how and why.

    Attributes:
        round: Round number (0: the cold start).
        strategy: The sampler's name.
        indices: Train positions chosen in this round.
        scores: The strategy's score of each chosen example (same order), when it has one.
    """

    round: int
    strategy: str
    indices: tuple[int, ...]
    scores: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "strategy": self.strategy,
            "indices": list(self.indices),
            "scores": list(self.scores),
        }


@dataclass(frozen=True)
class Draw:
    """What one (k, seed) gives a run: the labelled episode and the unlabelled pool (and later query rounds).

    Attributes:
        episode: The labelled examples (exact k per class, nested across k).
        pool: Train positions (ascending) a method may use without their labels: train minus the episode minus
            every example whose group is in val or test.
        rounds: Query rounds of an active-learning sampler that chose the labelled examples (empty for the
            default random-per-class draw).
    """

    episode: Episode
    pool: np.ndarray
    rounds: tuple[QueryRound, ...] = ()

    # The labelled part, under the names runs have always used.
    @property
    def indices(self) -> np.ndarray:
        return self.episode.indices

    @property
    def k(self) -> int | Literal["all"]:
        return self.episode.k

    @property
    def seed(self) -> int:
        return self.episode.seed

    def labelled(self, train: Subset) -> Subset:
        """The labelled examples as a subset of ``train`` (checked against the draw's ids)."""
        return self.episode.subset(train)

    def unlabelled(self, train: Subset) -> Subset:
        """The pool as a subset of ``train`` (labels are kept for evaluation; a method must not read them)."""
        return train.take([int(i) for i in self.pool])

    def pool_fingerprint(self, train: Subset) -> str:
        """A hash of the pool's example ids: two runs used the same pool exactly when these match."""
        ids = "\n".join(train.ids[int(i)] for i in self.pool)
        return hashlib.sha256(ids.encode("utf-8")).hexdigest()[:16]

    def to_dict(self, train: Subset | None = None) -> dict[str, Any]:
        """The episode's record plus the pool's size (and fingerprint, given ``train``) and the query rounds."""
        out = self.episode.to_dict()
        out["pool"] = {
            "size": int(len(self.pool)),
            "fingerprint": self.pool_fingerprint(train) if train is not None else None,
        }
        out["rounds"] = [r.to_dict() for r in self.rounds]
        return out

    def save(self, path: str | Path, train: Subset | None = None) -> Path:
        """Write ``episode.json`` (the labelled episode as :meth:`Episode.save` does, plus pool and rounds)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".tmp")
        temp.write_text(json.dumps(self.to_dict(train), indent=1), encoding="utf-8")
        temp.replace(path)
        return path


def draw(splits: Splits, k: int | Literal["all"], seed: int, *, allow_fewer: bool = False) -> Draw:
    """The draw of one (k, seed): the episode (see :func:`episode`) and the unlabelled pool.

    The grouping is the data source's own (:func:`group_name`); examples whose group is in val or test are in
    neither the episode nor the pool.
    """
    held = splits.heldout_groups() if splits.train.groups is not None else None
    labelled = episode(
        splits, k, seed, group_key=group_name(splits), exclude_groups=held, allow_fewer=allow_fewer
    )
    mask = eligible(splits.train, held)
    mask[labelled.indices] = False
    return Draw(episode=labelled, pool=np.flatnonzero(mask).astype(np.int64))
