"""Aggregators: what makes a bag classifier a bag classifier (order, padding, weights, a bag of one)."""

from __future__ import annotations

import pytest
import torch

from hfm.mil.aggregators import AGGREGATORS, build_aggregator
from hfm.mil.fit import pad, sample_rows

NAMES = sorted(AGGREGATORS)


def _model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_aggregator(name, 8, 3, hidden_dim=16, att_dim=8, dropout=0.5).eval()


def test_all_four_aggregators_are_offered() -> None:
    assert NAMES == ["abmil", "clam_sb", "max", "mean"]


@pytest.mark.parametrize("name", NAMES)
def test_bag_logits_do_not_depend_on_instance_order(name: str) -> None:
    model = _model(name)
    bag = torch.randn(1, 7, 8)
    shuffled = bag[:, torch.randperm(7, generator=torch.Generator().manual_seed(1))]
    torch.testing.assert_close(model(bag), model(shuffled), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_masked_padding_changes_nothing(name: str) -> None:
    model = _model(name)
    short, long = torch.randn(3, 8), torch.randn(9, 8)
    x, mask = pad([short, long])
    x[0, 3:] = 100.0  # whatever sits in the padding must not matter
    logits, weights = model.forward_with_attention(x, mask)
    torch.testing.assert_close(logits[0], model(short.unsqueeze(0))[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits[1], model(long.unsqueeze(0))[0], rtol=1e-5, atol=1e-6)
    assert torch.all(weights[0, 3:] == 0)


@pytest.mark.parametrize("name", NAMES)
def test_weights_sum_to_one_over_real_instances(name: str) -> None:
    model = _model(name)
    x, mask = pad([torch.randn(2, 8), torch.randn(5, 8), torch.randn(4, 8)])
    _, weights = model.forward_with_attention(x, mask)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(3))
    assert torch.all(weights[mask] >= 0)


@pytest.mark.parametrize("name", NAMES)
def test_a_bag_of_one_instance_is_the_instance_classifier(name: str) -> None:
    model = _model(name)
    instances = torch.randn(4, 8)
    as_bags = model(instances.unsqueeze(1))  # four bags of one instance each
    torch.testing.assert_close(as_bags, model.instance_logits(instances), rtol=1e-5, atol=1e-6)


def test_attention_follows_the_instances_that_decide_the_bag() -> None:
    torch.manual_seed(0)
    model = build_aggregator("abmil", 4, 2, hidden_dim=16, att_dim=8, dropout=0.0)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):  # bag positive when it holds one instance with a large first feature
        bags = [torch.randn(6, 4) for _ in range(16)]
        labels = torch.tensor([i % 2 for i in range(16)])
        for bag, label in zip(bags, labels, strict=True):
            if label == 1:
                bag[0, 0] = 4.0
        x, mask = pad(bags)
        loss = torch.nn.functional.cross_entropy(model(x, mask), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    bag = torch.randn(1, 6, 4)
    bag[0, 3, 0] = 4.0
    _, weights = model.forward_with_attention(bag)
    assert int(weights[0].argmax()) == 3


def test_clam_instance_loss_is_positive_and_trains() -> None:
    model = _model("clam_sb").train()
    x, mask = pad([torch.randn(8, 8), torch.randn(6, 8)])
    loss = model.auxiliary_loss(x, mask, torch.tensor([0, 2]))
    assert loss > 0 and loss.requires_grad


def test_empty_bags_are_refused_and_large_ones_sampled() -> None:
    from hfm.errors import MethodError

    with pytest.raises(MethodError, match="empty bag"):
        pad([torch.randn(2, 8), torch.zeros(0, 8)])
    rows = sample_rows(100, 10, torch.Generator().manual_seed(0))
    assert len(rows) == len(set(rows.tolist())) == 10
    assert sample_rows(5, 10, torch.Generator()).tolist() == [0, 1, 2, 3, 4]
