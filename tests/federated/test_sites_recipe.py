"""Simulated sites and the federated recipe schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hfm.data.load import load_data
from hfm.errors import ConfigError, DataError
from hfm.federated.recipe import parse
from hfm.federated.sites import simulate

from .conftest import SYNTHETIC

BIG = {**SYNTHETIC, "n_per_class": 60, "n_test_per_class": 30}


@pytest.mark.parametrize("scheme", ["iid", "dirichlet"])
def test_sites_partition_every_split_exactly_once(scheme: str) -> None:
    splits = load_data(BIG)
    sites = simulate(splits, 4, scheme, alpha=0.3, seed=1)  # type: ignore[arg-type]
    for name in ("train", "val", "test"):
        ids = [x for s in sites for x in getattr(s.splits, name).ids]
        assert sorted(ids) == sorted(getattr(splits, name).ids)
    again = simulate(splits, 4, scheme, alpha=0.3, seed=1)  # type: ignore[arg-type]
    assert [s.splits.train.ids for s in sites] == [s.splits.train.ids for s in again]
    other = simulate(splits, 4, scheme, alpha=0.3, seed=2)  # type: ignore[arg-type]
    assert [s.splits.train.ids for s in sites] != [s.splits.train.ids for s in other]


def _skew(sites: Any) -> float:
    """Mean total-variation distance between a site's label mix and the overall one."""
    counts = np.array([np.bincount(s.splits.train.labels, minlength=3) for s in sites], dtype=float)
    overall = counts.sum(0) / counts.sum()
    mixes = counts / counts.sum(1, keepdims=True)
    return float(np.abs(mixes - overall).sum(1).mean() / 2)


def test_dirichlet_sites_are_label_skewed_and_iid_sites_are_not() -> None:
    splits = load_data(BIG)
    iid = _skew(simulate(splits, 3, "iid", seed=0))
    skewed = _skew(simulate(splits, 3, "dirichlet", alpha=0.2, seed=0))
    assert iid < 0.15 < skewed


def test_a_site_without_training_examples_is_a_clear_error() -> None:
    splits = load_data({**SYNTHETIC, "n_per_class": 1})
    with pytest.raises(DataError, match="received no training example"):
        simulate(splits, 8, "iid", seed=0)


RECIPE = {
    "backbone": {"name": "radiology/rad-dino", "twin": True},
    "data": SYNTHETIC,
    "split": {"scheme": "iid", "sites": 3},
    "preset": "probe/logreg",
    "shots": 2,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sites": [{"name": "a", "data": SYNTHETIC}, {"name": "b", "data": SYNTHETIC}]}, "not both"),
        ({"split": None}, "give sites"),
        ({"federation": {"strategy": "fedavg", "proximal_mu": 0.1}}, "fedprox only"),
        ({"federation": {"min_sites": 4}}, "exceeds the 3 sites"),
        ({"federation": {"rounds": 0}}, "federation.rounds"),
        ({"split": {"scheme": "iid", "sites": 1}}, "split.sites"),
        ({"shots": [0]}, "positive integers"),
        ({"preset": "probe/nope"}, "preset 'probe/nope' not found"),
        ({"data": {"type": "synthetic", "bogus": 1}}, "bogus"),
    ],
)
def test_recipe_mistakes_are_one_line_errors(change: dict[str, Any], message: str) -> None:
    data = {**RECIPE, **change}
    data = {k: v for k, v in data.items() if v is not None}
    with pytest.raises(ConfigError, match=message) as info:
        parse(data, source="fed.yaml")
    assert "\n" not in str(info.value)


def test_recipe_with_own_sources_per_site(tmp_path: Path) -> None:
    data = {k: v for k, v in RECIPE.items() if k not in ("data", "split")}
    recipe = parse(
        {**data, "sites": [{"name": "a", "data": SYNTHETIC}, {"name": "b", "data": {**SYNTHETIC, "seed": 1}}]}
    )
    assert recipe.n_sites == 2 and recipe.resolved_preset.tuner == "probe"
    with pytest.raises(ConfigError, match="distinct"):
        parse({**data, "sites": [{"name": "a", "data": SYNTHETIC}, {"name": "a", "data": SYNTHETIC}]})


FEDERATED_RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes" / "federated").glob("*.yaml"))


@pytest.mark.parametrize("path", FEDERATED_RECIPES, ids=lambda p: p.name)
def test_shipped_federated_recipes_validate(path: Path) -> None:
    from hfm.federated.recipe import load
    from hfm.recipes import check_backbone

    recipe = load(path)
    assert recipe.n_sites >= 2
    check_backbone(recipe.backbone, str(path))
    assert (path.parent / "README.md").is_file()
