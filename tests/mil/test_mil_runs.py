"""A ``unit: bag`` sweep end to end: bag-level outputs, attention, pictures, the adapter and ``hfm predict --bag``."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from hfm.adapter import load_adapter
from hfm.cli import cli, main
from hfm.errors import ConfigError
from hfm.hub.cards import render_card
from hfm.runner import read_predictions, run, run_dir
from mil.conftest import bag_recipe, write_bag_npz


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bags")
    npz = write_bag_npz(root / "bags.npz", {"train": 6, "val": 2, "test": 3})
    recipe = bag_recipe(npz, root / "out")
    recipe["presets"][1]["method"]["params"]["max_instances"] = 3  # type: ignore[index]
    result = run(recipe, progress=False, verbose=False)
    assert result.ok, result.failed
    return root / "out"


def test_predictions_and_metrics_are_per_bag(sweep: Path) -> None:
    folder = run_dir(sweep, "abmil", 2, 0)
    ids, labels, proba = read_predictions(folder / "predictions.csv")
    assert ids == [f"test-bag{b:02d}" for b in range(6)]
    assert labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert proba.shape == (6, 2)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test"]["n"] == 6 and metrics["n_train"] == 4 and metrics["unit"] == "bag"
    assert "balanced_accuracy" in metrics["test"]["ci"]
    episode = json.loads((folder / "episode.json").read_text())
    assert episode["unit"] == "bag" and episode["counts"] == {"0": 2, "1": 2}


def test_attention_is_written_per_instance_and_sums_to_one(sweep: Path) -> None:
    folder = run_dir(sweep, "abmil", 1, 0)
    with (folder / "attention.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    per_bag: dict[str, float] = defaultdict(float)
    for row in rows:
        per_bag[row["bag_id"]] += float(row["attention"])
    assert sorted(per_bag) == [f"test-bag{b:02d}" for b in range(6)]
    assert np.allclose(list(per_bag.values()), 1.0)
    assert len(list((folder / "bags").glob("*.png"))) == 2


def test_a_bag_above_max_instances_is_sampled_and_said(sweep: Path) -> None:
    metrics = json.loads((run_dir(sweep, "mean", 1, 0) / "metrics.json").read_text())
    with (run_dir(sweep, "mean", 1, 0) / "attention.csv").open() as handle:
        read = defaultdict(int)
        for row in csv.DictReader(handle):
            read[row["bag_id"]] += 1
    assert metrics["fit"]["sampled_bags"]
    assert all(read[bag] == 3 for bag in metrics["fit"]["sampled_bags"])
    assert not (run_dir(sweep, "mean", 1, 0) / "bags").exists()  # pictures: 0


def test_the_adapter_loads_and_predicts_a_bag_from_the_cli(sweep: Path, tmp_path: Path) -> None:
    adapter = run_dir(sweep, "abmil", 2, 0) / "adapter"
    model = load_adapter(adapter)
    assert model.config.aggregator == "abmil"  # type: ignore[union-attr]
    images = np.load(sweep.parent / "bags.npz")["test_images"]
    folder = tmp_path / "slide"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(images[i]).save(folder / f"tile{i}.png")
    (tmp_path / "bags.csv").write_text(
        "bag_id,path\nA,slide/tile0.png\nA,slide/tile1.png\nB,slide/tile2.png\n"
    )
    runner = CliRunner()
    out = runner.invoke(cli, ["predict", str(adapter), "--bag", str(folder), "--json"])
    assert out.exit_code == 0, out.output
    row = json.loads(out.output)
    assert row["bag"] == "slide" and row["instances"] == 3 and not row["sampled"]
    assert abs(sum(w for _, w in row["attention"]) - 1.0) < 1e-5
    out = runner.invoke(
        cli, ["predict", str(adapter), "--bag", str(tmp_path / "bags.csv"), "--max-instances", "1"]
    )
    assert out.exit_code == 0, out.output
    assert "bag A has 2 images; read a sample of 1" in out.output
    assert [line.split("\t")[0] for line in out.output.splitlines() if "\t" in line] == ["A", "B"]


def test_bad_bag_input_is_one_line(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    adapter = str(run_dir(sweep, "abmil", 1, 0) / "adapter")
    (tmp_path / "empty").mkdir()
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "list.csv").write_text("bag,file\nA,a.png\n")
    cases = [
        (["--bag", str(tmp_path / "empty")], "holds no image"),
        (["--bag", str(tmp_path / "list.csv")], "needs a header 'bag_id,path'"),
        ([str(tmp_path / "a.png")], "classifies bags, not single images"),
    ]
    for args, message in cases:
        assert main(["predict", adapter, *args]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_the_card_states_the_bag_protocol(sweep: Path) -> None:
    text = str(render_card(sweep))
    assert "Bags (multiple-instance learning): each `bag` is a bag" in text
    assert "k counts bags per class" in text


def test_units_and_methods_must_match(tmp_path: Path) -> None:
    npz = write_bag_npz(tmp_path / "b.npz", {"train": 2, "val": 1, "test": 1})
    image_preset = {"name": "probe", "tuner": "probe"}
    with pytest.raises(ConfigError, match="learns from images but the recipe's unit is 'bag'"):
        run(bag_recipe(npz, tmp_path / "o1", presets=[image_preset]), progress=False)
    with pytest.raises(ConfigError, match="set unit: bag and use method mil"):
        run(bag_recipe(npz, tmp_path / "o2", unit="image"), progress=False)
    wrong = {"name": "x", "tuner": "probe", "method": "mil"}
    with pytest.raises(ConfigError, match="use tuner 'mil'"):
        run(bag_recipe(npz, tmp_path / "o3", presets=[wrong]), progress=False)


def test_disagreeing_bag_labels_stop_the_sweep_before_any_run(tmp_path: Path) -> None:
    npz = write_bag_npz(tmp_path / "b.npz", {"train": 2, "val": 1, "test": 1}, mixed_bag=True)
    result = None
    with pytest.raises(Exception, match="holds images of several classes"):
        result = run(bag_recipe(npz, tmp_path / "out"), progress=False)
    assert result is None
    assert not list((tmp_path / "out").glob("*/k*"))
