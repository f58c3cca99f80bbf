"""``hfm.data.splits.concat``: one subset over several (pretraining sources, unlabelled pools, federated sites)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hfm.data import load_data
from hfm.data.splits import Subset, concat


def _part(name: str, n: int, label: int) -> Subset:
    return Subset(
        ids=[f"{name}{i}" for i in range(n)], labels=[label] * n, reader=lambda i, name=name: (name, i)
    )


def test_each_image_is_read_from_the_part_that_holds_it() -> None:
    parts = [_part("a", 2, 0), _part("b", 0, 1), _part("c", 3, 1)]
    joined = concat(parts)
    assert joined.ids == ["a0", "a1", "c0", "c1", "c2"]
    assert joined.labels.tolist() == [0, 0, 1, 1, 1]
    assert [joined.image(j) for j in range(len(joined))] == [("a", 0), ("a", 1), ("c", 0), ("c", 1), ("c", 2)]
    assert concat([]).labels.shape == (0,)


def test_ids_can_be_given_and_must_match_the_length() -> None:
    parts = [_part("x", 2, 0), _part("x", 2, 1)]  # the same ids in both parts
    joined = concat(parts, ids=[f"{j}/{x}" for j, p in enumerate(parts) for x in p.ids])
    assert joined.ids == ["0/x0", "0/x1", "1/x0", "1/x1"]
    with pytest.raises(ValueError, match="example ids"):
        concat(parts, ids=["only-one"])


def test_a_concatenation_of_real_subsets_pickles_for_dataloader_workers() -> None:
    splits = load_data({"type": "synthetic", "n_classes": 2, "n_per_class": 4, "size": 16, "seed": 0})
    joined = pickle.loads(pickle.dumps(concat([splits.train, splits.val])))
    n = len(splits.train)
    assert np.array_equal(np.asarray(joined.image(n)), np.asarray(splits.val.image(0)))
    assert np.array_equal(np.asarray(joined.image(n - 1)), np.asarray(splits.train.image(n - 1)))
