"""A site's side of the federation: train the adapter it is sent on its own draw, evaluate on its own test.

:class:`LocalTrainer` holds what never leaves the site (its splits, its draw, its embeddings) and one adapted
model. :func:`make_client_app` wraps trainers in a Flower ``ClientApp`` whose ``train`` and ``evaluate``
handlers read the global adapter from the message and answer with the updated adapter (``train``) or scalar
metrics (``evaluate``); the same app runs in hfm's in-process simulation and under a real Flower SuperNode.

Local training reuses hfm's machinery: :func:`hfm.train.fit` (with the method's loss plus FedProx's proximal term)
for tuners trained end to end; for the probe, which hfm otherwise fits in closed form with a validation-chosen
L2, a fixed-L2 logistic head trained by full-batch Adam from the global head, so every site takes the same kind
of step and the mean of the heads is meaningful.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from hfm.data.splits import Subset
from hfm.data.splits import concat as concat_subsets
from hfm.federated.wire import load_state, trainable_state
from hfm.metrics import score

if TYPE_CHECKING:
    from flwr.clientapp import ClientApp

    from hfm.federated.recipe import FederationBlock
    from hfm.train import Batch, Forward, TrainConfig
    from hfm.tuners.base import AdaptedModel


@dataclass
class LocalTrainer:
    """One site's local training and evaluation.

    Attributes:
        name: The site's name (stays local; messages identify sites by Flower node id).
        model: The site's adapted model (its own copy; a probe shares the frozen backbone).
        labelled: The site's labelled examples (its draw).
        test: The site's test split.
        federation: Local steps, learning rate and L2 of the federation block.
        training: Training settings for end-to-end tuners (preset defaults, recipe overrides).
        seed: Run seed; each round's local seed derives from it and the round.
        batch_size: Embedding batch size (probe).
        fail_in_round: For fault drills and tests: raise in this round (``None``: never).
    """

    name: str
    model: AdaptedModel
    labelled: Subset
    test: Subset
    federation: FederationBlock
    training: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    batch_size: int = 64
    fail_in_round: int | None = None
    _cache: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    # -- embeddings (probe) --------------------------------------------------------------------------------
    def embeddings(self, which: str) -> torch.Tensor:
        """Embeddings of the labelled set or the test split, extracted once at this site (and cached on disk)."""
        if which not in self._cache:
            from hfm.embeddings import extract

            subset = self.labelled if which == "labelled" else self.test
            self._cache[which] = extract(
                self.model.backbone, subset, batch_size=self.batch_size, split=which, progress=False
            )
        return self._cache[which]

    # -- what the messages ask for ----------------------------------------------------------------------
    def fit(
        self,
        state: dict[str, torch.Tensor],
        server_round: int,
        mu: float = 0.0,
        personal_head: bool | None = None,
    ) -> tuple[dict[str, torch.Tensor], int, dict[str, float]]:
        """Load the global adapter, train it locally, return the new trainable state, examples and mean loss.

        With per-site heads (``personal_head``; default: the federation block's) ``state`` lacks the head: the
        site's own head trains on from where it was, and the returned state lacks it too.
        """
        if self.fail_in_round is not None and server_round == self.fail_in_round:
            raise RuntimeError(f"{self.name}: simulated failure in round {server_round}")
        personal = self.federation.personal_head if personal_head is None else personal_head
        load_state(self.model, state, personal)
        anchor = {k: v.clone() for k, v in state.items()}
        seed = self.seed * 100_003 + server_round
        if self.model.uses_embeddings:
            loss = self._fit_head(anchor, mu, seed)
        else:
            loss = self._fit_end_to_end(anchor, mu, seed)
        return trainable_state(self.model, personal), len(self.labelled), {"train_loss": float(loss)}

    def evaluate(self, state: dict[str, torch.Tensor]) -> tuple[int, dict[str, float]]:
        """Accuracy and balanced accuracy of ``state`` (with this site's head, if personal) on its test split."""
        load_state(self.model, state, self.federation.personal_head)
        proba = self.predict_test()
        y = torch.as_tensor(self.test.labels)
        pred = proba.argmax(-1)
        n_classes = self.model.num_classes
        return len(y), {
            "accuracy": score(pred, y, "accuracy", n_classes),
            "balanced_accuracy": score(pred, y, "balanced_accuracy", n_classes),
        }

    def predict_test(self) -> torch.Tensor:
        """Class probabilities of the current model on this site's test split (stays at the site)."""
        if len(self.test) == 0:
            return torch.zeros((0, self.model.num_classes))
        if self.model.uses_embeddings:
            return self.model.predict_proba_embeddings(self.embeddings("test")).cpu()  # type: ignore[operator]
        from hfm.train import evaluate_logits

        logits, _ = evaluate_logits(
            self.model, _dataset(self.model, self.test), batch_size=2 * self.batch_size
        )
        return logits.float().softmax(-1).cpu()

    # -- local training ----------------------------------------------------------------------------------
    def _fit_head(self, anchor: dict[str, torch.Tensor], mu: float, seed: int) -> float:
        model = self.model
        x = model.standardize(self.embeddings("labelled"))  # type: ignore[operator]
        y = torch.tensor(self.labelled.labels, dtype=torch.long)  # a copy: labels may arrive read-only
        weight = None
        if getattr(model.config, "class_weight", None) == "balanced":
            counts = torch.bincount(y, minlength=model.num_classes).float()
            weight = torch.where(counts > 0, len(y) / (model.num_classes * counts.clamp_min(1)), 0.0)
        torch.manual_seed(seed)
        params = model.trainable_parameters()
        optimizer = torch.optim.Adam(params.values(), lr=self.federation.lr)
        l2 = self.federation.l2
        value = torch.zeros(())
        for _ in range(self.federation.local_steps):
            optimizer.zero_grad()
            loss = F.cross_entropy(model.head(x), y, weight=weight)
            penalty = sum((p.pow(2).sum() for n, p in params.items() if p.ndim >= 2), torch.zeros(()))
            total = loss + 0.5 * l2 * penalty + proximal(params, anchor, mu)
            total.backward()
            optimizer.step()
            value = loss.detach()
        return float(value)

    def _fit_end_to_end(self, anchor: dict[str, torch.Tensor], mu: float, seed: int) -> float:
        from hfm.train import TrainConfig, cross_entropy, fit

        config = TrainConfig.model_validate(
            {
                **self.training,
                "epochs": self.federation.local_epochs,
                "seed": seed,
                "progress": False,
                "patience": None,
            }
        )
        params = self.model.trainable_parameters()

        def loss(forward: Forward, batch: Batch, cfg: TrainConfig) -> torch.Tensor:
            return cross_entropy(forward, batch, cfg) + proximal(params, anchor, mu)

        with frozen_batch_norm(self.model):
            result = fit(self.model, self.labelled, None, config, loss=loss, method="supervised")
        losses = [h["train_loss"] for h in result.history]
        return float(np.mean(losses)) if losses else float("nan")


@contextlib.contextmanager
def frozen_batch_norm(model: torch.nn.Module) -> Iterator[None]:
    """BatchNorm layers normalise with, and keep, their running statistics during local training.

    Those statistics are buffers, not trainable parameters, so they never travel: updated at each site they would
    drift apart on each site's images, and the adapter the server publishes (which keeps the backbone's own)
    would not be the one the sites evaluated. Frozen, every site, the server and the published adapter share the
    backbone's statistics; BatchNorm's affine weights still train where the tuner trains them (BitFit, full).
    """
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    hooks = [m.register_forward_pre_hook(_use_running_statistics) for m in norms]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()


def _use_running_statistics(module: torch.nn.Module, args: Any) -> None:
    module.training = False


def proximal(
    params: dict[str, torch.nn.Parameter], anchor: dict[str, torch.Tensor], mu: float
) -> torch.Tensor:
    """FedProx's term ``mu / 2 * ||w - w_global||^2`` over the parameters the server sent (``anchor``; zero
    when ``mu`` is 0). A per-site head is not in ``anchor``: nothing holds it near a global one."""
    if mu <= 0:
        return torch.zeros(())
    terms = [(p - anchor[n].to(p.device, p.dtype)).pow(2).sum() for n, p in params.items() if n in anchor]
    return 0.5 * mu * torch.stack(terms).sum()


def _dataset(model: AdaptedModel, subset: Subset) -> Any:
    from hfm.data.dataset import ImageDataset

    return ImageDataset(subset, model.backbone.transform)


def make_client_app(trainer_of: Callable[[Any], LocalTrainer]) -> ClientApp:
    """A Flower ``ClientApp`` whose handlers run the trainer of the node they are called on.

    Args:
        trainer_of: Maps the Flower ``Context`` of a call (its ``node_id`` in simulation, its ``node_config``
            on a real SuperNode) to that node's :class:`LocalTrainer`.
    """
    from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from hfm.federated.wire import from_record, to_record

    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Any) -> Message:
        trainer = trainer_of(context)
        arrays, config = msg.content["arrays"], msg.content["config"]
        assert isinstance(arrays, ArrayRecord) and isinstance(config, ConfigRecord)
        personal = trainer.federation.personal_head
        state = from_record(trainer.model, arrays, personal)
        mu = float(config.get("proximal-mu", 0.0))  # type: ignore[arg-type]
        new, n, metrics = trainer.fit(state, int(config["server-round"]), mu)  # type: ignore[arg-type]
        content = RecordDict(
            {
                "arrays": to_record(trainer.model, new, personal),
                "metrics": MetricRecord({"num-examples": n, **metrics}),
            }
        )
        return Message(content=content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Any) -> Message:
        trainer = trainer_of(context)
        arrays = msg.content["arrays"]
        assert isinstance(arrays, ArrayRecord)
        n, metrics = trainer.evaluate(from_record(trainer.model, arrays, trainer.federation.personal_head))
        content = RecordDict({"metrics": MetricRecord({"num-examples": n, **metrics})})
        return Message(content=content, reply_to=msg)

    return app


def concat(subsets: Sequence[Subset]) -> Subset:
    """One subset over several (the union of the sites' draws, for the centralised upper bound)."""
    return concat_subsets(subsets, ids=[f"{j}/{x}" for j, s in enumerate(subsets) for x in s.ids])
