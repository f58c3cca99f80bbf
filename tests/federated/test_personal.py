"""Per-site heads (FedPer-style personalisation): the shared part is averaged, each site keeps its own head."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from hfm.errors import ConfigError
from hfm.federated.client import make_client_app
from hfm.federated.recipe import FederationBlock, parse
from hfm.federated.server import federate
from hfm.federated.wire import to_record, trainable_state

from .conftest import SYNTHETIC, arrays_of


def test_heads_never_travel_and_each_site_keeps_its_own(trainers_of: Any) -> None:
    federation = FederationBlock(rounds=2, local_epochs=1, personal_head=True)
    trainers = trainers_of("lora", sizes=(3, 4, 5), federation=federation)
    model = trainers[0].model
    heads = {n for n in model.trainable_parameters() if n.startswith("head.")}
    shared = {n: tuple(p.shape) for n, p in model.trainable_parameters().items() if n not in heads}
    assert heads and shared
    initial_heads = [{n: t.model.trainable_parameters()[n].detach().clone() for n in heads} for t in trainers]

    app = make_client_app(lambda context: trainers[int(context.node_id) - 1])
    result = federate(app, 3, to_record(model, trainable_state(model, True), True), federation, seed=0)

    arrays = [s for s in result.log if s.arrays]
    assert len(arrays) == 2 * 3 * 3  # 2 rounds x 3 sites x (train out, train back, evaluate out)
    for sent in arrays:
        assert sent.arrays == shared  # the head is in no message, either way
    final = arrays_of(result.arrays)
    assert set(final) == set(shared)
    for trainer, before in zip(trainers, initial_heads, strict=True):
        params = trainer.model.trainable_parameters()
        for name in shared:  # every site evaluated the aggregated shared part
            torch.testing.assert_close(params[name].detach(), torch.as_tensor(final[name]))
        assert any(not torch.equal(params[n].detach(), before[n]) for n in heads)  # its head trained locally
    weights = [trainers[i].model.trainable_parameters()["head.weight"].detach() for i in range(3)]
    assert not torch.allclose(weights[0], weights[1]) and not torch.allclose(weights[1], weights[2])


def test_per_site_heads_need_more_than_a_head() -> None:
    recipe = {
        "backbone": {"name": "radiology/rad-dino", "twin": True},
        "data": SYNTHETIC,
        "split": {"scheme": "iid", "sites": 2},
        "preset": "probe/logreg",
        "shots": 1,
        "federation": {"personal_head": True},
    }
    with pytest.raises(ConfigError, match="personal_head: the probe tuner is only a head") as info:
        parse(recipe, source="fed.yaml")
    assert "\n" not in str(info.value)
    assert parse({**recipe, "preset": "lora/r8-attn"}).federation.personal_head


@pytest.mark.slow
def test_study_saves_each_sites_personal_adapter_and_the_averaged_head(tmp_path: Any) -> None:
    import json

    import hfm
    from hfm.federated.study import run

    recipe = parse(
        {
            "backbone": {"name": "radiology/rad-dino", "twin": True},
            "data": {**SYNTHETIC, "n_per_class": 6, "n_test_per_class": 2},
            "split": {"scheme": "iid", "sites": 2},
            "preset": "lora/r8-attn",
            "shots": 2,
            "federation": {"rounds": 1, "local_epochs": 1, "personal_head": True},
            "training": {"batch_size": 4},
            "bootstrap": 0,
        }
    )
    study = run(recipe, out=tmp_path / "study", progress=False, verbose=False)
    folder = study.runs[0]
    record = json.loads((folder / "metrics.json").read_text())
    assert record["federation"]["personal_head"] is True
    models = [hfm.load_adapter(str(folder / "sites" / f"site-{i}" / "adapter")) for i in (1, 2)]
    shared = hfm.load_adapter(str(folder / "adapter"))
    params = [m.trainable_parameters() for m in (*models, shared)]
    for name in params[0]:
        if name.startswith("head."):  # the published head is the mean of the two sites' heads
            assert not torch.equal(params[0][name], params[1][name])
        else:  # the shared part is the same everywhere
            torch.testing.assert_close(params[0][name], params[2][name])
            torch.testing.assert_close(params[1][name], params[2][name])
    n = [s["labelled"] for s in record["federation"]["sites"]]  # weighted by each site's labelled examples
    mean = (n[0] * params[0]["head.weight"] + n[1] * params[1]["head.weight"]) / sum(n)
    torch.testing.assert_close(params[2]["head.weight"], mean)
