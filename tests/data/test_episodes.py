from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hfm.data import Episode, episode, load_data
from hfm.data.splits import Subset
from hfm.errors import DataError


def _subset(labels: list[int], groups: list[str] | None = None) -> Subset:
    return Subset(
        ids=[f"train/{i}" for i in range(len(labels))], labels=np.array(labels), reader=int, groups=groups
    )


@st.composite
def pools(draw: st.DrawFn) -> tuple[list[int], list[str], set[str]]:
    n_classes = draw(st.integers(2, 5))
    labels = draw(st.lists(st.integers(0, n_classes - 1), min_size=n_classes * 6, max_size=120))
    n_groups = draw(st.integers(3, 30))
    groups = [f"g{draw(st.integers(0, n_groups - 1))}" for _ in labels]
    held = set(draw(st.lists(st.sampled_from(sorted(set(groups))), max_size=3)))
    return labels, groups, held


@settings(max_examples=60, deadline=None)
@given(pool=pools(), seed=st.integers(0, 2**31), k_small=st.integers(1, 4), k_extra=st.integers(0, 4))
def test_exact_nested_deterministic_and_leak_free(
    pool: tuple[list[int], list[str], set[str]], seed: int, k_small: int, k_extra: int
) -> None:
    labels, groups, held = pool
    train = _subset(labels, groups)
    k_big = k_small + k_extra
    eligible = np.array([g not in held for g in groups])
    counts = np.bincount(np.array(labels)[eligible], minlength=max(labels) + 1)
    present = sorted(set(labels))
    if min(counts[present]) < k_big:
        with pytest.raises(DataError, match=r"class '\d+' has \d+ training examples"):
            episode(train, k_big, seed, exclude_groups=held)
        few = (
            episode(train, k_big, seed, exclude_groups=held, allow_fewer=True)
            if min(counts[present])
            else None
        )
        if few is not None:
            assert all(few.counts[c] == min(k_big, counts[c]) for c in present)
        return
    small = episode(train, k_small, seed, exclude_groups=held)
    big = episode(train, k_big, seed, exclude_groups=held)
    for shots, k in ((small, k_small), (big, k_big)):
        assert np.bincount(shots.labels, minlength=max(labels) + 1)[present].tolist() == [k] * len(present)
        assert len(set(shots.indices.tolist())) == len(shots)
        assert not {groups[i] for i in shots.indices} & held
        np.testing.assert_array_equal(shots.labels, np.array(labels)[shots.indices])
    assert set(small.ids) <= set(big.ids)
    again = episode(_subset(labels, groups), k_big, seed, exclude_groups=set(held))
    assert again.ids == big.ids


def test_seeds_differ_and_fingerprint_matters() -> None:
    train = _subset([0, 1] * 50)
    a, b = episode(train, 5, 0), episode(train, 5, 1)
    assert set(a.ids) != set(b.ids)
    assert episode(train, 5, 0, fingerprint="other").ids != a.ids
    assert episode(train, 5, 0).ids == a.ids


def test_pinned_draw_is_machine_independent() -> None:
    """The same (fingerprint, k, seed) must give these ids forever (PCG64 + sha256, no global state)."""
    np.random.seed(123)  # global state must not matter
    shots = episode(_subset([0, 1, 2] * 10), 2, 7, fingerprint="fixed")
    assert shots.ids == PINNED


PINNED = ["train/9", "train/12", "train/19", "train/10", "train/11", "train/14"]


def test_k_all_and_bad_k() -> None:
    train = _subset([0, 0, 0, 1, 1])
    assert episode(train, "all", 0).counts == {0: 3, 1: 2}
    assert len(episode(train, 0, 0).indices) == 0  # k = 0 (zero-shot) labels nothing
    for bad in (-1, 1.5, "three", True):
        with pytest.raises(DataError, match="k must be a non-negative integer or 'all'"):
            episode(train, bad, 0)  # type: ignore[arg-type]


def test_error_names_class_and_count() -> None:
    splits = load_data({"type": "synthetic", "n_per_class": 3})
    with pytest.raises(DataError, match=r"class 'blob' has 3 training examples, fewer than k=4"):
        episode(splits, 4, 0)
    assert episode(splits, 4, 0, allow_fewer=True).counts == {0: 3, 1: 3, 2: 3}


