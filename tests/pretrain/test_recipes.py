"""Every shipped pretrain recipe validates, and the smoke recipe runs end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

import hfm
from hfm.pretrain import load_recipe, pretrain

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes" / "pretrain").glob("*.yaml"))


def test_there_are_pretrain_recipes() -> None:
    assert len(RECIPES) >= 2


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_pretrain_recipe_validates(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name
    assert recipe.output.startswith("runs/pretrain/")


@pytest.mark.parametrize("name", ["smoke__dino-twin.yaml", "smoke__mae-vit.yaml"])
def test_smoke_recipe_runs(tmp_path: Path, name: str) -> None:
    result = pretrain(ROOT / "recipes" / "pretrain" / name, out=tmp_path / "out", progress=False)
    assert result.epochs == 2
    backbone = hfm.load_backbone(f"local-dir:{tmp_path / 'out'}")
    assert backbone.spec.embed_dim == result.backbone.spec.embed_dim


@pytest.mark.parametrize(
    ("name", "target"),
    [("breastmnist__dino-resnet18w16.yaml", "breastmnist"), ("busi__mae-vit-w96d4p4.yaml", "busi")],
)
def test_real_image_recipes_are_the_studys_recipes(
    name: str, target: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The shipped real-image recipes build exactly what benchmarks/pretrain_study.py measured."""
    from hfm.pretrain.config import parse_recipe

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import pretrain_study

    shipped = load_recipe(ROOT / "recipes" / "pretrain" / name).model_dump()
    study = parse_recipe(pretrain_study.study_recipe(target, quick=False)).model_dump()
    for key in ("description", "output", "data"):
        shipped.pop(key), study.pop(key)
    assert shipped == study
