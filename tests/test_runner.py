"""The runner: run folders and summaries, metrics traceable to predictions, resume, failures, smoke recipes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

import hfm
from hfm import recipes
from hfm.errors import ConfigError
from hfm.runner import RUN_FILES, read_predictions, run, run_dir
from hfm.sweep import grid
from hfm.zeroshot.checks import label_free_presets

ROOT = Path(__file__).resolve().parents[1]
SMOKE = sorted((ROOT / "recipes" / "smoke").glob("*.yaml"))
SHARED_SMOKE = {
    "busi__rad-dino__probe-logreg.yaml",
    "bccd__phikon__probe-logreg.yaml",
    "bccd__phikon__mil-bags.yaml",
}


def tiny_recipe(out: Path, presets: list[Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A seconds-long sweep: a timm twin, a few synthetic images per class."""
    data: dict[str, Any] = {
        "name": "tiny",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": {
            "type": "synthetic",
            "n_classes": 3,
            "n_per_class": 5,
            "n_val_per_class": 3,
            "n_test_per_class": 6,
        },
        "presets": presets or ["probe/logreg"],
        "shots": [1, 2],
        "seeds": [0, 1],
        "training": {"max_steps": 2, "batch_size": 4},
        "bootstrap": 100,
        "output": str(out),
    }
    data.update(changes)
    return data


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The quickstart recipe itself, with one seed to keep CI fast (the full one is measured in the README)."""
    out = tmp_path_factory.mktemp("quickstart")
    result = run(ROOT / "recipes" / "quickstart.yaml", out=out, seeds=[0], progress=False, verbose=False)
    return out, result


@pytest.mark.slow
def test_quickstart_writes_every_file(quickstart: tuple[Path, Any]) -> None:
    out, result = quickstart
    assert result.ok and len(result.finished) == 6
    for name in (
        "recipe.yaml",
        "environment.json",
        "summary.json",
        "summary.csv",
        "summary.md",
        "label_efficiency.png",
    ):
        assert (out / name).is_file(), name
    for preset in ("probe/logreg", "lora/r8-attn", "vpt/shallow-10"):
        for k in (2, 8):
            folder = run_dir(out, preset, k, 0)
            for name in RUN_FILES:
                assert (folder / name).exists(), folder / name
    summary = json.loads((out / "summary.json").read_text())
    assert [(r["preset"], r["k"]) for r in summary["rows"]] == [
        (p, k) for p in ("probe/logreg", "lora/r8-attn", "vpt/shallow-10") for k in (2, 8)
    ]
    assert "| probe/logreg | 2 | 1 |" in (out / "summary.md").read_text()
    resolved = recipes.load(out / "recipe.yaml")  # the resolved recipe reloads on its own
    assert resolved.seeds == [0] and [p.name for p in resolved.resolved_presets][0] == "probe/logreg"
    env = json.loads((out / "environment.json").read_text())
    assert env["packages"]["torch"] and env["python"]


@pytest.mark.slow
def test_metrics_recompute_from_predictions_with_sklearn(quickstart: tuple[Path, Any]) -> None:
    out, _ = quickstart
    for metrics_file in sorted(out.rglob("metrics.json")):
        record = json.loads(metrics_file.read_text())
        test = record["test"]
        ids, y, proba = read_predictions(metrics_file.parent / "predictions.csv")
        pred = proba.argmax(axis=1)
        assert len(ids) == test["n"] == len(set(ids))
        assert test["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
        assert test["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=1e-12)
        labels = list(range(proba.shape[1]))
        assert test["macro_f1"] == pytest.approx(
            f1_score(y, pred, average="macro", labels=labels, zero_division=0)
        )
        auc = roc_auc_score(y, proba, multi_class="ovr", labels=labels)
        assert test["auroc"] == pytest.approx(auc, abs=1e-9)
        episode = json.loads((metrics_file.parent / "episode.json").read_text())
        assert episode["k"] == record["k"] and episode["seed"] == record["seed"]
        assert record["n_train"] == len(episode["ids"]) == 3 * record["k"]


@pytest.mark.slow
def test_adapter_records_provenance_and_reloads(quickstart: tuple[Path, Any]) -> None:
    out, _ = quickstart
    folder = run_dir(out, "probe/logreg", 8, 0)
    config = json.loads((folder / "adapter" / "hfm_config.json").read_text())
    assert config["tuner"] == "probe" and config["k"] == 8 and config["seed"] == 0
    assert config["recipe_name"] == "quickstart" and config["recipe"]["backbone"]["twin"] is True
    assert (
        config["data"]["fingerprint"] == json.loads((folder / "metrics.json").read_text())["data_fingerprint"]
    )
    assert config["metrics"]["test"]["accuracy"] is not None
    assert config["backbone"]["twin"] is True

    model = hfm.load_adapter(folder / "adapter")
    splits = hfm.load_data(config["data"]["source"])
    images = np.stack([model.backbone.transform(splits.test.image(i)).numpy() for i in range(5)])
    import torch

    proba = model.predict_proba(torch.from_numpy(images)).numpy()
    _, _, saved = read_predictions(folder / "predictions.csv")
    np.testing.assert_allclose(proba, saved[:5], atol=1e-5)


def test_resume_skips_finished_and_redoes_half_written(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path / "out")
    first = run(recipe, progress=False, verbose=False)
    assert first.ok and len(first.finished) == 4
    done = run_dir(tmp_path / "out", "probe/logreg", 2, 1)
    stamp = (done / "metrics.json").stat().st_mtime_ns
    # an interrupted run: its folder lost a file, and a temporary folder was left behind
    broken = run_dir(tmp_path / "out", "probe/logreg", 1, 0)
    (broken / "predictions.csv").unlink()
    stale = broken.with_name(".seed0.tmp-deadbeef")
    stale.mkdir()
    second = run(recipe, resume=True, progress=False, verbose=False)
    assert [p.name for p in second.finished] == ["seed0"] and len(second.skipped) == 3
    assert (broken / "predictions.csv").is_file() and not stale.exists()
    assert (done / "metrics.json").stat().st_mtime_ns == stamp
    assert len(second.summary["rows"]) == 2 and second.summary["rows"][0]["seeds"] == [0, 1]


def test_a_failing_run_does_not_lose_the_others(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = {"name": "lora/nowhere", "tuner": "lora", "params": {"target_modules": ["no_such_module"]}}
    recipe = tiny_recipe(tmp_path / "out", presets=["probe/logreg", bad], shots=[1], seeds=[0])
    result = run(recipe, progress=False)
    assert not result.ok
    assert [name for name, _, _ in result.failed] == ["lora/nowhere/k1/seed0"]
    name, line, trace = result.failed[0]
    assert "match nothing" in line and trace.is_file() and "Traceback" in trace.read_text()
    assert (run_dir(tmp_path / "out", "probe/logreg", 1, 0) / "metrics.json").is_file()
    assert not run_dir(tmp_path / "out", "lora/nowhere", 1, 0).exists()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [r["preset"] for r in summary["rows"]] == ["probe/logreg"]
    assert summary["failed"][0]["run"] == "lora/nowhere/k1/seed0"
    assert "FAILED lora/nowhere/k1/seed0" in capsys.readouterr().out


def test_trained_tuner_gets_its_own_backbone_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Full fine-tuning changes backbone weights; the probe after it must still see the pristine backbone.

    Each sweep gets its own embedding cache, so the probe's embeddings are extracted from the backbone each
    sweep holds (a shared cache, keyed without the weights, would hide a trained backbone).
    """
    monkeypatch.setenv("HFM_CACHE", str(tmp_path / "cache-a"))
    recipe = tiny_recipe(tmp_path / "a", presets=["full/default", "probe/logreg"], shots=[2], seeds=[0])
    recipe["training"] = {"max_steps": 2, "batch_size": 4, "lr": 1e-2}  # weights move well past the tolerance
    run(recipe, progress=False, verbose=False)
    monkeypatch.setenv("HFM_CACHE", str(tmp_path / "cache-b"))
    alone = tiny_recipe(tmp_path / "b", presets=["probe/logreg"], shots=[2], seeds=[0])
    run(alone, progress=False, verbose=False)
    _, _, after_full = read_predictions(run_dir(tmp_path / "a", "probe/logreg", 2, 0) / "predictions.csv")
    _, _, alone_proba = read_predictions(run_dir(tmp_path / "b", "probe/logreg", 2, 0) / "predictions.csv")
    np.testing.assert_allclose(after_full, alone_proba, atol=1e-6)


