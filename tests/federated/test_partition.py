"""Sites made from one source by a column (hospital, scanner): ``partition: {by: ...}`` and ``where``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hfm.errors import ConfigError, DataError
from hfm.federated.recipe import parse
from hfm.federated.study import _card_sites, build_sites

HOSPITALS = ("north", "south", "east")


def _archive(path: Path, *, east_in_train: bool = True) -> Path:
    """A small npz: 3 classes, a patient array (the group) and a hospital array (the site column)."""
    rng = np.random.default_rng(0)
    arrays: dict[str, Any] = {}
    for split, n in (("train", 36), ("val", 9), ("test", 18)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)
        arrays[f"{split}_labels"] = np.arange(n) % 3
        hospital = np.array([HOSPITALS[i % 3] for i in range(n)])
        if split == "train" and not east_in_train:
            hospital[hospital == "east"] = "north"
        arrays[f"{split}_hospital"] = hospital
        arrays[f"{split}_patient"] = np.array([f"{split}-p{i // 2}" for i in range(n)])
    np.savez(path, **arrays)
    return path


def _recipe(data: dict[str, Any], **blocks: Any) -> Any:
    return parse(
        {
            "backbone": {"name": "radiology/rad-dino", "twin": True},
            "preset": "probe/logreg",
            "shots": 1,
            **({"data": data} if "sites" not in blocks else {}),
            **blocks,
        },
        source="fed.yaml",
    )


@pytest.fixture
def block(tmp_path: Path) -> dict[str, Any]:
    return {"type": "npz", "path": str(_archive(tmp_path / "archive.npz")), "group_key": "patient"}


def _hospital_of(block: dict[str, Any]) -> dict[str, str]:
    with np.load(block["path"]) as f:
        return {
            f"{s}/{i}": str(h) for s in ("train", "val", "test") for i, h in enumerate(f[f"{s}_hospital"])
        }


def test_partition_by_a_column_makes_one_site_per_value(block: dict[str, Any]) -> None:
    sites = build_sites(_recipe(block, partition={"by": "hospital"}))
    assert [s.name for s in sites] == sorted(HOSPITALS)
    truth = _hospital_of(block)
    for split in ("train", "val", "test"):
        ids = [x for s in sites for x in getattr(s.splits, split).ids]
        assert sorted(ids) == sorted(x for x in truth if x.startswith(split))  # every example, exactly once
    for site in sites:
        assert {truth[x] for x in site.splits.test.ids} == {site.name}
        assert {truth[x] for x in site.splits.train.ids} == {site.name}
        # the group column still names patients (the leakage-safe key), not hospitals
        assert site.splits.train.groups is not None and site.splits.train.groups[0].startswith("train-p")
        assert site.splits.split_info["partition_by"] == "hospital"


def test_partition_values_choose_and_order_the_sites(block: dict[str, Any]) -> None:
    recipe = _recipe(block, partition={"by": "hospital", "values": ["south", "east"]})
    assert recipe.n_sites == 2
    sites = build_sites(recipe)
    assert [s.name for s in sites] == ["south", "east"]
    # hospital names are not in the card unless asked
    card = _card_sites(recipe, sites, [type("T", (), {"labelled": [0]})()] * 2)  # type: ignore[list-item]
    assert [c["site"] for c in card] == ["site-1", "site-2"]


def test_a_site_may_keep_the_rows_of_one_value_of_a_shared_source(block: dict[str, Any]) -> None:
    sites = build_sites(
        _recipe(
            block,
            sites=[
                {"name": "a", "data": block, "where": {"hospital": "north"}},
                {"name": "b", "data": block, "where": {"hospital": "south"}},
            ],
        )
    )
    truth = _hospital_of(block)
    assert {truth[x] for x in sites[0].splits.train.ids + sites[0].splits.test.ids} == {"north"}
    assert {truth[x] for x in sites[1].splits.train.ids + sites[1].splits.test.ids} == {"south"}
    assert len(sites[0].splits.train) == 12


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ({"partition": {"by": "scanner"}}, "cannot read the site column 'scanner'"),
        ({"partition": {"by": "hospital", "values": ["north", "west"]}}, "no image has hospital == 'west'"),
        (
            {
                "sites": [
                    {"name": "a", "where": {"hospital": "west"}},
                    {"name": "b", "where": {"hospital": "north"}},
                ]
            },
            "no image has hospital == 'west'",
        ),
    ],
)
def test_unknown_column_or_value_is_a_one_line_error(
    block: dict[str, Any], blocks: dict[str, Any], message: str
) -> None:
    if "sites" in blocks:
        blocks = {"sites": [{**s, "data": block} for s in blocks["sites"]]}
    with pytest.raises(DataError, match=message) as info:
        build_sites(_recipe(block, **blocks))
    assert "\n" not in str(info.value)


def test_a_value_without_training_images_is_a_clear_error(tmp_path: Path) -> None:
    block = {"type": "npz", "path": str(_archive(tmp_path / "a.npz", east_in_train=False))}
    with pytest.raises(DataError, match="'east' has no training image"):
        build_sites(_recipe(block, partition={"by": "hospital"}))


def test_a_source_without_columns_cannot_be_partitioned() -> None:
    data = {"type": "synthetic", "n_classes": 2, "n_per_class": 4, "size": 16}
    with pytest.raises(DataError, match="no column to partition by"):
        build_sites(_recipe(data, partition={"by": "hospital"}))


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        ({"partition": {"by": "hospital"}, "split": {"sites": 2}}, "either split"),
        ({"partition": {"by": "hospital", "values": ["a", "a"]}}, "distinct"),
        ({"partition": {"by": "hospital", "values": ["a"]}}, "partition.values"),
        ({"partition": {"by": "hospital", "values": ["a", "b"]}, "federation": {"min_sites": 3}}, "exceeds"),
    ],
)
def test_partition_recipe_mistakes_are_one_line_errors(
    block: dict[str, Any], blocks: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        _recipe(block, **blocks)
    assert "\n" not in str(info.value)


def test_federate_command_reports_an_unknown_column_in_one_line(
    block: dict[str, Any], tmp_path: Path, capsys: Any
) -> None:
    import yaml

    from hfm.cli import main

    recipe = {
        "backbone": {"name": "radiology/rad-dino", "twin": True},
        "preset": "probe/logreg",
        "shots": 1,
        "data": block,
        "partition": {"by": "scanner"},
    }
    path = tmp_path / "fed.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["federate", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "scanner" in err and "Traceback" not in err and len(err.splitlines()) == 1
