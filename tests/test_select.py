"""`hfm select` and `hfm run --labelled`: the select -> label -> run -> select again loop from the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from hfm.cli import main
from hfm.data import load_data
from hfm.methods.samplers import round_budgets
from hfm.recipes import load

DATA = {"type": "synthetic", "n_classes": 3, "n_per_class": 8, "n_val_per_class": 2, "n_test_per_class": 3}


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    body = {
        "backbone": "pathology/uni",
        "data": DATA,
        "presets": ["probe/logreg"],
        "shots": [1],
        "bootstrap": 20,
    }
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


def _select(recipe: Path, out: Path, budget: int, *extra: str) -> int:
    args = ["select", str(recipe), "--budget", str(budget), "--out", str(out), "--twin", "--no-progress"]
    return main([*args, *extra])


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _label(recipe: Path, ids: list[str], path: Path) -> None:
    """Play the annotator: write the true class name of each id."""
    splits = load_data(load(recipe).data)
    truth = dict(zip(splits.train.ids, splits.train.labels.tolist(), strict=True))
    lines = ["id,label", *(f"{i},{splits.classes[truth[i]]}" for i in ids)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_round_trip(recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sel = tmp_path / "sel"
    assert _select(recipe, sel, 4) == 0
    first = _rows(sel / "to_label.csv")
    assert [r["round"] for r in first] == ["0"] * 4 and len({r["id"] for r in first}) == 4
    assert set(first[0]) == {"id", "path", "score", "round"}
    assert (sel / "contact_sheet.png").stat().st_size > 0
    files = {name: (sel / name).read_bytes() for name in ("to_label.csv", "query_log.json")}

    # idempotent: the same round again writes the same files
    assert _select(recipe, sel, 4) == 0
    assert {name: (sel / name).read_bytes() for name in files} == files

    labels = sel / "labels.csv"
    _label(recipe, [r["id"] for r in first], labels)
    out = tmp_path / "run"
    code = main(["run", str(recipe), "--labelled", str(labels), "--out", str(out), "--twin", "--no-progress"])
    assert code == 0
    folder = out / "probe" / "logreg" / "kall" / "seed0"
    episode = json.loads((folder / "episode.json").read_text())
    assert sorted(episode["ids"]) == sorted(r["id"] for r in first)
    assert episode["rounds"][0]["strategy"] == "typiclust" and len(episode["rounds"][0]["indices"]) == 4
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["n_train"] == 4 and metrics["queries"] == [{"round": 0, "strategy": "typiclust", "n": 4}]
    config = json.loads((folder / "adapter" / "hfm_config.json").read_text())
    assert config["queries"] == metrics["queries"]
    card = tmp_path / "README.md"
    assert main(["card", str(out), "--out", str(card)]) == 0
    assert "Labels chosen by active learning: round 0: 4 by `typiclust`" in card.read_text()

    capsys.readouterr()
    assert _select(recipe, sel, 3, "--labelled", str(labels), "--strategy", "margin") == 0
    second = _rows(sel / "to_label.csv")
    assert [r["round"] for r in second] == ["1"] * 3
    assert not {r["id"] for r in second} & {r["id"] for r in first}
    log = json.loads((sel / "query_log.json").read_text())["rounds"]
    assert [(r["round"], r["strategy"], len(r["ids"])) for r in log] == [
        (0, "typiclust", 4),
        (1, "margin", 3),
    ]
    assert "note" not in capsys.readouterr().err


def test_labels_of_images_never_queried_are_kept_and_said(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sel = tmp_path / "sel"
    splits = load_data(load(recipe).data)
    labels = tmp_path / "labels.csv"
    _label(recipe, splits.train.ids[:2], labels)
    assert _select(recipe, sel, 2, "--labelled", str(labels)) == 0
    err = capsys.readouterr().err
    assert "hfm: note: 2 labelled image(s) were not chosen by hfm select" in err
    chosen = {r["id"] for r in _rows(sel / "to_label.csv")}
    assert not chosen & set(splits.train.ids[:2])


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        (
            "id,label\nnot-an-image,class_0\n",
            "line 2: id 'not-an-image' is not a training image of this source",
        ),
        ("id,label\n{id},no-such-class\n", "line 2: unknown class 'no-such-class'; use one of"),
        ("name,label\n{id},x\n", "expected a CSV with columns id,label"),
    ],
)
def test_bad_labels_are_one_line_and_nothing_is_written(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], csv_text: str, message: str
) -> None:
    splits = load_data(load(recipe).data)
    labels = tmp_path / "labels.csv"
    labels.write_text(csv_text.format(id=splits.train.ids[0]), encoding="utf-8")
    sel = tmp_path / "sel"
    assert _select(recipe, sel, 2, "--labelled", str(labels)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not sel.exists()
    out = tmp_path / "run"
    assert (
        main(["run", str(recipe), "--labelled", str(labels), "--out", str(out), "--twin", "--no-progress"])
        != 0
    )


def test_budget_larger_than_the_pool(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _select(recipe, tmp_path / "sel", 25) == 2
    err = capsys.readouterr().err.strip()
    assert err == "hfm: error: budget 25 is larger than the 24 training images; lower it"


def test_a_strategy_that_reads_the_truth_is_refused(
    recipe: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _select(recipe, tmp_path / "sel", 2, "--strategy", "class-balanced") == 2
    assert "reads the true labels" in capsys.readouterr().err


@pytest.mark.slow
def test_sampler_axis_in_a_recipe(tmp_path: Path) -> None:
    from hfm.runner import run

    body = {
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": DATA,
        "presets": ["probe/logreg"],
        "shots": [1, 2],
        "seeds": [0, 1],
        "samplers": ["class-balanced", "random", "typiclust"],
        "rounds": 2,
        "bootstrap": 0,
    }
    out = tmp_path / "out"
    result = run(body, out=out, progress=False, verbose=False)
    assert result.ok and len(result.finished) == 12
    base = out / "probe" / "logreg"
    assert (base / "k1" / "seed0" / "metrics.json").exists()  # the default sampler keeps today's folders
    for sampler in ("random", "typiclust"):
        for k in (1, 2):
            episode = json.loads((base / f"k{k}" / sampler / "seed1" / "episode.json").read_text())
            assert len(episode["ids"]) == 3 * k
            assert [len(r["indices"]) for r in episode["rounds"]] == round_budgets(3 * k, 2)
    summary = json.loads((out / "summary.json").read_text())
    names = {(row["preset"], row["k"]) for row in summary["rows"]}
    assert ("probe/logreg [typiclust]", 2) in names and ("probe/logreg", 1) in names
    compared = json.loads((out / "samplers.json").read_text())["rows"]
    assert {(r["sampler"], r["k"]) for r in compared} == {
        (s, k) for s in ("class-balanced", "typiclust") for k in (1, 2)
    }
    assert all(r["difference"]["n"] == 2 for r in compared)
    assert "| probe/logreg | 1 | typiclust |" in (out / "samplers.md").read_text()


def test_paired_difference() -> None:
    from hfm.sampler_report import paired_difference

    diff = paired_difference([0.6, 0.7, 0.8], [0.5, 0.5, 0.9])
    assert diff["mean"] == pytest.approx(0.2 / 3) and diff["wins"] == 2 and diff["n"] == 3
    low, high = diff["ci95"]
    assert low < diff["mean"] < high and high - low == pytest.approx(
        2 * 4.302653 * 0.152753 / 3**0.5, rel=1e-4
    )
