"""Bags: a data source with a group key read as bags of instances, each bag with one label.

A **bag** is a group of images that share one label: a slide's diagnosis over its tiles, a study over its
slices, a smear over its cell crops. Any source whose data block names groups (``group_key`` of an npz source,
``group_column`` of csv/folder/hf sources) can be read as bags (``unit: bag`` in the recipe): each group is a
bag, and

* the bag label is the label its images share, or, when instance labels are unknown or do not decide the bag
  (a bag is positive when it holds one malignant image), the label a **bag-label table** gives it
  (a CSV with columns ``bag_id,label``; labels are class names or class indices);
* a bag whose images disagree is an error unless the table gives its label; a table naming a bag the data does
  not hold is an error too (a typo would silently drop a bag otherwise).

A **bag draw** is the few-shot draw of multiple-instance learning: exactly k *bags* per class, nested across k,
deterministic from (data fingerprint, seed, class). It is made by :func:`hfm.data.episodes.episode` itself on
the table of train bags, whose group is the bag's own group, so the leakage rule (:func:`~hfm.data.episodes.
eligible`: nothing whose group is in val or test) is the one every image draw obeys, not a copy of it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hfm.data.episodes import Draw, episode, group_name
from hfm.data.splits import Splits, Subset
from hfm.errors import DataError


@dataclass(frozen=True)
class Bags:
    """The bags of one split.

    Attributes:
        ids: Bag ids (the group values), sorted.
        labels: Bag label per bag (class index).
        members: Per bag, the positions of its instances in the split (ascending).
    """

    ids: list[str]
    labels: np.ndarray
    members: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    def sizes(self) -> np.ndarray:
        """Instances per bag."""
        return np.array([len(m) for m in self.members], dtype=np.int64)

    def as_subset(self) -> Subset:
        """The bags as a :class:`Subset` of bag ids and labels whose group is the bag itself (for drawing)."""
        return Subset(ids=list(self.ids), labels=self.labels, reader=_no_image, groups=list(self.ids))


def _no_image(i: int) -> Any:  # pragma: no cover - a bag table is drawn from, never read as images
    raise DataError("a bag is not an image: read its instances through its members")


@dataclass(frozen=True)
class BagSplits:
    """Train, val and test bags of one data source (val and test are whole groups, so whole bags)."""

    train: Bags
    val: Bags
    test: Bags
    labelled_by_table: bool = False

    def describe(self) -> dict[str, Any]:
        """Counts recorded in runs and cards (bags and instances per split, how bag labels were given)."""
        return {
            split: {"bags": len(b), "instances": int(b.sizes().sum())}
            for split, b in (("train", self.train), ("val", self.val), ("test", self.test))
        } | {"bag_labels": "table" if self.labelled_by_table else "shared instance label"}


def read_bag_labels(path: str | Path, classes: list[str]) -> tuple[dict[str, int], list[str]]:
    """Read a bag-label table (CSV ``bag_id,label``) into bag id -> class index, and the bag classes.

    When every label is one of the data's ``classes`` (by name or index) the bag classes are the data's;
    otherwise the table defines its own classes (its distinct labels, sorted), as when bags are "positive"
    or "negative" while their images are "malignant" or "benign".

    Raises:
        DataError: Unreadable file, missing columns, a repeated bag id or an empty label.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as err:
        raise DataError(f"bag-label table {path}: cannot read it ({err.strerror or err})") from None
    if not rows or not {"bag_id", "label"} <= set(rows[0]):
        raise DataError(f"bag-label table {path}: needs a header 'bag_id,label' and one row per bag")
    raw: dict[str, str] = {}
    for line, row in enumerate(rows, start=2):
        bag, label = str(row["bag_id"] or "").strip(), str(row["label"] or "").strip()
        if not bag or not label:
            raise DataError(f"bag-label table {path}, line {line}: empty bag_id or label")
        if bag in raw:
            raise DataError(f"bag-label table {path}, line {line}: bag {bag!r} is listed twice")
        raw[bag] = label

    def known(label: str) -> int | None:
        if label in classes:
            return classes.index(label)
        return int(label) if label.isdigit() and int(label) < len(classes) else None

    if all(known(label) is not None for label in raw.values()):
        return {bag: int(known(label)) for bag, label in raw.items()}, list(classes)  # type: ignore[arg-type]
    own = sorted(set(raw.values()))
    if len(own) < 2:
        raise DataError(f"bag-label table {path}: needs at least 2 distinct labels, found {own}")
    return {bag: own.index(label) for bag, label in raw.items()}, own


