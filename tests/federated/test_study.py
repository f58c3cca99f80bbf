"""``hfm federate``: the study folder, the adapter that loads like any other, its card, and the Flower apps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import hfm
from hfm.cli import main
from hfm.federated.recipe import load

from .conftest import SYNTHETIC

RECIPE = {
    "name": "fed-test",
    "backbone": {"name": "radiology/rad-dino", "twin": True},
    "data": SYNTHETIC,
    "split": {"scheme": "dirichlet", "sites": 3, "alpha": 1.0},
    "preset": "probe/logreg",
    "shots": [2],
    "seeds": [0, 1],
    "federation": {"strategy": "fedprox", "proximal_mu": 0.05, "rounds": 2, "local_steps": 5},
    "bootstrap": 20,
}


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "fed.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    return path


@pytest.mark.slow
def test_federate_command_writes_comparison_adapter_and_card(
    recipe_file: Path, tmp_path: Path, capsys: Any
) -> None:
    out = tmp_path / "out"
    assert main(["federate", str(recipe_file), "--out", str(out), "--no-progress"]) == 0
    assert "fed − local" in capsys.readouterr().out
    for name in ("comparison.md", "comparison.json", "rounds.png", "summary.md", "recipe.yaml"):
        assert (out / name).is_file(), name
    comparison = json.loads((out / "comparison.json").read_text())
    assert {r["test"] for r in comparison["rows"]} == {"site-1", "site-2", "site-3", "pooled"}
    assert all(r["seeds"] == 2 for r in comparison["rows"])

    run = out / "probe" / "logreg" / "k2" / "seed0"
    record = json.loads((run / "metrics.json").read_text())
    assert [p["round"] for p in record["rounds"]] == [0, 1, 2]  # 0: the initial adapter
    assert all(0 <= p["pooled_balanced_accuracy"] <= 1 for p in record["rounds"])
    assert set(record["comparison"]) == {"federated", "local-only", "centralised"}
    assert sorted(p.name for p in (run / "sites").iterdir()) == ["site-1", "site-2", "site-3"]

    # The federated adapter saves and loads like any other, and states how it was trained.
    config = json.loads((run / "adapter" / "hfm_config.json").read_text())
    assert config["federation"]["strategy"] == "fedprox" and config["federation"]["rounds"] == 2
    assert len(config["federation"]["sites"]) == 3
    model = hfm.load_adapter(str(run / "adapter"))
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    batch = __import__("torch").stack(
        [model.backbone.transform(__import__("PIL.Image").Image.fromarray(i)) for i in images]
    )
    assert model.predict_proba(batch).shape == (2, 3)
    card = tmp_path / "README.md"
    assert main(["card", str(out), "--out", str(card)]) == 0
    assert "3 sites trained this adapter with Flower, 2 rounds of `fedprox`" in card.read_text()


def test_flower_apps_run_a_site_per_node_config(recipe_file: Path, tmp_path: Path) -> None:
    """The ClientApp and ServerApp of real deployments, driven by node and run configs over the local grid."""
    from hfm.federated import apps
    from hfm.federated.server import LocalGrid, _task_identity

    recipe = load(recipe_file)
    node_configs = {i: {"recipe": str(recipe_file), "site": f"site-{i}"} for i in (1, 2, 3)}
    out = tmp_path / "adapter"
    run_config = {"recipe": str(recipe_file), "classes": "a,b,c", "k": 2, "seed": 0, "out": str(out)}
    grid = LocalGrid(apps.client_app, recipe.n_sites, node_configs=node_configs, run_config=run_config)
    from flwr.app import Context, RecordDict

    context = Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config)
    with _task_identity(1):
        apps.serve(grid, context)
    config = json.loads((out / "hfm_config.json").read_text())
    assert config["classes"] == ["a", "b", "c"] and config["federation"]["aggregated_rounds"] == [1, 2]
    trainers = {key[1]: t for key, t in apps._TRAINERS.items() if key[0] == str(recipe_file)}
    assert sorted(trainers) == ["site-1", "site-2", "site-3"]
    assert len({len(t.labelled) for t in trainers.values()}) >= 1
    hfm.load_adapter(str(out))


def test_a_supernode_without_its_site_is_a_clear_error(recipe_file: Path) -> None:
    from flwr.app import Context, RecordDict

    from hfm.errors import ConfigError
    from hfm.federated import apps

    context = Context(
        run_id=1,
        node_id=5,
        node_config={"recipe": str(recipe_file), "site": "nowhere"},
        state=RecordDict(),
        run_config={},
    )
    with pytest.raises(ConfigError, match="not a simulated site"):
        apps.trainer_for(context)
    with pytest.raises(ConfigError, match="node-config"):
        apps.trainer_for(Context(run_id=1, node_id=5, node_config={}, state=RecordDict(), run_config={}))
