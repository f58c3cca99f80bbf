"""What every data source returns: train / val / test subsets, class names, optional groups."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hfm.data.content import content_fingerprint


@dataclass
class Subset:
    """One split: example ids, integer labels, optional groups, and a way to read each image.

    Attributes:
        ids: Stable example ids (relative paths, ``split/index`` for arrays); never absolute paths.
        labels: Integer class indices, shape ``(N,)``.
        groups: Group per example (patient, slide, study) or ``None``.
        reader: ``reader(i)`` returns image ``i`` as a PIL image or array (grey, RGB, RGBA, 8/16-bit).
    """

    ids: list[str]
    labels: np.ndarray
    reader: Callable[[int], Any]
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.ids) != len(self.labels):
            raise ValueError(f"{len(self.ids)} example ids but {len(self.labels)} labels")
        if self.groups is not None and len(self.groups) != len(self.ids):
            raise ValueError(f"{len(self.ids)} example ids but {len(self.groups)} groups")

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, i: int) -> Any:
        """Image ``i`` as the source stores it (PIL image or array)."""
        return self.reader(i)

    def take(self, indices: Sequence[int]) -> Subset:
        """A subset of this subset, by position (picklable, so it can feed DataLoader workers)."""
        idx = [int(i) for i in indices]
        return Subset(
            ids=[self.ids[i] for i in idx],
            labels=self.labels[idx] if idx else np.zeros(0, dtype=np.int64),
            reader=_TakeReader(self.reader, idx),
            groups=None if self.groups is None else [self.groups[i] for i in idx],
        )

    def fingerprint(self) -> str:
        """Hash of example ids and labels (order-sensitive)."""
        h = hashlib.sha256()
        for example_id, label in zip(self.ids, self.labels.tolist(), strict=True):
            h.update(f"{example_id}\t{label}\n".encode())
        return h.hexdigest()

    def content_fingerprint(self) -> str | None:
        """Hash of the content of every image (see :mod:`hfm.data.content`); ``None`` when the reader has none.

        Unlike :meth:`fingerprint` (which seeds the draws), it changes whenever a file's bytes change.
        """
        digests = getattr(self.reader, "content_digests", None)
        return content_fingerprint(digests()) if callable(digests) else None  # None: digests unknown


def concat(parts: Sequence[Subset], ids: Sequence[str] | None = None) -> Subset:
    """One subset holding ``parts`` one after another (groups are dropped).

    Args:
        parts: The subsets, in order.
        ids: The concatenation's example ids (default: the parts' own); give them when ids may repeat across parts.
    """
    return Subset(
        ids=list(ids) if ids is not None else [i for p in parts for i in p.ids],
        labels=np.concatenate([p.labels for p in parts]) if parts else np.zeros(0, dtype=np.int64),
        reader=_ConcatReader([p.reader for p in parts], [len(p) for p in parts]),
    )


class _ConcatReader:
    """Reads image ``j`` of a concatenation from the part it falls in (a class, so it pickles)."""

    def __init__(self, readers: Sequence[Callable[[int], Any]], sizes: Sequence[int]) -> None:
        self.readers = list(readers)
        self.starts = np.cumsum([0, *sizes])

    def __call__(self, j: int) -> Any:
        part = int(np.searchsorted(self.starts, j, side="right")) - 1
        return self.readers[part](j - int(self.starts[part]))


class _TakeReader:
    """Reads image ``j`` of a taken subset as image ``indices[j]`` of its parent (a class, so it pickles)."""

    def __init__(self, reader: Callable[[int], Any], indices: list[int]) -> None:
        self.reader = reader
        self.indices = indices

    def __call__(self, j: int) -> Any:
        return self.reader(self.indices[j])

    def content_digests(self) -> list[str] | None:
        """The parent's content digests of the taken images; ``None`` when the parent reader has none."""
        parent = getattr(self.reader, "content_digests", None)
        digests = parent() if callable(parent) else None
        return None if digests is None else [digests[i] for i in self.indices]


@dataclass
class Splits:
    """A labelled dataset in three splits.

    Attributes:
        train: Pool the few-shot episodes are drawn from.
        val: Model selection (probe regularisation, early stopping); never enters an episode.
        test: Reported metrics only.
        classes: Class names; label ``i`` is ``classes[i]``.
        source: The typed source block that made it (JSON-ready), recorded in runs and cards.
        split_info: How val/test were made when the source had none (seed, fractions, group-aware).
    """

    train: Subset
    val: Subset
    test: Subset
    classes: list[str]
    source: dict[str, Any] = field(default_factory=dict)
    split_info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def fingerprint(self) -> str:
        """Identifies this dataset version: a hash over each split's ids and labels and the class names."""
        payload = {
            "classes": self.classes,
            "train": self.train.fingerprint(),
            "val": self.val.fingerprint(),
            "test": self.test.fingerprint(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def heldout_groups(self) -> set[str]:
        """Groups (patients, slides) that appear in val or test: never allowed into a few-shot episode."""
        held: set[str] = set()
        for subset in (self.val, self.test):
            if subset.groups is not None:
                held.update(subset.groups)
        return held

    def split(self, name: str) -> Subset:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}: use train, val or test")
        subset: Subset = getattr(self, name)
        return subset
