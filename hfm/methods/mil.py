"""Multiple-instance learning: train a bag aggregator (tuner ``mil``) on cached instance embeddings.

A bag run's draw holds exactly k train bags per class (:func:`hfm.data.bags.bag_draw`); every instance is
embedded once by the sweep's cache. The aggregator trains on the drawn bags with instance sampling, weight decay
and early stopping on the validation bags (:mod:`hfm.mil.fit`), and is evaluated on every test bag with all its
instances (a bag above ``max_instances`` is sampled, and the run says so). The run then holds bag-level
predictions and metrics, ``attention.csv`` and ``bags/*.png`` (:mod:`hfm.mil.outputs`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from hfm.data.bags import BagDraw
from hfm.errors import MethodError
from hfm.methods import register_method
from hfm.methods.base import Method, MethodConfig, MethodResult, Needs, RunContext
from hfm.mil.fit import BagTraining, fit_bags, predict_bags
from hfm.mil.outputs import write_attention, write_bag_pictures
from hfm.tuners.base import AdaptedModel


@dataclasses.dataclass
class MilMethodConfig(MethodConfig, BagTraining):
    """The ``mil`` method's parameters: :class:`~hfm.mil.fit.BagTraining` plus the pictures.

    Attributes:
        pictures: PNGs written for this many test bags (the most confidently predicted); 0: none.
    """

    pictures: int = 8

    def check(self, name: str) -> None:
        values = {"epochs": self.epochs, "lr": self.lr, "bags_per_step": self.bags_per_step,
                  "max_instances": self.max_instances, "bag_instances": self.bag_instances,
                  "patience": self.patience}  # fmt: skip
        for key, value in values.items():
            if value is not None and value <= 0:
                raise MethodError(f"method {name!r}: parameter {key!r} must be positive, got {value}")
        if self.weight_decay < 0 or self.pictures < 0:
            raise MethodError(f"method {name!r}: weight_decay and pictures must be >= 0")


@register_method("mil")
class Mil(Method):
    """Bags of cached instance embeddings train the ``mil`` tuner's aggregator."""

    config_cls = MilMethodConfig
    config: MilMethodConfig
    needs = Needs(unit="bag", inputs="embeddings")

    def check(self, tuner: type[AdaptedModel]) -> None:
        if not getattr(tuner, "aggregates_bags", False):
            raise MethodError(
                f"method {self.method_name!r} trains a bag aggregator: use tuner 'mil' "
                f"(with params {{aggregator: abmil}}), not {tuner.tuner_name!r}"
            )

    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        drawn = ctx.draw
        if not isinstance(drawn, BagDraw) or drawn.bags is None:
            raise MethodError(f"method {self.method_name!r} learns from bags: set unit: bag in the recipe")
        from hfm.tuners.mil import MilModel

        assert isinstance(model, MilModel)
        bags, emb = drawn.bags, ctx.embeddings()
        train = [emb.of(m) for m in drawn.members()]
        val = [emb.val[torch.as_tensor(m)] for m in bags.val.members]
        test = [emb.test[torch.as_tensor(m)] for m in bags.test.members]
        info: dict[str, Any] = fit_bags(
            model, train, drawn.episode.labels, val, bags.val.labels, self.config,
            seed=ctx.seed, progress=ctx.progress,
        )  # fmt: skip
        pred = predict_bags(model, test, max_instances=self.config.max_instances, seed=ctx.seed)
        sampled = [bags.test.ids[i] for i in pred.sampled]
        if sampled:
            tqdm.write(
                f"hfm: {len(sampled)} test bag(s) hold more than max_instances={self.config.max_instances} "
                f"instances and were sampled to that many (first: {sampled[0]!r}); raise max_instances if "
                "memory allows"
            )
        info.update(
            unit="bag",
            n_bags=len(train),
            n_instances=int(sum(len(b) for b in train)),
            bags=bags.describe(),
            sampled_bags=sampled,
        )
        test_split = ctx.splits.test
        positions = [bags.test.members[b][pred.rows[b]] for b in range(len(test))]

        def write(folder: Path) -> None:
            instance_ids = [[test_split.ids[int(i)] for i in p] for p in positions]
            write_attention(folder / "attention.csv", bags.test.ids, instance_ids, pred.weights)
            readers = [lambda j, p=p: test_split.image(int(p[j])) for p in positions]
            write_bag_pictures(
                folder / "bags", bags.test.ids, pred.proba, ctx.splits.classes, readers, pred.weights,
                top=self.config.pictures, labels=bags.test.labels,
            )  # fmt: skip

        return MethodResult(
            proba=pred.proba, info=info, ids=bags.test.ids, labels=bags.test.labels, write=write
        )
