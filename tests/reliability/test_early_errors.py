"""Items 13 and 16: mistakes found before any run, with the exit status of `hfm run`, in clear words.

Faults injected:
- item 13: k larger than a class; an unknown backbone with ``twin: true`` and a missing relative data root under
  ``hfm validate``; ``hfm validate``'s exit status;
- item 16: a duplicate key in a recipe; a text file named ``.npz``; ``on_error: skip`` dropping images silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from hfm.cli import main
from hfm.data import load_data
from hfm.errors import DataError
from hfm.runner import run

from .conftest import recipe, synthetic, write_folder


def test_k_larger_than_a_class_stops_before_any_run(tmp_path: Path) -> None:
    """Fault: k=3 where a class has 2 training examples; the hint names allow_fewer and no run folder exists."""
    out = tmp_path / "out"
    data = {**synthetic(3), "n_per_class": 2}
    with pytest.raises(DataError, match="allow_fewer: true"):
        run(recipe(out, data, shots=[1, 3]), progress=False, verbose=False)
    assert not out.exists()


def _validate(tmp_path: Path, cfg: dict, capsys) -> tuple[int, str]:
    file = tmp_path / "r.yaml"
    file.write_text(yaml.safe_dump(cfg))
    code = main(["validate", str(file)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_validate_rejects_a_twin_of_an_unknown_backbone(tmp_path: Path, capsys) -> None:
    """Fault: ``twin: true`` on a backbone that is not in the catalog; exit status 2 like `hfm run`."""
    cfg = recipe(tmp_path / "out", synthetic(3), backbone={"name": "nobody/model", "twin": True})
    code, text = _validate(tmp_path, cfg, capsys)
    assert code == 2 and "twins exist only for catalog entries" in text


def test_validate_rejects_a_missing_relative_data_root(tmp_path: Path, capsys) -> None:
    """Fault: a relative ``root`` that does not exist next to the recipe."""
    code, text = _validate(tmp_path, recipe(tmp_path / "out", {"type": "folder", "root": "nowhere"}), capsys)
    assert code == 2 and f"{tmp_path / 'nowhere'} does not exist" in text


def test_duplicate_recipe_keys_are_rejected(tmp_path: Path, capsys) -> None:
    """Fault: ``shots`` given twice in one recipe (YAML silently kept the last)."""
    file = tmp_path / "r.yaml"
    text = yaml.safe_dump(recipe(tmp_path / "out", synthetic(3)))
    file.write_text(text + "shots: [8]\n")
    assert main(["validate", str(file)]) == 2
    assert "key 'shots' appears twice" in capsys.readouterr().out


def test_text_file_named_npz_says_so_plainly(tmp_path: Path) -> None:
    """Fault: a text file saved as ``.npz`` (numpy calls it "pickled data" and the message was cut mid-word)."""
    path = tmp_path / "d.npz"
    path.write_text("id,label\n1,a\n")
    with pytest.raises(DataError) as info:
        load_data({"type": "npz", "path": str(path)})
    assert "not a readable .npz file (not a zip archive)" in str(info.value)
    assert "pickled" not in str(info.value)


def test_skipped_images_are_counted_on_stderr(tmp_path: Path, capsys) -> None:
    """Fault: ``on_error: skip`` drops a corrupt file; the count was recorded but never printed."""
    root = write_folder(tmp_path / "imgs")
    (root / "a" / "img0.png").write_bytes(b"not a png")
    splits = load_data({"type": "folder", "root": str(root), "on_error": "skip"})
    assert splits.split_info["skipped_files"] == 1
    assert "skipped 1 unreadable image(s) (on_error: skip), e.g. a/img0.png" in capsys.readouterr().err
    assert np.asarray(splits.train.image(0)).size
