"""``load_data(source) -> Splits``: one entry point over every source type.

Each source module returns the splits it has (``train``/``val``/``test``, or ``all`` when it has none)
in a :class:`~hfm.data.registry.Raw`; this module makes the missing splits (stratified, group-aware, seeded),
checks the classes and records how the splits were made in ``Splits.split_info``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from hfm.data.images import screening_at_load
from hfm.data.partition import carve
from hfm.data.registry import AutoSplit, parse_source
from hfm.data.splits import Splits, Subset
from hfm.errors import DataError


def load_data(source: Any) -> Splits:
    """Load a labelled dataset as train / val / test :class:`~hfm.data.splits.Splits`.

    Args:
        source: A source block (a registered :class:`hfm.data.registry.SourceBlock`) or the dict a recipe holds,
            e.g. ``{"type": "npz", "path": "breastmnist.npz"}``.

    Returns:
        Splits whose ``source`` is the block as JSON and whose ``split_info`` says how val/test were made.

    Raises:
        ConfigError: The block is invalid (names the field).
        DataError: The data is unusable (names the file and field, class or row).
    """
    config = parse_source(source)
    raw = config.load()
    splits, split_info = complete_splits(raw.parts, config.split, where=raw.where)
    split_info.update(raw.info)
    check_classes(splits, raw.classes, where=raw.where)
    if screening_at_load():  # the duplicate check hashes the val/test files
        report_data_problems(raw.where, splits, split_info)
    return Splits(
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        classes=list(raw.classes),
        source=config.model_dump(mode="json"),
        split_info=split_info,
    )


def complete_splits(
    parts: dict[str, Subset], auto: AutoSplit, *, where: str
) -> tuple[dict[str, Subset], dict[str, Any]]:
    """Make any missing val/test split out of the pool (``train`` or ``all``), whole groups at a time."""
    if "all" in parts:
        pool, missing = parts["all"], ["test", "val"]
        made_from = "all"
    else:
        if "train" not in parts:
            raise DataError(f"{where}: no 'train' split found (splits present: {', '.join(sorted(parts))})")
        pool = parts["train"]
        missing = [name for name in ("test", "val") if name not in parts]
        made_from = "train"
    if not missing:
        return dict(parts), {"made_by": "source"}
    fractions = {name: getattr(auto, name) for name in missing}
    if made_from == "train" and len(missing) == 1:
        # Only one split missing: take its fraction of the whole, from the train pool.
        fractions = {
            missing[0]: min(
                0.9, getattr(auto, missing[0]) / (1.0 - auto.test if missing[0] == "val" else 1.0)
            )
        }
    positions = carve(pool.labels, pool.groups, fractions, auto.seed)
    out = {name: subset for name, subset in parts.items() if name != "all"}
    out["train"] = pool.take(positions["train"].tolist())
    for name in missing:
        out[name] = pool.take(positions[name].tolist())
    info = {
        "made_by": "hfm",
        "made": missing,
        "from": made_from,
        "seed": auto.seed,
        "fractions": fractions,
        "stratified": True,
        "group_aware": pool.groups is not None,
    }
    return out, info


def check_classes(splits: dict[str, Subset], classes: list[str], *, where: str) -> None:
    """Every class must have training examples; every label must name a class."""
    if len(classes) < 2:
        raise DataError(f"{where}: found {len(classes)} class(es); classification needs at least 2")
    if len(set(classes)) != len(classes):
        raise DataError(f"{where}: class names are not unique: {classes}")
    for name, subset in splits.items():
        if len(subset) and (subset.labels.min() < 0 or subset.labels.max() >= len(classes)):
            bad = int(subset.labels.max() if subset.labels.max() >= len(classes) else subset.labels.min())
            raise DataError(
                f"{where}: {name} label {bad} is not a class index (0..{len(classes) - 1}); "
                "fix the labels or list the class names in 'classes'"
            )
    seen = set(splits["train"].labels.tolist())
    for name in ("val", "test"):
        held = splits.get(name)
        unseen = sorted(set(held.labels.tolist()) - seen) if held is not None else []
        if unseen:
            raise DataError(
                f"{where}: {name} label {classes[unseen[0]]!r} (index {unseen[0]}) never appears in train; fix "
                f"the labels or drop those {name} images"
            )
    counts = np.bincount(splits["train"].labels, minlength=len(classes))
    for index, count in enumerate(counts.tolist()):
        if count == 0:
            raise DataError(
                f"{where}: class {classes[index]!r} has no training examples; add images or drop the class"
            )


def report_data_problems(where: str, splits: dict[str, Subset], split_info: dict[str, Any]) -> None:
    """Say on stderr what loading left out (``on_error: skip``) and which images recur across splits.

    Identical images in train and val/test (by content digest, :mod:`hfm.data.content`) inflate test metrics;
    public medical sets often hold such duplicates, so they are counted and reported, not removed.
    """
    skipped = int(split_info.get("skipped_files", 0))
    if skipped:
        first = ", ".join(split_info.get("skipped", [])[:3])
        sys.stderr.write(
            f"hfm: {where}: skipped {skipped} unreadable image(s) (on_error: skip), e.g. {first}\n"
        )
    digests: dict[str, list[str] | None] = {}
    for name in ("train", "val", "test"):
        read = getattr(splits[name].reader, "content_digests", None)
        digests[name] = read() if callable(read) else None
    train = set(digests["train"] or [])
    if not train:
        return
    for name in ("val", "test"):
        held = digests[name]
        if not held:
            continue
        same = sum(1 for digest in held if digest in train)
        if same:
            split_info[f"duplicates_train_{name}"] = same
            sys.stderr.write(
                f"hfm: {where}: {same} of {len(held)} {name} image(s) are byte-identical to train images; "
                f"{name} metrics are optimistic until the duplicates are removed\n"
            )
