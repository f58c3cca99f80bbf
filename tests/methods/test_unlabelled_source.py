"""A recipe's ``unlabelled:`` block: a separate source of unlabelled images joins each run's pool, capped with the
run's seed, recorded in the run, the adapter config and the card; bad sources get one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import hfm
from hfm.data import load_data
from hfm.data.splits import Subset
from hfm.data.unlabelled import UNKNOWN, load_unlabelled
from hfm.errors import ConfigError, DataError, HfmError
from hfm.hub.cards import render_card
from hfm.methods.consistency import FixMatch
from hfm.recipes import check_data_paths, parse
from hfm.runner import run, run_dir
from hfm.train import TrainConfig

POOLS: dict[int, list[str]] = {}


class PoolRecordingFixMatch(FixMatch):
    """FixMatch that records the ids of the pool it trains on and that its images decode."""

    def train(self, model: Any, train: Any, val: Any, pool: Subset, config: TrainConfig) -> dict[str, Any]:
        POOLS[int(config.seed)] = list(pool.ids)
        assert np.asarray(pool.image(len(pool) - 1)).ndim >= 2  # the separate source's images read back
        return super().train(model, train, val, pool, config)


hfm.methods.register_method("test-pool-recording-fixmatch")(PoolRecordingFixMatch)


def _images(folder: Path, n: int, *, nested: bool = True) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        path = folder / (f"part{i % 2}" if nested else "") / f"u{i:02d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(path)
    return folder


def _recipe(
    out: Path, unlabelled: dict[str, Any] | None, presets: list[Any], seeds: list[int]
) -> dict[str, Any]:
    recipe = {
        "name": "unlabelled",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": {
            "type": "synthetic",
            "n_classes": 2,
            "n_per_class": 6,
            "n_val_per_class": 2,
            "n_test_per_class": 3,
        },  # fmt: skip
        "presets": presets,
        "shots": [2],
        "seeds": seeds,
        "training": {"max_steps": 2, "batch_size": 2},
        "bootstrap": 0,
        "output": str(out),
    }
    if unlabelled is not None:
        recipe["unlabelled"] = unlabelled
    return recipe


FIXMATCH = {"name": "fixmatch/test", "tuner": "lora", "params": {"r": 4},
            "method": {"name": "test-pool-recording-fixmatch", "params": {"threshold": 0.0, "mu": 2}}}  # fmt: skip


def test_a_plain_folder_of_images_is_an_unlabelled_source(tmp_path: Path) -> None:
    folder = _images(tmp_path / "u", 5)
    source = load_unlabelled({"type": "images", "root": str(folder)}, ["a", "b"])
    assert len(source.images) == 5 and (source.images.labels == UNKNOWN).all()
    assert source.images.ids[0] == "unlabelled/part0/u00.png"
    assert np.asarray(source.images.image(4)).shape == (20, 20, 3)
    # it has no classes, so it cannot be the labelled data
    with pytest.raises(DataError, match="class"):
        load_data({"type": "images", "root": str(folder)})


def test_the_separate_source_joins_each_runs_pool_capped_with_the_runs_seed_and_is_recorded(
    tmp_path: Path,
) -> None:
    folder = _images(tmp_path / "u", 12)
    block = {"data": {"type": "images", "root": str(folder)}, "max_images": 5}
    POOLS.clear()
    assert run(_recipe(tmp_path / "a", block, [FIXMATCH], [0, 1]), progress=False, verbose=False).ok
    draw_pool = 2 * 6 - 2 * 2
    extra = {seed: [i for i in ids if i.startswith("unlabelled/")] for seed, ids in POOLS.items()}
    assert {seed: len(ids) for seed, ids in POOLS.items()} == {0: draw_pool + 5, 1: draw_pool + 5}
    assert len(extra[0]) == 5 and extra[0] != extra[1]  # the cap is sampled with each run's seed
    folder0 = run_dir(tmp_path / "a", "fixmatch/test", 2, 0)
    record = json.loads((folder0 / "metrics.json").read_text())
    assert record["n_unlabelled"] == draw_pool + 5
    pool = record["fit"]["pool"]  # the run record
    assert pool["size"] == draw_pool + 5 and pool["draw"]["size"] == draw_pool
    assert (
        pool["source"]["size"] == 5
        and pool["source"]["available"] == 12
        and pool["source"]["max_images"] == 5
    )
    config = json.loads((folder0 / "adapter" / "hfm_config.json").read_text())
    assert config["method"]["pool"]["source"]["fingerprint"] == pool["source"]["fingerprint"]
    card = str(render_card(folder0, repo_id="lab/fixmatch"))
    assert (
        f"5 of them from a separate unlabelled source of 12 images, fingerprint `{pool['source']['fingerprint']}`"
        in card
    )
    # the same seed picks the same images again
    first = list(POOLS[0])
    assert run(_recipe(tmp_path / "b", block, [FIXMATCH], [0]), progress=False, verbose=False).ok
    assert POOLS[0] == first
    # --resume refuses runs made with another unlabelled block
    other = {**block, "max_images": 6}
    with pytest.raises(HfmError, match="unlabelled block"):
        run(_recipe(tmp_path / "b", other, [FIXMATCH], [0]), progress=False, verbose=False, resume=True)


def test_embedding_methods_label_the_separate_source_too(tmp_path: Path) -> None:
    folder = _images(tmp_path / "u", 7, nested=False)
    block = {"data": {"type": "images", "root": str(folder)}}
    recipe = _recipe(tmp_path / "a", block, ["probe/logreg", "label-spreading/knn"], [0])
    assert run(recipe, progress=False, verbose=False).ok
    record = json.loads((run_dir(tmp_path / "a", "label-spreading/knn", 2, 0) / "metrics.json").read_text())
    assert record["n_unlabelled"] == 2 * 6 - 2 * 2 + 7 and record["fit"]["pool"]["source"]["size"] == 7


def test_an_unlabelled_source_with_other_classes_or_no_images_is_refused_in_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other"
    _images(other / "blob", 2, nested=False)
    _images(other / "tumour", 2, nested=False)
    block = {"data": {"type": "folder", "root": str(other)}}
    with pytest.raises(
        DataError, match="unlabelled source has images of classes tumour not in the labelled data"
    ):
        run(_recipe(tmp_path / "a", block, [FIXMATCH], [0]), progress=False, verbose=False)
    # the labelled data's own classes are fine (their labels are never read)
    same = load_unlabelled({"type": "folder", "root": str(other)}, ["blob", "tumour", "x"])
    assert len(same.images) == 4 and (same.images.labels == UNKNOWN).all()
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_unlabelled({"type": "images", "root": str(tmp_path / "empty")}, ["a", "b"])
    with pytest.raises(ConfigError, match=r"unlabelled.data.type"):
        parse(_recipe(tmp_path / "c", {"data": {"type": "nope"}}, [FIXMATCH], [0]))
    with pytest.raises(ConfigError, match="max_images"):
        parse(
            _recipe(
                tmp_path / "c", {"data": {"type": "images", "root": "u"}, "max_images": 0}, [FIXMATCH], [0]
            )
        )


def test_recipe_paths_of_the_unlabelled_source_are_relative_to_the_recipe_and_checked(tmp_path: Path) -> None:
    block = {"data": {"type": "images", "root": "more"}}
    recipe = parse(_recipe(tmp_path / "o", block, [FIXMATCH], [0]), base_dir=tmp_path)
    assert recipe.unlabelled is not None and recipe.unlabelled.data["root"] == str(
        (tmp_path / "more").resolve()
    )
    with pytest.raises(ConfigError, match=r"unlabelled.data.root: .*more does not exist"):
        check_data_paths(recipe, "r.yaml")
    _images(tmp_path / "more", 1)
    check_data_paths(recipe, "r.yaml")
