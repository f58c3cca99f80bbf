"""Bags in the data layer: bag labels, bag-label tables, bag draws (exact k, nested, no val/test group)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hfm.data.bags import bag_draw, bag_splits, bags_of
from hfm.data.splits import Splits, Subset
from hfm.errors import DataError

CLASSES = ["negative", "positive"]


def _subset(groups: list[str], labels: list[int]) -> Subset:
    return Subset(ids=[f"im{i}" for i in range(len(groups))], labels=np.array(labels), reader=lambda i: None,
                  groups=groups)  # fmt: skip


def _splits(n_train_bags: int = 8, shared: str | None = None) -> Splits:
    """Train bags b00.. alternate classes with 3 images each; test holds bag t0 (and ``shared`` if given)."""
    groups = [f"b{b:02d}" for b in range(n_train_bags) for _ in range(3)]
    labels = [b % 2 for b in range(n_train_bags) for _ in range(3)]
    test_groups = ["t0", "t0"] + ([shared] if shared else [])
    test_labels = [1, 1] + ([int(shared[-1]) % 2] if shared else [])
    return Splits(train=_subset(groups, labels), val=_subset(["v0", "v1"], [0, 1]),
                  test=_subset(test_groups, test_labels), classes=CLASSES)  # fmt: skip


def test_a_bag_is_a_group_with_its_images_label() -> None:
    bags = bags_of(_subset(["a", "b", "a", "b"], [1, 0, 1, 0]), CLASSES)
    assert bags.ids == ["a", "b"]
    assert bags.labels.tolist() == [1, 0]
    assert [m.tolist() for m in bags.members] == [[0, 2], [1, 3]]


def test_disagreeing_labels_are_an_error_unless_a_table_decides(tmp_path: Path) -> None:
    mixed = _subset(["a", "a", "b"], [0, 1, 0])
    with pytest.raises(DataError, match=r"bag 'a' holds images of several classes \(negative, positive\)"):
        bags_of(mixed, CLASSES)
    assert bags_of(mixed, CLASSES, {"a": 1, "b": 0}).labels.tolist() == [1, 0]


def test_bag_label_table_names_known_bags_only(tmp_path: Path) -> None:
    splits = _splits(4)
    table = tmp_path / "labels.csv"
    rows = [f"b{b:02d},{CLASSES[(b + 1) % 2]}" for b in range(4)] + ["v0,0", "v1,1", "t0,positive"]
    table.write_text("bag_id,label\n" + "\n".join(rows) + "\n")
    view, bags = bag_splits(splits, table)
    assert bags.train.labels.tolist() == [1, 0, 1, 0]  # the table wins over the images' labels
    assert view.train.labels.tolist() == [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0]  # images take their bag's label
    assert bags.labelled_by_table and view.classes == CLASSES
    table.write_text("bag_id,label\n" + "\n".join([*rows, "ghost,0"]) + "\n")
    with pytest.raises(DataError, match="'ghost' are not groups of the data"):
        bag_splits(splits, table)
    table.write_text("bag_id,label\n" + "\n".join(rows[1:]) + "\n")
    with pytest.raises(DataError, match="train bag 'b00' has no row in the bag-label table"):
        bag_splits(splits, table)
    table.write_text("bag_id,label\nb00,maybe\n")
    with pytest.raises(DataError, match="at least 2 distinct labels"):
        bag_splits(splits, table)


def test_a_table_may_name_its_own_bag_classes(tmp_path: Path) -> None:
    splits = _splits(4)
    table = tmp_path / "labels.csv"
    names = {"b00": "yes", "b01": "no", "b02": "no", "b03": "yes", "v0": "no", "v1": "yes", "t0": "yes"}
    table.write_text("bag_id,label\n" + "".join(f"{b},{y}\n" for b, y in names.items()))
    view, bags = bag_splits(splits, table)
    assert view.classes == ["no", "yes"]
    assert bags.train.labels.tolist() == [1, 0, 0, 1]
    assert view.test.labels.tolist() == [1, 1]


def test_bags_need_groups() -> None:
    plain = Subset(ids=["a"], labels=np.array([0]), reader=lambda i: None)
    with pytest.raises(DataError, match="unit: bag needs a data source with groups"):
        bags_of(plain, CLASSES)


def test_bag_draws_are_exact_k_per_class_and_nested() -> None:
    splits = _splits(12)
    _, bags = bag_splits(splits)
    previous: set[str] = set()
    for k in (1, 2, 4):
        drawn = bag_draw(splits, bags, k, seed=3)
        labels = drawn.episode.labels.tolist()
        assert labels.count(0) == labels.count(1) == k
        assert previous <= set(drawn.episode.ids)  # nested across k
        previous = set(drawn.episode.ids)
        # the instances are exactly those of the drawn bags, with their bag's label
        members = [bags.train.members[int(b)] for b in drawn.episode.indices]
        assert drawn.indices.tolist() == np.concatenate(members).tolist()
        assert {splits.train.groups[i] for i in drawn.indices} == set(drawn.episode.ids)
    other = bag_draw(splits, bags, 4, seed=4)
    assert set(other.episode.ids) != previous  # seeds differ
    assert bag_draw(splits, bags, 4, seed=3).episode.ids == bag_draw(splits, bags, 4, seed=3).episode.ids


def test_bag_draws_never_take_a_group_of_val_or_test() -> None:
    splits = _splits(6, shared="b01")  # bag b01 also has an image in test
    _, bags = bag_splits(splits)
    drawn = bag_draw(splits, bags, "all", seed=0)
    assert "b01" not in drawn.episode.ids
    assert drawn.episode.excluded == 1
    with pytest.raises(DataError, match="fewer than k=3"):
        bag_draw(splits, bags, 3, seed=0)  # class 1 has b03, b05 left
