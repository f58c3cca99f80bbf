"""Data sources sit in an open registry: code outside hfm adds one, and recipes load it like a built-in."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import yaml

import hfm
from hfm import recipes
from hfm.data import Raw, SourceBlock, Subset, list_sources, register_source
from hfm.data.images import ArrayReader
from hfm.errors import ConfigError

DATA_PACKAGE = Path(hfm.__file__).resolve().parent / "data"


@register_source("test-text-labels")
class TextLabels(SourceBlock):
    """A toy source from outside the package: one label per line of a text file, grey images made from it."""

    path: Path
    size: int = 8

    def load(self) -> Raw:
        labels = np.asarray([int(line) for line in self.path.read_text().split()], dtype=np.int64)
        images = np.stack([np.full((self.size, self.size), 40 * y, dtype=np.uint8) for y in labels])
        subset = Subset(
            ids=[f"line/{i}" for i in range(len(labels))], labels=labels, reader=ArrayReader(images)
        )
        return Raw(parts={"all": subset}, classes=["zero", "one"], where=str(self.path))


def _recipe(tmp_path: Path, data: dict) -> Path:
    (tmp_path / "labels.txt").write_text("\n".join(str(i % 2) for i in range(40)), encoding="utf-8")
    path = tmp_path / "r.yaml"
    recipe = {"backbone": "radiology/rad-dino", "data": data, "presets": ["probe/logreg"], "shots": [1]}
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_a_source_registered_outside_hfm_loads_through_a_recipe(tmp_path: Path, monkeypatch) -> None:
    path = _recipe(tmp_path, {"type": "test-text-labels", "path": "labels.txt", "size": 6})
    monkeypatch.chdir(tmp_path.parent)  # the relative path must resolve against the recipe's folder
    recipe = recipes.load(path)
    assert recipe.data["path"] == str((tmp_path / "labels.txt").resolve())
    splits = hfm.load_data(recipe.data)
    assert splits.classes == ["zero", "one"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 40
    assert splits.source["type"] == "test-text-labels"
    assert splits.train.image(0).shape == (6, 6)
    assert "test-text-labels" in list_sources()


def test_registered_source_errors_name_the_file_and_field(tmp_path: Path) -> None:
    path = _recipe(tmp_path, {"type": "test-text-labels", "path": "labels.txt", "sise": 6})
    with pytest.raises(ConfigError, match=r"r\.yaml: data\.sise: unknown key; allowed keys: .*size"):
        recipes.load(path)
    path = _recipe(tmp_path, {"type": "test-text-labels", "path": "labels.txt", "size": "big"})
    with pytest.raises(ConfigError, match=r"r\.yaml: data\.size: "):
        recipes.load(path)
    path = _recipe(tmp_path, {"type": "text-labels-typo"})
    with pytest.raises(ConfigError, match=r"r\.yaml: data\.type: .*test-text-labels"):
        recipes.load(path)


def test_a_name_cannot_be_taken_twice_and_a_source_must_load() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_source("npz")
        class Other(SourceBlock):
            def load(self) -> Raw:
                raise AssertionError

    with pytest.raises(TypeError, match="must implement load"):

        @register_source("test-no-load")
        class NoLoad(SourceBlock):
            pass

    assert "test-no-load" not in list_sources()


def test_path_fields_are_the_fields_typed_path() -> None:
    from hfm.data.sources import CsvSource, DicomSource, NpzSource, SyntheticSource

    assert CsvSource.path_fields() == ["path", "root"]
    assert DicomSource.path_fields() == ["root", "csv"]
    assert NpzSource.path_fields() == ["path"]
    assert SyntheticSource.path_fields() == []


def _imports(module: Path) -> set[str]:
    """Every ``hfm.data.*`` module ``module`` imports, at top level or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "hfm.data":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hfm.data."):
            found.add(node.module.removeprefix("hfm.data."))
        elif isinstance(node, ast.Import):
            found |= {a.name.removeprefix("hfm.data.") for a in node.names if a.name.startswith("hfm.data.")}
    return found


def test_data_modules_import_each_other_without_a_circle() -> None:
    graph = {p.stem: _imports(p) for p in DATA_PACKAGE.glob("*.py") if p.stem != "__init__"}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            pytest.fail(f"import circle in hfm/data: {' -> '.join(cycle)}")
        state[name] = 1
        for other in sorted(graph.get(name, ())):
            visit(other, [*path, name])
        state[name] = 2

    for name in sorted(graph):
        visit(name, [])