def test_sweep_stops_early_on_recipe_errors(tmp_path: Path) -> None:
    missing = tiny_recipe(
        tmp_path / "out", data={"type": "folder", "root": str(tmp_path / "shared" / "busi")}
    )
    with pytest.raises(ConfigError, match=r"data\.root: .*busi does not exist"):
        run(missing, progress=False)
    bad_params = tiny_recipe(
        tmp_path / "out", presets=[{"name": "v", "tuner": "vpt", "params": {"tokens": 3}}]
    )
    with pytest.raises(ConfigError, match=r"presets\.0 \(v\): params: .*'tokens'"):
        run(bad_params, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("path", SMOKE, ids=lambda p: p.stem)
def test_every_smoke_recipe_runs(path: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if path.name == "busi__rad-dino__probe-logreg.yaml":
        pytest.skip(
            "run from the command line by tests/test_cli_run.py::test_busi_recipe_from_the_command_line"
        )
    if path.name in SHARED_SMOKE:
        request.getfixturevalue("shared_data")
        data_path = recipes.load(path).data.get("root") or recipes.load(path).data.get("path")
        if not Path(data_path).exists():
            pytest.skip(f"{data_path} not found beside this checkout")
    result = run(path, out=tmp_path / "out", progress=False, verbose=False)
    assert result.ok, result.failed
    loaded = recipes.load(path)
    free = label_free_presets(loaded)  # zero-shot presets run at k = 0 only, the others at k >= 1 only
    expected = len(grid([p.name for p in loaded.resolved_presets], loaded.shots, loaded.seeds, free))
    assert len(result.finished) == expected
    assert (tmp_path / "out" / "summary.md").is_file() and (
        tmp_path / "out" / "label_efficiency.png"
    ).is_file()


def test_run_dir_layout(tmp_path: Path) -> None:
    assert run_dir(tmp_path, "lora/r8-attn", "all", 3) == tmp_path / "lora" / "r8-attn" / "kall" / "seed3"
    shutil.rmtree(tmp_path)


def test_resume_continues_an_interrupted_training_run(tmp_path, monkeypatch) -> None:
    """A run killed after its first epoch resumes from the checkpoint and ends as an uninterrupted run."""
    import hfm.train

    recipe = {
        "name": "resume",
        "backbone": {"name": "pathology/kaiko-vitb16", "twin": True},
        "data": {"type": "synthetic", "n_classes": 2, "n_per_class": 8, "seed": 0},
        "presets": ["lora/r8-attn"],
        "shots": [4],
        "seeds": [0],
        "training": {"epochs": 3, "batch_size": 4, "patience": 10},
        "bootstrap": 50,
    }
    whole = hfm.run(recipe, out=tmp_path / "whole", progress=False, verbose=False)
    assert whole.ok

    real_fit = hfm.train.fit

    def killed_after_first_epoch(model, train, val=None, config=None, **kwargs):  # type: ignore[no-untyped-def]
        def stop(entry: dict) -> None:
            raise KeyboardInterrupt  # after the epoch's checkpoint was written

        return real_fit(model, train, val, config, on_epoch_end=stop)

    monkeypatch.setattr(hfm.train, "fit", killed_after_first_epoch)
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        hfm.run(recipe, out=cut, progress=False, verbose=False)
    run = cut / "lora" / "r8-attn" / "k4" / "seed0"
    checkpoint = cut / ".checkpoints" / "lora" / "r8-attn" / "k4" / "seed0"
    assert not run.exists() and any(checkpoint.iterdir())

    monkeypatch.setattr(hfm.train, "fit", real_fit)
    resumed = hfm.run(recipe, out=cut, resume=True, progress=False, verbose=False)
    assert resumed.ok and resumed.finished == [run]
    fit = json.loads((run / "metrics.json").read_text())["fit"]
    assert fit["epochs"] == 3 and fit["resumed_from_epoch"] == 1
    assert (run / "predictions.csv").read_text() == (
        whole.out_dir / "lora" / "r8-attn" / "k4" / "seed0" / "predictions.csv"
    ).read_text()
    assert not checkpoint.exists()  # a finished run leaves no checkpoint behind
