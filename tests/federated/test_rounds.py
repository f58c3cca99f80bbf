"""The federation itself: weighted aggregation, what crosses the wire, dropped sites, determinism, FedProx."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from hfm.federated.client import make_client_app
from hfm.federated.recipe import FederationBlock
from hfm.federated.server import SiteDroppedWarning, federate
from hfm.federated.wire import WireError, to_record, trainable_state

from .conftest import arrays_of


def _run(trainers: list[Any], federation: FederationBlock, seed: int = 0) -> Any:
    app = make_client_app(lambda context: trainers[int(context.node_id) - 1])
    initial = to_record(trainers[0].model)
    return federate(app, len(trainers), initial, federation, seed=seed)


def test_aggregate_is_the_weighted_mean_of_the_site_updates(trainers_of: Any) -> None:
    federation = FederationBlock(rounds=1, local_steps=5)
    trainers = trainers_of(sizes=(2, 4, 9), federation=federation)
    initial = trainable_state(trainers[0].model)
    result = _run(trainers, federation)

    # The same local updates, recomputed site by site from the same initial adapter.
    again = trainers_of(sizes=(2, 4, 9), federation=federation)
    updates = [t.fit(initial, 1, 0.0) for t in again]
    total = sum(n for _, n, _ in updates)
    expected = {name: sum(state[name].numpy() * n / total for state, n, _ in updates) for name in initial}
    got = arrays_of(result.arrays)
    assert set(got) == set(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-7)
    plain = {name: np.mean([state[name].numpy() for state, _, _ in updates], axis=0) for name in initial}
    assert any(not np.allclose(got[n], plain[n], atol=1e-6) for n in plain)  # weighting matters here


@pytest.mark.parametrize("tuner", ["probe", "lora", "vpt"])
def test_only_trainable_adapter_weights_cross_the_wire(trainers_of: Any, tuner: str) -> None:
    federation = FederationBlock(rounds=1, local_steps=2, local_epochs=1)
    trainers = trainers_of(tuner, sizes=(3, 3, 3), federation=federation)
    model = trainers[0].model
    trainable = {n: tuple(p.shape) for n, p in model.trainable_parameters().items()}
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen, "the backbone must have frozen weights for this test to mean anything"
    result = _run(trainers, federation)

    assert result.log, "messages were logged"
    trainable_bytes = sum(int(np.prod(s)) * 4 for s in trainable.values())
    n_images = max(len(t.labelled) for t in trainers) + max(len(t.test) for t in trainers)
    for sent in result.log:
        assert set(sent.record_kinds) <= {"ArrayRecord", "MetricRecord", "ConfigRecord"}
        if sent.arrays:
            assert sent.arrays == trainable  # exactly the adapter, by name and shape
            assert not set(sent.arrays) & frozen
            assert sent.nbytes == trainable_bytes
        for value in sent.metrics.values():  # scalars only: no per-image predictions or embeddings
            assert isinstance(value, (int, float))
        assert set(sent.metrics) <= {"num-examples", "train_loss", "accuracy", "balanced_accuracy"}
        assert len(sent.metrics) < n_images
    to_server = [s for s in result.log if s.direction == "to-server" and s.message_type == "train"]
    assert len(to_server) == 3 and all(s.arrays for s in to_server)


def test_a_tensor_outside_the_adapter_is_refused(trainers_of: Any) -> None:
    model = trainers_of(sizes=(2,))[0].model
    state = dict(trainable_state(model))
    frozen_name, frozen = next((n, p) for n, p in model.named_parameters() if not p.requires_grad)
    with pytest.raises(WireError, match="unexpected"):
        to_record(model, {**state, frozen_name: frozen.detach()})


def test_a_failing_site_is_dropped_for_that_round_and_training_goes_on(trainers_of: Any) -> None:
    federation = FederationBlock(rounds=3, local_steps=3)
    trainers = trainers_of(sizes=(2, 4, 6), federation=federation)
    trainers[1].fail_in_round = 2
    with pytest.warns(SiteDroppedWarning, match="round 2: site \\(node 2\\) failed"):
        result = _run(trainers, federation)
    assert sorted(result.train_metrics) == [1, 2, 3]  # every round aggregated
    replies = [s for s in result.log if s.direction == "to-server" and s.message_type == "train"]
    assert [bool(s.arrays) for s in replies] == [True, True, True, True, False, True, True, True, True]
    # Round 2's aggregate weighs only sites 1 and 3: the mean number of examples says so.
    assert result.train_metrics[2]["train_loss"] == pytest.approx(
        np.average([replies[3].metrics["train_loss"], replies[5].metrics["train_loss"]], weights=[2, 6])
    )


def test_too_few_sites_keep_the_previous_adapter(trainers_of: Any) -> None:
    federation = FederationBlock(rounds=1, local_steps=3, min_sites=3)
    trainers = trainers_of(sizes=(2, 4, 6), federation=federation)
    trainers[0].fail_in_round = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _run(trainers, federation)
    assert any("stays as it was" in str(w.message) for w in caught)
    assert result.arrays is None and result.train_metrics == {}


def test_simulation_is_deterministic_under_a_seed(trainers_of: Any) -> None:
    federation = FederationBlock(rounds=2, local_steps=4, lr=0.1)
    first = arrays_of(_run(trainers_of(seed=3, federation=federation), federation, seed=3).arrays)
    second = arrays_of(_run(trainers_of(seed=3, federation=federation), federation, seed=3).arrays)
    other = arrays_of(
        _run(
            trainers_of(seed=4, federation=federation, tuner="probe", params={"hidden_dim": 8}),
            federation,
            seed=4,
        ).arrays
    )
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name])
    assert first.keys() != other.keys() or any(not np.array_equal(first[n], other[n]) for n in first)


def test_end_to_end_tuner_is_deterministic_under_a_seed(trainers_of: Any) -> None:
    federation = FederationBlock(rounds=1, local_epochs=1)
    runs = [
        arrays_of(
            _run(
                trainers_of("lora", seed=1, sizes=(2, 3, 4), federation=federation), federation, seed=1
            ).arrays
        )
        for _ in range(2)
    ]
    for name in runs[0]:
        assert np.array_equal(runs[0][name], runs[1][name])


def test_fedprox_sends_mu_and_holds_sites_near_the_global_adapter(trainers_of: Any) -> None:
    def drift(mu: float) -> float:
        federation = FederationBlock(strategy="fedprox", proximal_mu=mu, rounds=1, local_steps=20, lr=0.2)
        trainers = trainers_of(sizes=(6, 6, 6), federation=federation)
        initial = trainable_state(trainers[0].model)
        result = _run(trainers, federation)
        sent = [s for s in result.log if s.direction == "to-site" and s.message_type == "train"]
        assert all(s.configs.get("config.proximal-mu") == mu for s in sent)
        final = arrays_of(result.arrays)
        return float(sum(np.square(final[n] - initial[n].numpy()).sum() for n in final))

    assert drift(100.0) < 0.5 * drift(0.0)
