"""Bad input stops pretraining with one line that says what to do, and leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from hfm.cli import cli, main
from hfm.errors import ConfigError, DataError
from hfm.pretrain import PretrainError, parse_recipe, pretrain
from pretrain.conftest import tiny_recipe


def test_too_few_images(tmp_path: Path) -> None:
    recipe = tiny_recipe(data={"type": "synthetic", "n_classes": 2, "n_per_class": 1})
    with pytest.raises(PretrainError, match="only 2 train images"):
        pretrain(recipe, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_batch_larger_than_the_images(tmp_path: Path) -> None:
    with pytest.raises(PretrainError, match="fewer than schedule.batch_size"):
        pretrain(tiny_recipe(schedule={"batch_size": 64}), out=tmp_path / "out")


def test_unreadable_file_under_on_error_raise(tmp_path: Path) -> None:
    from PIL import Image

    # Fixed splits with the bad file in train: val/test files are never opened, so only a train file can fail.
    for split in ("train", "val", "test"):
        for cls in ("a", "b"):
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            for i in range(6 if split == "train" else 2):
                Image.new("L", (32, 32), color=40 * i).save(tmp_path / "imgs" / split / cls / f"{i}.png")
    (tmp_path / "imgs" / "train" / "a" / "broken.png").write_bytes(b"not a png")
    recipe = tiny_recipe(data={"type": "folder", "root": str(tmp_path / "imgs"), "on_error": "raise"})
    with pytest.raises(DataError, match="broken.png"):
        pretrain(recipe, out=tmp_path / "out")


def test_open_clip_tower_is_refused(tmp_path: Path) -> None:
    recipe = tiny_recipe(backbone={"name": "multimodal/biomedclip", "twin": True})
    with pytest.raises(PretrainError, match="open_clip"):
        pretrain(recipe, out=tmp_path / "out")


def test_output_that_is_not_a_backbone_folder_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(PretrainError, match="not a pretrained backbone folder"):
        pretrain(tiny_recipe(), out=tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_recipe_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="schedule.epoch"):
        parse_recipe(tiny_recipe(schedule={"epoch": 3}))
    with pytest.raises(ConfigError, match="exactly one of 'name'"):
        parse_recipe(tiny_recipe(backbone={"name": "pathology/phikon", "architecture": "resnet18"}))


def test_cli_prints_one_line_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("backbone: {architecture: resnet18}\ndata: {type: synthetic}\nschedule: {epochz: 1}\n")
    assert main(["pretrain", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "schedule.epochz" in err
    assert len(err.strip().splitlines()) == 1


def test_cli_pretrains_a_recipe_file(tmp_path: Path) -> None:
    import yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(schedule={"epochs": 1})))
    result = CliRunner().invoke(
        cli, ["pretrain", str(recipe), "--out", str(tmp_path / "out"), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    assert "local-dir:" in result.output
    assert (tmp_path / "out" / "hfm_spec.json").is_file()