def bags_of(
    subset: Subset, classes: list[str], table: dict[str, int] | None = None, *, split: str = "train"
) -> Bags:
    """Group ``subset`` into bags by its groups and give each bag its label (see the module docstring).

    Raises:
        DataError: The split has no groups, a bag's images disagree and no table decides it, or the table has
            no label for a bag.
    """
    if subset.groups is None:
        raise DataError(
            "unit: bag needs a data source with groups (group_key for npz, group_column for csv, folder and "
            "hf sources): each group is a bag"
        )
    positions: dict[str, list[int]] = {}
    for i, group in enumerate(subset.groups):
        positions.setdefault(str(group), []).append(i)
    ids = sorted(positions)
    labels = np.zeros(len(ids), dtype=np.int64)
    for b, bag in enumerate(ids):
        if table is not None:
            if bag not in table:
                raise DataError(
                    f"{split} bag {bag!r} has no row in the bag-label table: add 'bag_id,label' for it"
                )
            labels[b] = table[bag]
            continue
        found = sorted(set(subset.labels[positions[bag]].tolist()))
        if len(found) > 1:
            names = ", ".join(classes[c] for c in found)
            raise DataError(
                f"{split} bag {bag!r} holds images of several classes ({names}); give the bag labels in a "
                "bag-label table (bags.labels: a CSV 'bag_id,label')"
            )
        labels[b] = found[0]
    return Bags(ids=ids, labels=labels, members=[np.asarray(positions[b], dtype=np.int64) for b in ids])


def bag_splits(splits: Splits, labels: str | Path | None = None) -> tuple[Splits, BagSplits]:
    """The bags of every split, and the splits as bag runs see them.

    With a bag-label table every bag it names must exist in the data, and every image takes its bag's label
    (the weak label of multiple-instance learning); the returned splits then have the bag classes.

    Raises:
        DataError: See :func:`bags_of`; also a table naming bags the data does not hold.
    """
    table, classes = read_bag_labels(labels, splits.classes) if labels is not None else (None, splits.classes)
    parts = {
        name: bags_of(splits.split(name), splits.classes, table, split=name)
        for name in ("train", "val", "test")
    }
    if table is None:
        return splits, BagSplits(train=parts["train"], val=parts["val"], test=parts["test"])
    known = {b for bags in parts.values() for b in bags.ids}
    unknown = sorted(set(table) - known)
    if unknown:
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise DataError(
            f"bag-label table {labels}: bag id(s) {', '.join(map(repr, unknown[:3]))}{more} are not groups "
            "of the data; fix the ids or the data block's group key"
        )
    relabelled = {}
    for name, bags in parts.items():
        subset = splits.split(name)
        weak = np.zeros(len(subset), dtype=np.int64)
        for label, members in zip(bags.labels, bags.members, strict=True):
            weak[members] = label
        relabelled[name] = Subset(ids=subset.ids, labels=weak, reader=subset.reader, groups=subset.groups)
    bag_view = Splits(**relabelled, classes=classes, source=splits.source, split_info=splits.split_info)
    return bag_view, BagSplits(
        train=parts["train"], val=parts["val"], test=parts["test"], labelled_by_table=True
    )


@dataclass(frozen=True)
class BagDraw(Draw):
    """A draw of bags: ``episode`` indexes the train bags (exactly k per class), ``indices`` their instances.

    Attributes:
        bags: The bags of every split the draw was made from.
    """

    bags: BagSplits | None = None

    @property
    def indices(self) -> np.ndarray:
        """Train positions of the instances of the drawn bags (what the runner embeds)."""
        members = self.members()
        return np.concatenate(members) if members else np.zeros(0, dtype=np.int64)

    def members(self) -> list[np.ndarray]:
        """Train positions of each drawn bag's instances, in draw order."""
        assert self.bags is not None
        return [self.bags.train.members[int(b)] for b in self.episode.indices]

    def labelled(self, train: Subset) -> Subset:
        """The instances of the drawn bags as a subset of ``train``."""
        return train.take([int(i) for i in self.indices])

    def to_dict(self, train: Subset | None = None) -> dict[str, Any]:
        """The bag episode's record plus the unit, the instances per drawn bag and the bag counts."""
        out = super().to_dict(train)
        out["unit"] = "bag"
        out["instances"] = [int(len(m)) for m in self.members()]
        if self.bags is not None:
            out["bags"] = self.bags.describe()
        return out


def bag_draw(
    splits: Splits, bags: BagSplits, k: int | Literal["all"], seed: int, *, allow_fewer: bool = False
) -> BagDraw:
    """Exactly ``k`` train bags per class, nested across k, none whose group is in val or test.

    The bags are drawn by :func:`hfm.data.episodes.episode` on the table of train bags (seeded by the data
    fingerprint), excluding the val/test groups exactly as image draws do.
    """
    held = splits.heldout_groups()
    drawn = episode(
        bags.train.as_subset(),
        k,
        seed,
        group_key=group_name(splits),
        exclude_groups=held,
        allow_fewer=allow_fewer,
        fingerprint=splits.fingerprint,
        classes=splits.classes,
    )
    return BagDraw(episode=drawn, pool=np.zeros(0, dtype=np.int64), bags=bags)
