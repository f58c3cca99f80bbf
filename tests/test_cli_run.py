"""`hfm run`, `hfm validate` and `hfm predict` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from hfm.cli import main
from hfm.runner import read_predictions, run_dir

ROOT = Path(__file__).resolve().parents[1]


def _tiny(tmp_path: Path, **changes: object) -> Path:
    data = {
        "backbone": "pathology/uni",
        "data": {
            "type": "synthetic",
            "n_classes": 2,
            "n_per_class": 5,
            "n_val_per_class": 3,
            "n_test_per_class": 5,
        },
        "presets": ["probe/logreg"],
        "shots": [1, 2, 4],
        "seeds": [0, 1, 2],
        "bootstrap": 50,
    }
    data.update(changes)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_run_with_overrides_prints_the_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _tiny(tmp_path)
    out = tmp_path / "out"
    code = main(
        ["run", str(recipe), "--out", str(out), "--shots", "1,2", "--seeds", "0", "--twin", "--no-progress"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| preset | k | seeds | balanced_accuracy (mean ± std) | 95% CI |" in printed
    assert "| probe/logreg | 1 | 1 |" in printed and "| probe/logreg | 2 | 1 |" in printed
    assert "2 run(s) done" in printed
    assert sorted(p.name for p in (out / "probe" / "logreg").iterdir()) == ["k1", "k2"]
    assert json.loads((out / "summary.json").read_text())["backbone"]["twin"] is True

    assert (
        main(
            [
                "run",
                str(recipe),
                "--out",
                str(out),
                "--shots",
                "1,2",
                "--seeds",
                "0",
                "--twin",
                "--resume",
                "--no-progress",
            ]
        )
        == 0
    )
    assert "0 run(s) done, 2 skipped" in capsys.readouterr().out


def test_run_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _tiny(tmp_path)
    assert main(["run", str(recipe), "--shots", "1,x"]) == 2
    assert "'x' is not one of integers or 'all'" in capsys.readouterr().err
    assert main(["run", str(recipe), "--preset", "lora/nope", "--twin"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hfm: error: preset 'lora/nope' not found") and err.count("\n") == 1


def test_failed_runs_exit_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"name": "lora/nowhere", "tuner": "lora", "params": {"target_modules": ["nothing_here"]}}
    recipe = _tiny(
        tmp_path,
        presets=["probe/logreg", bad],
        shots=[1],
        seeds=[0],
        backbone={"name": "pathology/uni", "twin": True},
    )
    code = main(["run", str(recipe), "--out", str(tmp_path / "out"), "--no-progress"])
    assert code == 1
    captured = capsys.readouterr()
    assert "1 run(s) failed; tracebacks in" in captured.err
    assert (run_dir(tmp_path / "out", "probe/logreg", 1, 0) / "metrics.json").is_file()


def test_validate_reports_each_recipe(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = ROOT / "recipes" / "quickstart.yaml"
    assert main(["validate", str(good)]) == 0
    assert "ok   " in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "backbone": "radiology/rad-dino",
                "data": {"type": "synthetic"},
                "presets": ["probe/logreg"],
                "shots": [1],
                "epochs": 3,
            }
        )
    )
    assert main(["validate", str(good), str(bad)]) == 2
    out = capsys.readouterr()
    assert f"FAIL {bad}: epochs: unknown key; allowed keys: name" in out.out
    assert "1 of 2 recipe(s) invalid" in out.err


def test_predict_prints_class_and_probabilities(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = _tiny(tmp_path, shots=[2], seeds=[0], backbone={"name": "pathology/uni", "twin": True})
    out = tmp_path / "out"
    assert main(["run", str(recipe), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    folder = run_dir(out, "probe/logreg", 2, 0)
    import hfm

    splits = hfm.load_data(json.loads((folder / "adapter" / "hfm_config.json").read_text())["data"]["source"])
    paths = []
    for i in range(3):
        path = tmp_path / f"test {i}.png"
        Image.fromarray(np.asarray(splits.test.image(i))).save(path)
        paths.append(str(path))
    assert main(["predict", str(folder / "adapter"), *paths, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["image"] for r in rows] == paths
    _, _, saved = read_predictions(folder / "predictions.csv")
    for i, row in enumerate(rows):
        probs = list(row["probabilities"].values())
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert row["predicted"] == list(row["probabilities"])[int(np.argmax(probs))]
        np.testing.assert_allclose(probs, saved[i], atol=1e-4)  # PNG round trip of the same pixels
    assert main(["predict", str(folder / "adapter"), paths[0]]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(paths[0] + "\t") and "=" in line

    not_image = tmp_path / "notes.txt"
    not_image.write_text("hello")
    assert main(["predict", str(folder / "adapter"), str(not_image)]) == 2
    assert "cannot read the image" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.shared_data
def test_busi_recipe_from_the_command_line(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = ROOT / "recipes" / "smoke" / "busi__rad-dino__probe-logreg.yaml"
    if not (recipe.parent / "../../../shared/data/busi").resolve().is_dir():
        pytest.skip("BUSI is not beside this checkout")
    out = tmp_path / "busi"
    assert main(["run", str(recipe), "--out", str(out), "--seeds", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "| probe/logreg | 1 | 1 |" in printed and "| probe/logreg | 4 | 1 |" in printed
    metrics = json.loads((run_dir(out, "probe/logreg", 4, 0) / "metrics.json").read_text())
    assert metrics["test"]["classes"] == ["benign", "malignant", "normal"] and metrics["n_train"] == 12
