"""``federation.engine: flower``: Flower's own simulation engine (Ray) runs the same ClientApp and strategy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from safetensors.torch import load_file

from hfm.cli import main
from hfm.federated.server import flower_engine_available

from .conftest import SYNTHETIC, TWIN

RECIPE = {
    "name": "fed-engines",
    "backbone": {"name": TWIN, "twin": True},
    "data": SYNTHETIC,
    "split": {"scheme": "iid", "sites": 2},
    "preset": "probe/logreg",
    "shots": [2],
    "seeds": [0],
    "federation": {"rounds": 2, "local_steps": 5},
    "bootstrap": 20,
}
RUN = Path("probe") / "logreg" / "k2" / "seed0"


def _federate(tmp_path: Path, engine: str) -> Path:
    recipe = {**RECIPE, "federation": {**RECIPE["federation"], "engine": engine}}
    path = tmp_path / f"{engine}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / engine
    assert main(["federate", str(path), "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.skipif(
    not flower_engine_available(),
    reason="Flower's simulation engine needs Ray: pip install 'hfm-hub[federated-ray]'",
)
def test_flower_engine_gives_the_local_engines_adapter_and_outputs(tmp_path: Path, capsys: Any) -> None:
    local, flower = _federate(tmp_path, "local"), _federate(tmp_path, "flower")
    for name in ("comparison.md", "comparison.json", "rounds.png"):
        assert (flower / name).is_file(), name
    a, b = (load_file(str(out / RUN / "adapter" / "weights.safetensors")) for out in (local, flower))
    # Equal, not only close: the sites' local training is seeded per round, and with two sites the weighted sum
    # does not depend on the order Ray's workers answer in (addition of two terms commutes).
    assert a.keys() == b.keys() and all(bool((a[k] == b[k]).all()) for k in a)
    record = json.loads((flower / RUN / "metrics.json").read_text())
    fed = record["federation"]
    assert fed["engine"] == "flwr (simulation engine)" and fed["aggregated_rounds"] == [1, 2]
    # Only the head crossed the wire, from both sites, in both rounds.
    replies = [w for w in record["wire"] if w["direction"] == "to-server" and w["type"] == "train"]
    assert sorted(w["node"] for w in replies) == [1, 1, 2, 2]
    assert all(w["arrays"] == ["head.bias", "head.weight"] for w in replies)
    assert main(["card", str(flower), "--out", str(tmp_path / "README.md")]) == 0
    assert (
        "2 sites trained this adapter with Flower, 2 rounds of `fedavg`"
        in (tmp_path / "README.md").read_text()
    )


def test_flower_engine_refuses_per_site_heads() -> None:
    from pydantic import ValidationError

    from hfm.federated.recipe import FederationBlock

    with pytest.raises(ValidationError, match="personal_head runs on engine: local only"):
        FederationBlock(engine="flower", personal_head=True)


def test_flower_engine_without_ray_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from hfm.federated import server

    monkeypatch.setattr(server, "flower_engine_available", lambda: False)
    recipe = {**RECIPE, "federation": {**RECIPE["federation"], "engine": "flower"}}
    path = tmp_path / "fed.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["federate", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "pip install 'hfm-hub[federated-ray]'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written
