"""Active-learning samplers on cached embeddings: budget, no duplicates, leakage, determinism, coverage."""

from __future__ import annotations

import numpy as np
import pytest

from hfm.data.splits import Splits, Subset
from hfm.errors import DataError, MethodError
from hfm.methods.samplers import get_sampler, list_samplers, query_round, round_budgets, simulate

COLD = ["random", "typiclust", "probcover", "kcenter", "class-balanced"]
WARM = ["margin", "entropy", "badge"]


def clusters(
    n_clusters: int, per_cluster: int, sizes: list[int] | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian clusters in 16 dimensions: one cluster per class; returns (points, labels)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[:n_clusters] * 10.0
    sizes = sizes or [per_cluster] * n_clusters
    points = np.concatenate(
        [c + rng.normal(scale=0.3, size=(n, 16)) for c, n in zip(centres, sizes, strict=True)]
    )
    labels = np.concatenate([np.full(n, i) for i, n in enumerate(sizes)])
    return points, labels


def make_splits(labels: np.ndarray, groups: list[str] | None = None, held: str | None = None) -> Splits:
    """Splits whose train holds ``labels``; val/test hold the group ``held`` (so it is never eligible)."""
    ids = [f"img{i}" for i in range(len(labels))]
    train = Subset(ids=ids, labels=labels, reader=lambda i: None, groups=groups)
    n_classes = int(labels.max()) + 1
    other = Subset(
        ids=[f"v{c}" for c in range(n_classes)],
        labels=np.arange(n_classes),
        reader=lambda i: None,
        groups=None if groups is None else [held or "none"] * n_classes,
    )
    return Splits(train=train, val=other, test=other, classes=[f"c{c}" for c in range(n_classes)])


def test_registry_lists_the_strategies() -> None:
    assert set(COLD + WARM) <= set(list_samplers())
    with pytest.raises(MethodError, match="unknown sampler 'nope'"):
        get_sampler("nope")


@pytest.mark.parametrize("name", COLD + WARM)
def test_budget_no_duplicates_deterministic(name: str) -> None:
    x, y = clusters(4, 15)
    splits = make_splits(y)
    first = simulate(splits, x, name, budget=9, seed=3, rounds=3)
    again = simulate(splits, x, name, budget=9, seed=3, rounds=3)
    chosen = first.indices.tolist()
    assert len(chosen) == 9 and len(set(chosen)) == 9
    assert chosen == again.indices.tolist()
    assert [len(r.indices) for r in first.rounds] == [3, 3, 3]
    assert set(first.pool.tolist()).isdisjoint(chosen)
    assert len(first.pool) + 9 == len(y)
    assert first.episode.labels.tolist() == y[chosen].tolist()


def test_seeds_differ_for_random() -> None:
    x, y = clusters(4, 15)
    splits = make_splits(y)
    a = simulate(splits, x, "random", budget=6, seed=0).indices.tolist()
    b = simulate(splits, x, "random", budget=6, seed=1).indices.tolist()
    assert a != b


@pytest.mark.parametrize("name", COLD + WARM)
def test_never_a_held_out_group(name: str) -> None:
    x, y = clusters(3, 20)
    groups = [f"p{i % 10}" for i in range(len(y))]
    splits = make_splits(y, groups=groups, held="p0")
    drawn = simulate(splits, x, name, budget=20, seed=0, rounds=2)
    held = {i for i, g in enumerate(groups) if g == "p0"}
    assert held.isdisjoint(drawn.indices.tolist())
    assert held.isdisjoint(drawn.pool.tolist())


def test_budget_larger_than_pool_is_one_line() -> None:
    x, y = clusters(2, 5)
    with pytest.raises(DataError, match="budget 11 is larger than the 10 unlabelled eligible images"):
        simulate(make_splits(y), x, "typiclust", budget=11, seed=0)


def test_uncertainty_refuses_a_cold_start() -> None:
    x, y = clusters(2, 5)
    allowed = np.ones(len(y), dtype=bool)
    with pytest.raises(MethodError, match="needs labels from an earlier round"):
        query_round("margin", x, allowed, {}, 2, n_classes=2, seed=0, round_no=0)


def test_uncertainty_rounds_start_from_a_cold_strategy() -> None:
    x, y = clusters(3, 10)
    drawn = simulate(make_splits(y), x, "margin", budget=6, seed=0, rounds=2)
    assert [r.strategy for r in drawn.rounds] == ["typiclust", "margin"]


def test_round_budgets() -> None:
    assert round_budgets(10, 3) == [4, 3, 3]
    assert round_budgets(2, 4) == [1, 1]


def test_class_balanced_is_nested_and_balanced() -> None:
    x, y = clusters(3, 10)
    splits = make_splits(y)
    small = simulate(splits, x, "class-balanced", budget=3, seed=2).indices.tolist()
    large = simulate(splits, x, "class-balanced", budget=6, seed=2).indices.tolist()
    assert set(small) <= set(large)
    assert np.bincount(y[large]).tolist() == [2, 2, 2]


@pytest.mark.parametrize("name", ["typiclust", "probcover"])
def test_cold_start_covers_every_cluster_where_random_does_not(name: str) -> None:
    # 8 clusters of very different sizes: random picks mostly from the large ones.
    sizes = [120, 60, 30, 12, 8, 6, 5, 5]
    x, y = clusters(8, 0, sizes=sizes)
    splits = make_splits(y)
    covered = [len(set(y[simulate(splits, x, name, budget=8, seed=s).indices])) for s in range(5)]
    random = [len(set(y[simulate(splits, x, "random", budget=8, seed=s).indices])) for s in range(5)]
    assert np.mean(covered) >= 7.5
    assert np.mean(random) < 6.5
