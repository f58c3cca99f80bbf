from __future__ import annotations

import numpy as np

from hfm.data.partition import carve, derive_seed


def test_derive_seed_is_a_fixed_function() -> None:
    assert derive_seed("episode", "abc", 0, 1) == derive_seed("episode", "abc", 0, 1)
    assert derive_seed("a", 1) != derive_seed("a", 2)
    # Pinned: a change here would silently change every split and episode ever recorded.
    assert derive_seed("x") == 4949498559009812781
    assert derive_seed("episode", "abc", 0, 1) == 853681207346398807


def test_exact_stratification_without_groups() -> None:
    labels = np.repeat([0, 1, 2], [100, 50, 20])
    parts = carve(labels, None, {"test": 0.2, "val": 0.1}, seed=0)
    assert np.bincount(labels[parts["test"]]).tolist() == [20, 10, 4]
    assert np.bincount(labels[parts["val"]]).tolist() == [10, 5, 2]
    every = np.concatenate(list(parts.values()))
    assert sorted(every.tolist()) == list(range(len(labels)))
    again = carve(labels, None, {"test": 0.2, "val": 0.1}, seed=0)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    other = carve(labels, None, {"test": 0.2, "val": 0.1}, seed=1)
    assert not np.array_equal(parts["test"], other["test"])


def test_groups_stay_whole_and_small_classes_reach_every_split() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    groups = [f"patient{i // 5}" for i in range(300)]
    parts = carve(labels, groups, {"test": 0.2, "val": 0.15}, seed=3)
    owner = {}
    for name, idx in parts.items():
        for i in idx:
            assert owner.setdefault(groups[i], name) == name
    assert 0.1 < len(parts["test"]) / 300 < 0.3
    tiny = carve(np.array([0, 0, 0, 1, 1, 1]), None, {"test": 0.1, "val": 0.1}, seed=0)
    for name in ("train", "val", "test"):
        assert sorted(set(np.array([0, 0, 0, 1, 1, 1])[tiny[name]].tolist())) == [0, 1]
