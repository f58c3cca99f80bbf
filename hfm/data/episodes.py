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
"""

from __future__ import annotations

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
    if k != "all" and (isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1):
        raise DataError(f"k must be a positive integer or 'all', got {k!r}")
    if group_key is not None and train.groups is None:
        raise DataError(f"group_key {group_key!r} given but the training split has no groups")
    fingerprint = fingerprint or train.fingerprint()
    eligible = np.ones(len(train), dtype=bool)
    if exclude_groups and train.groups is not None:
        eligible = np.array([g not in exclude_groups for g in train.groups], dtype=bool)
    excluded = int((~eligible).sum())
    n_classes = len(classes) if classes is not None else (int(train.labels.max()) + 1 if len(train) else 0)
    present = sorted(set(train.labels.tolist())) if classes is None else list(range(n_classes))

    chosen: list[np.ndarray] = []
    counts: dict[int, int] = {}
    for label in present:
        pool = np.flatnonzero((train.labels == label) & eligible)
        name = classes[label] if classes is not None else str(label)
        want = len(pool) if k == "all" else int(k)
        if len(pool) < want or len(pool) == 0:
            if not allow_fewer or len(pool) == 0:
                note = f" after excluding {excluded} examples whose group is in val/test" if excluded else ""
                raise DataError(
                    f"class {name!r} has {len(pool)} training examples{note}, fewer than k={k}; "
                    "lower k or allow fewer"
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
