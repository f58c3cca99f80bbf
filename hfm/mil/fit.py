"""Training and prediction of a bag aggregator on cached instance embeddings.

Training reads bags in mini-batches padded to the longest bag with a padding mask, and samples at most
``bag_instances`` instances of each bag afresh every epoch (fewer instances per step, and a regulariser: the
aggregator cannot memorise one fixed set of instances per bag). Evaluation reads every instance of a bag, up to
``max_instances`` (a bag larger than that is sampled once, deterministically, and the run says which bags were).
AdamW's weight decay and early stopping on the validation bags' loss (best epoch restored) guard against the
overfitting that few bags invite. Everything random is drawn from generators seeded by the run's seed, so a
run is repeatable.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hfm.errors import MethodError
from hfm.tuners.mil import MilModel


@dataclasses.dataclass
class BagTraining:
    """How a bag aggregator trains (the ``mil`` method's parameters).

    Attributes:
        epochs: Most passes over the training bags.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        patience: Stop after this many epochs without a lower validation loss (``None``: never).
        bags_per_step: Bags per optimisation step.
        bag_instances: Instances sampled per bag and epoch in training (``None``: all of them).
        max_instances: Most instances read from one bag at evaluation; a larger bag is sampled (and said).
    """

    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int | None = 10
    bags_per_step: int = 8
    bag_instances: int | None = 64
    max_instances: int = 4096


def pad(bags: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack bags ``[n_i, D]`` into ``[B, N, D]`` (zero padding) and a boolean mask ``[B, N]`` of real rows.

    Raises:
        MethodError: A bag is empty.
    """
    if any(len(b) == 0 for b in bags):
        raise MethodError("an empty bag cannot be classified: every bag needs at least one instance")
    longest = max(len(b) for b in bags)
    x = bags[0].new_zeros((len(bags), longest, bags[0].shape[-1]))
    mask = torch.zeros((len(bags), longest), dtype=torch.bool)
    for i, bag in enumerate(bags):
        x[i, : len(bag)] = bag
        mask[i, : len(bag)] = True
    return x, mask


def sample_rows(n: int, most: int | None, generator: torch.Generator) -> torch.Tensor:
    """Positions of at most ``most`` of ``n`` instances, drawn without replacement (all, in order, when n fits)."""
    if most is None or n <= most:
        return torch.arange(n)
    return torch.randperm(n, generator=generator)[:most].sort().values


def _loss(model: MilModel, bags: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    x, mask = pad(bags)
    x, mask = model.standardize(x.to(model.feat_mean.device)), mask.to(model.feat_mean.device)
    logits, _ = model.head.forward_with_attention(x, mask)
    labels = labels.to(logits.device)
    return F.cross_entropy(logits, labels) + model.head.auxiliary_loss(x, mask, labels)


def fit_bags(
    model: MilModel,
    train: Sequence[torch.Tensor],
    train_labels: np.ndarray,
    val: Sequence[torch.Tensor],
    val_labels: np.ndarray,
    config: BagTraining,
    *,
    seed: int,
    progress: bool = False,
) -> dict[str, Any]:
    """Train ``model``'s aggregator on bags of embeddings; returns what happened (epochs, best epoch, losses)."""
    if not train:
        raise MethodError("no training bags: the draw is empty")
    torch.manual_seed(seed)
    model.set_standardisation(torch.cat(list(train)).float())
    generator = torch.Generator().manual_seed(seed)
    y_train = torch.as_tensor(np.asarray(train_labels), dtype=torch.long)
    y_val = torch.as_tensor(np.asarray(val_labels), dtype=torch.long)
    val_eval = [b[sample_rows(len(b), config.max_instances, generator)] for b in val]
    optimiser = torch.optim.AdamW(model.head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    bad, epoch, losses = 0, 0, []
    bar = tqdm(range(config.epochs), desc="mil", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        model.head.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(order), config.bags_per_step):
            chosen = order[start : start + config.bags_per_step].tolist()
            bags = [train[i][sample_rows(len(train[i]), config.bag_instances, generator)] for i in chosen]
            loss = _loss(model, bags, y_train[chosen])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(chosen)
        losses.append(total / len(train))
        if not val_eval:
            continue
        model.head.eval()
        with torch.no_grad():
            val_loss = float(_loss(model, val_eval, y_val))
        bar.set_postfix(train=f"{losses[-1]:.3f}", val=f"{val_loss:.3f}")
        if best is None or val_loss < best[0] - 1e-6:
            best, bad = (val_loss, epoch, copy.deepcopy(model.head.state_dict())), 0
        else:
            bad += 1
            if config.patience is not None and bad >= config.patience:
                break
    bar.close()
    if best is not None:
        model.head.load_state_dict(best[2])
    model.head.eval()
    return {
        "epochs": epoch + 1,
        "best_epoch": None if best is None else best[1] + 1,
        "val_loss": None if best is None else round(best[0], 6),
        "train_loss": round(losses[-1], 6) if losses else None,
        "stopped_early": best is not None and epoch + 1 < config.epochs,
    }


@dataclasses.dataclass
class BagPredictions:
    """What a model says about bags.

    Attributes:
        proba: Class probabilities ``[B, C]``.
        weights: Per bag, the weight of each instance read (sums to one).
        rows: Per bag, which of its instances were read (all, unless the bag was sampled).
        sampled: Indices of the bags larger than ``max_instances`` that were sampled.
    """

    proba: np.ndarray
    weights: list[np.ndarray]
    rows: list[np.ndarray]
    sampled: list[int]


def predict_bags(
    model: MilModel, bags: Sequence[torch.Tensor], *, max_instances: int = 4096, seed: int = 0
) -> BagPredictions:
    """Probabilities and instance weights of each bag, reading all its instances (up to ``max_instances``)."""
    generator = torch.Generator().manual_seed(seed)
    model.eval()
    proba, weights, rows, sampled = [], [], [], []
    with torch.no_grad():
        for i, bag in enumerate(bags):
            if len(bag) == 0:
                raise MethodError(f"bag {i} is empty: every bag needs at least one instance")
            keep = sample_rows(len(bag), max_instances, generator)
            if len(keep) < len(bag):
                sampled.append(i)
            logits, weight = model.bag_logits(bag[keep].unsqueeze(0))
            proba.append(logits.float().softmax(dim=-1)[0].cpu().numpy())
            weights.append(weight[0].cpu().numpy())
            rows.append(keep.numpy())
    return BagPredictions(np.asarray(proba, dtype=np.float64), weights, rows, sampled)
