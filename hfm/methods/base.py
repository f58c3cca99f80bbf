"""The one interface every method implements: given a tuner's model and a run's draw, fit it and predict test.

A **method** says how labelled and unlabelled data are used; a **tuner** says which parameters adapt. The runner
builds the tuner's model, makes a :class:`RunContext` (the draw, the splits, cached embeddings on demand, the
training settings) and calls :meth:`Method.fit`; everything a method does differently happens behind it.

A method declares what it needs in :attr:`Method.needs` (:class:`Needs`), so the runner prepares it once per
sweep: cached embeddings of the unlabelled pool as well as of the labelled examples (``pool`` with cached
inputs), bags instead of images (``unit="bag"``), or no labels at all (``labels=False``, zero-shot). Methods that
train end to end reuse :func:`hfm.train.fit` and give it their per-batch :meth:`Method.loss` (and, for
semi-supervised training, an unlabelled dataset built from :meth:`RunContext.pool`).
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch

from hfm._params import TypedParams
from hfm.errors import HfmError, MethodError

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone
    from hfm.data.episodes import Draw
    from hfm.data.splits import Splits, Subset
    from hfm.data.unlabelled import UnlabelledSource
    from hfm.train import Batch, Forward, TrainConfig
    from hfm.tuners.base import AdaptedModel
    from hfm.zeroshot.text import TextHead


@dataclasses.dataclass
class MethodConfig(TypedParams):
    """Base for the typed parameters of one method; subclasses are dataclasses with defaults for every field."""

    kind: ClassVar[str] = "method"
    error: ClassVar[type[HfmError]] = MethodError


@dataclasses.dataclass(frozen=True)
class Needs:
    """What a method needs from a run, declared once so the runner prepares it.

    Attributes:
        inputs: ``"tuner"``: cached embeddings when the tuner fits on them (the probe), images otherwise;
            ``"embeddings"``: always cached embeddings (label spreading, MIL aggregators);
            ``"images"``: always images through the tuner's model (FixMatch, pseudo-labelling).
        pool: Uses the draw's unlabelled pool; with cached inputs, the pool is embedded too.
        unit: ``"image"``, or ``"bag"`` for methods that learn from bags of instances (a bag draw).
        labels: Needs labelled examples; ``False`` for methods that predict without any (zero-shot, k = 0):
            such a method runs at k = 0 only, and k = 0 runs only such methods.
        text: Needs the class text embeddings of the backbone's text tower and the recipe's prompts
            (:meth:`RunContext.text_head`).
    """

    inputs: Literal["tuner", "embeddings", "images"] = "tuner"
    pool: bool = False
    unit: Literal["image", "bag"] = "image"
    labels: bool = True
    text: bool = False


@dataclasses.dataclass
class MethodResult:
    """What a method hands back to the runner.

    Attributes:
        proba: Class probabilities ``[N, C]`` of the evaluation units (by default the test split's images).
        info: Facts about the fit (``FitResult.to_dict()``, the probe's chosen L2 strength, ...); the run
            records them under ``fit``.
        n_unlabelled: How many unlabelled examples the method used (0 for supervised); recorded in the run,
            the adapter config and the card.
        ids: Ids of the evaluation units when they are not the test images (bags); ``None``: the test split.
        labels: Labels of those units; ``None``: the test split's labels.
        write: Writes the method's own files (attention weights, pictures) into the run folder, which the runner
            passes before it puts the folder in place; ``None``: none.
    """

    proba: np.ndarray
    info: dict[str, Any] = dataclasses.field(default_factory=dict)
    n_unlabelled: int = 0
    ids: Sequence[str] | None = None
    labels: np.ndarray | None = None
    write: Callable[[Path], None] | None = None


@dataclasses.dataclass
class CachedEmbeddings:
    """Embeddings a sweep extracted once: the train rows any draw uses, the whole val and test splits.

    Attributes:
        train: Embeddings ``[R, D]`` of the embedded train rows.
        rows: Train position -> row in ``train``.
        val: ``[N_val, D]``.
        test: ``[N_test, D]``.
    """

    train: torch.Tensor
    rows: dict[int, int]
    val: torch.Tensor
    test: torch.Tensor
    unlabelled: torch.Tensor | None = None
    unlabelled_rows: dict[int, int] = dataclasses.field(default_factory=dict)

    def of(self, positions: Iterable[int]) -> torch.Tensor:
        """Embeddings of these train positions (each must have been embedded: a labelled or pool example)."""
        try:
            index = [self.rows[int(i)] for i in positions]
        except KeyError as err:
            raise MethodError(
                f"train example {err.args[0]} was not embedded: a method that reads the pool's embeddings "
                "must declare needs.pool"
            ) from None
        return self.train[torch.as_tensor(index, dtype=torch.long)]

    def of_unlabelled(self, positions: Iterable[int]) -> torch.Tensor:
        """Embeddings of these images of the recipe's separate unlabelled source (``unlabelled:``)."""
        if self.unlabelled is None:
            raise MethodError("the separate unlabelled source was not embedded")
        index = [self.unlabelled_rows[int(i)] for i in positions]
        return self.unlabelled[torch.as_tensor(index, dtype=torch.long)]


@dataclasses.dataclass
class RunContext:
    """Everything one run gives its method.

    Attributes:
        splits: The data (train, val, test, classes).
        draw: The run's draw: labelled episode and unlabelled pool.
        seed: The run's seed (draw and training).
        backbone: The sweep's shared backbone, in eval mode. Read it; never train it (the runner gives a
            trained tuner its own copy).
        training: Training settings, the preset's overridden by the recipe's, ``seed`` set, ``augment`` kept.
        batch_size: Batch size for embedding and prediction.
        num_workers: Data loader workers for embedding and prediction.
        checkpoint_dir: Where a trained run keeps its resumable checkpoint.
        resume: Continue from that checkpoint when there is one.
        progress: Show progress bars.
        embed: Returns the sweep's cached embeddings (extracted on first call).
        text: Returns the sweep's zero-shot text head (class prompts through the text tower, built once).
        unlabelled: The recipe's separate source of unlabelled images (``unlabelled:``), added to the pool.
    """

    splits: Splits
    draw: Draw
    seed: int
    backbone: Backbone
    training: dict[str, Any]
    batch_size: int = 64
    num_workers: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = False
    progress: bool = True
    embed: Callable[[], CachedEmbeddings] | None = None
    text: Callable[[], TextHead] | None = None
    unlabelled: UnlabelledSource | None = None

    def text_head(self) -> TextHead:
        """The class text embeddings built from the recipe's prompts (methods that declare ``needs.text``)."""
        if self.text is None:
            raise MethodError("this run has no text head; run the method through hfm.runner")
        return self.text()

    def embeddings(self) -> CachedEmbeddings:
        """The sweep's cached embeddings (val, test and every labelled or, when declared, pool example)."""
        if self.embed is None:
            raise MethodError("this run has no embedding cache; run the method through hfm.runner")
        return self.embed()

    def labelled(self) -> Subset:
        """The draw's labelled examples."""
        return self.draw.labelled(self.splits.train)

    def pool(self) -> Subset:
        """The unlabelled pool: the draw's (train minus labelled minus held-out groups), then this run's share of
        the separate unlabelled source if the recipe has one. Its labels exist for evaluation only (the
        separate source's are all unknown): a method must not read them."""
        own = self.draw.unlabelled(self.splits.train)
        if self.unlabelled is None:
            return own
        from hfm.data.splits import concat

        return concat([own, self.unlabelled.images.take(self.unlabelled.positions(self.seed).tolist())])

    def pool_embeddings(self) -> torch.Tensor:
        """Cached embeddings of :meth:`pool`, in the same order (methods that declare ``needs.pool``)."""
        emb = self.embeddings()
        parts = [emb.of(self.draw.pool)]
        if self.unlabelled is not None:
            parts.append(emb.of_unlabelled(self.unlabelled.positions(self.seed)))
        return torch.cat(parts)

    def pool_record(self) -> dict[str, Any]:
        """The pool's size and fingerprint, for a method that used it to put in its ``info["pool"]`` (the run,
        ``hfm_config.json`` and the card then record which unlabelled examples trained the adapter). With a
        separate unlabelled source, ``draw`` and ``source`` give each part's size and fingerprint."""
        own: dict[str, Any] = {
            "size": len(self.draw.pool),
            "fingerprint": self.draw.pool_fingerprint(self.splits.train),
        }
        if self.unlabelled is None:
            return own
        from hfm.data.unlabelled import ids_fingerprint

        extra = self.unlabelled.record(self.seed)
        return {
            "size": own["size"] + extra["size"],
            "fingerprint": ids_fingerprint([own["fingerprint"], extra["fingerprint"]]),
            "draw": own,
            "source": extra,
        }

    def train_config(self) -> tuple[TrainConfig, dict[str, Any] | None]:
        """The :class:`~hfm.train.TrainConfig` of this run and the ``augment`` block (``None``: no augmentation)."""
        from hfm.train import TrainConfig

        settings = dict(self.training)
        augment = settings.pop("augment", None)
        config = TrainConfig.model_validate(
            {
                "progress": self.progress,
                **settings,
                # --resume continues an interrupted run from its last epoch (same result as uninterrupted).
                "checkpoint_dir": None if self.checkpoint_dir is None else str(self.checkpoint_dir),
                "resume": self.resume,
            }
        )
        return config, augment

    def images(self, subset: Subset, augment: dict[str, Any] | None = None) -> Any:
        """``subset`` as a torch dataset of ``(image, label, index)`` through the backbone's preprocessing."""
        from hfm.data import Augment, ImageDataset

        return ImageDataset(
            subset, self.backbone.transform, augment=Augment(augment) if augment is not None else None
        )

    def predict(self, model: AdaptedModel, subset: Subset) -> torch.Tensor:
        """Class probabilities ``[N, C]`` of ``subset``'s images, on the CPU."""
        from torch.utils.data import DataLoader

        loader = DataLoader(
            self.images(subset), batch_size=self.batch_size, num_workers=self.num_workers, shuffle=False
        )
        out = [model.predict_proba(batch[0]) for batch in loader]
        return torch.cat(out).cpu()


class Method(ABC):
    """How a run's draw trains a tuner's model; subclasses implement :meth:`fit`.

    Attributes:
        method_name: Registry name (set by :func:`hfm.methods.register_method`).
        config_cls: The method's typed parameters (the preset's ``method.params``).
        needs: What the runner must prepare (see :class:`Needs`).
        config: The validated parameters of this instance.
    """

    method_name: ClassVar[str] = ""
    config_cls: ClassVar[type[MethodConfig]] = MethodConfig
    needs: ClassVar[Needs] = Needs()

    def __init__(self, **params: Any) -> None:
        self.config = self.config_cls.from_params(self.method_name, params)

    @property
    def params(self) -> dict[str, Any]:
        """The method parameters, JSON-ready (recorded in the run and ``hfm_config.json``)."""
        return self.config.to_dict()

    def uses_embeddings(self, tuner: type[AdaptedModel]) -> bool:
        """Whether runs of this method with ``tuner`` read cached embeddings rather than images."""
        if self.needs.inputs == "tuner":
            return bool(tuner.uses_embeddings)
        return self.needs.inputs == "embeddings"

    def check(self, tuner: type[AdaptedModel]) -> None:
        """Refuse a tuner this method cannot train (raise :class:`MethodError`); called before any run."""
        if self.needs.unit == "bag":
            raise MethodError(
                f"method {self.method_name!r} learns from bags, which this data source does not provide"
            )
        if self.needs.inputs == "images" and tuner.uses_embeddings:
            raise MethodError(
                f"method {self.method_name!r} trains on images; tuner {tuner.tuner_name!r} fits on cached "
                "embeddings: use a trainable tuner (lora, vpt, full, bitfit)"
            )

    def loss(self, forward: Forward, batch: Batch, config: TrainConfig) -> torch.Tensor:
        """The per-batch loss :func:`hfm.train.fit` minimises (default: supervised cross-entropy)."""
        from hfm.train import cross_entropy

        return cross_entropy(forward, batch, config)

    @abstractmethod
    def fit(self, model: AdaptedModel, ctx: RunContext) -> MethodResult:
        """Fit ``model`` (in place) on the run's draw and return the test probabilities.

        Args:
            model: The tuner's freshly built model (on its own backbone copy when it trains end to end).
            ctx: The run: draw, splits, embeddings, training settings.
        """