def test_splits_exclude_heldout_groups_automatically() -> None:
    labels = [0, 1] * 10
    train = _subset(labels, [f"p{i % 5}" for i in range(20)])
    val = _subset([0, 1], ["p0", "p1"])
    from hfm.data.splits import Splits

    splits = Splits(train=train, val=val, test=_subset([0, 1], ["p2", "p2"]), classes=["a", "b"])
    shots = episode(splits, "all", 0, group_key="patient")
    assert {train.groups[i] for i in shots.indices} == {"p3", "p4"}  # type: ignore[index]
    assert shots.excluded == 12 and shots.fingerprint == splits.fingerprint
    with pytest.raises(DataError, match="group_key 'patient' given but the training split has no groups"):
        episode(_subset(labels), 1, 0, group_key="patient")


def test_json_round_trip_rebuilds_the_subset(tmp_path: Path) -> None:
    splits = load_data({"type": "synthetic", "n_per_class": 6})
    shots = episode(splits, 2, 3)
    path = shots.save(tmp_path / "run" / "episode.json")
    loaded = Episode.load(path)
    assert loaded.ids == shots.ids and loaded.k == 2 and loaded.seed == 3
    assert loaded.fingerprint == splits.fingerprint
    np.testing.assert_array_equal(loaded.labels, shots.labels)
    subset = loaded.subset(splits.train)
    assert subset.ids == shots.ids
    np.testing.assert_array_equal(subset.image(0), splits.train.image(int(shots.indices[0])))
    other = load_data({"type": "synthetic", "n_per_class": 6, "seed": 9})
    assert loaded.subset(other.train).ids == shots.ids  # same ids: same positions are fine
    with pytest.raises(DataError, match="episode does not match"):
        loaded.subset(load_data({"type": "synthetic", "n_per_class": 2}).train)
    with pytest.raises(DataError, match="not a readable episode file"):
        Episode.load(tmp_path / "missing.json")


@settings(max_examples=40, deadline=None)
@given(pool=pools(), seed=st.integers(0, 2**31), k=st.integers(1, 3))
def test_draw_pool_is_train_minus_labelled_minus_heldout_groups(
    pool: tuple[list[int], list[str], set[str]], seed: int, k: int
) -> None:
    """The draw's labelled part is the episode; its pool is every other eligible example, nothing more."""
    from hfm.data.episodes import draw
    from hfm.data.splits import Splits

    labels, groups, held = pool
    train = _subset(labels, groups)
    heldout = sorted(held) or ["none"]
    splits = Splits(
        train=train,
        val=_subset([0] * len(heldout), heldout),
        test=_subset([1], [heldout[0]]),
        classes=[str(c) for c in range(max(labels) + 1)],
        source={"type": "csv", "group_column": "patient"},
    )
    try:
        drawn = draw(splits, k, seed, allow_fewer=True)
    except DataError:
        return  # a class with no eligible example: the episode's own error
    same = episode(splits, k, seed, group_key="patient", allow_fewer=True)
    assert drawn.episode.ids == same.ids and drawn.episode.group_key == "patient"
    labelled, pooled = set(drawn.indices.tolist()), set(drawn.pool.tolist())
    assert not labelled & pooled
    eligible = {i for i, g in enumerate(groups) if g not in held}
    assert pooled == eligible - labelled
    assert drawn.pool.tolist() == sorted(pooled)
    record = drawn.to_dict(train)
    assert record["pool"]["size"] == len(pooled) and record["rounds"] == []
    assert record["ids"] == same.ids


def test_group_name_comes_from_the_data_source_alone() -> None:
    from hfm.data.episodes import group_name
    from hfm.data.splits import Splits

    grouped = _subset([0, 1], ["p0", "p1"])
    plain = _subset([0, 1])
    make = lambda train, source: Splits(train=train, val=plain, test=plain, classes=["a", "b"], source=source)  # noqa: E731
    assert group_name(make(grouped, {"type": "csv", "group_column": "patient"})) == "patient"
    assert group_name(make(grouped, {"type": "npz", "group_key": "slide"})) == "slide"
    assert group_name(make(grouped, {"type": "dicom"})) == "group"
    assert group_name(make(plain, {"type": "csv", "group_column": "patient"})) is None
