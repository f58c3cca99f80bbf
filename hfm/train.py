"""The training loop, on accelerate: one code path for CPU, one GPU, and many processes (DDP).

``fit(model, train, val, config)`` trains an :class:`~hfm.tuners.base.AdaptedModel` in place and keeps the
best state by the validation metric. Probes (``uses_embeddings``) are fitted on cached embeddings instead.

The loop is shared; the per-batch loss is not. A method (:mod:`hfm.methods`) passes its ``loss``: a function of
a ``forward`` (the model under the run's precision), the :class:`Batch` and the config. Supervised training is
:func:`cross_entropy`. A method that learns from unlabelled images also passes ``unlabelled`` (a dataset of the
pool, with its own transforms, e.g. weak and strong views); each labelled batch then comes with an unlabelled
batch of ``unlabelled_batch_size`` examples in :attr:`Batch.unlabelled`, drawn in an order that derives from
``(seed, epoch)`` alone, so resuming stays exact.

Determinism: the example order of epoch ``e`` and every random draw in a step (dropout, augmentation) derive
from ``(seed, epoch, step)`` alone, and checkpoints are written at epoch ends, so a run resumed from a
checkpoint ends exactly where an uninterrupted one does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hfm.data.dataset import as_dataset, labels_of
from hfm.devices import alone_accelerator, autocast, gather_rows, launched_on_cpu, resolve_precision, shard
from hfm.embeddings import extract
from hfm.errors import DataError, TunerError
from hfm.metrics import score

if TYPE_CHECKING:
    from accelerate import Accelerator

    from hfm.tuners.base import AdaptedModel

CHECKPOINT_NAME = "checkpoint.pt"
_NO_DECAY = ("token", "pos_embed", "position_embeddings", "prompts")


class TrainConfig(BaseModel):
    """How to train one adapted model (embeddable in a recipe; unknown keys are errors).

    Attributes:
        epochs: Passes over the training set.
        max_steps: Optional cap on optimizer steps (the schedule then spans this many).
        batch_size: Examples per forward pass and process.
        grad_accum: Forward passes per optimizer step.
        lr: Learning rate of the adapted parameters; ``None`` uses the tuner's default.
        head_lr: Learning rate of the head; ``None`` uses ``max(lr, 1e-3)``.
        weight_decay: AdamW decay on matrices (not on biases, norms, tokens, prompts).
        warmup_ratio: Fraction of the steps with linear warm-up before cosine decay to zero.
        max_grad_norm: Gradient clipping norm; ``None`` disables clipping.
        label_smoothing: Cross-entropy label smoothing.
        precision: ``auto`` (bf16 on a capable GPU, fp32 on CPU), ``fp32`` or ``bf16``.
        metric: Validation metric for early stopping and the best state.
        patience: Stop after this many evaluations without improvement; ``None`` never stops early.
        eval_every: Evaluate every this many epochs (and after the last one).
        seed: Seed of the example order and of every random draw in training.
        num_workers: DataLoader worker processes.
        eval_batch_size: Batch size for validation and embedding; ``None`` uses twice ``batch_size``.
        checkpoint_dir: Folder for the resumable checkpoint (written at the end of every epoch).
        resume: Continue from the checkpoint in ``checkpoint_dir`` when there is one.
        cache_dir: Embedding cache folder for probes (default ``$HFM_CACHE/embeddings``).
        progress: Show a progress bar.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(20, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(16, ge=1)
    grad_accum: int = Field(1, ge=1)
    lr: float | None = Field(None, gt=0)
    head_lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    metric: Literal["accuracy", "balanced_accuracy", "loss"] = "accuracy"
    patience: int | None = Field(5, ge=1)
    eval_every: int = Field(1, ge=1)
    seed: int = 0
    num_workers: int = Field(0, ge=0)
    eval_batch_size: int | None = Field(None, ge=1)
    checkpoint_dir: str | None = None
    resume: bool = False
    cache_dir: str | None = None
    progress: bool = True

    def fingerprint(self) -> str:
        """Hash of the fields that change the result (a checkpoint only resumes the same training)."""
        keep = self.model_dump(exclude={"checkpoint_dir", "resume", "progress", "num_workers", "cache_dir"})
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


@dataclasses.dataclass
class FitResult:
    """What training did.

    Attributes:
        metric: Name of the validation metric.
        best_metric: Its best value (``None`` without a validation split).
        best_epoch: Epoch (1-based) whose state was kept.
        epochs: Epochs completed.
        steps: Optimizer steps taken.
        stopped_early: Whether patience ran out.
        resumed_from_epoch: Epochs that were already done in the checkpoint this fit resumed from (0: none).
        history: One dict per epoch: ``epoch``, ``step``, ``train_loss``, ``lr`` and ``val_<metric>``.
        extra: Tuner-specific facts (the probe's chosen L2 strength, ...).
    """

    metric: str
    best_metric: float | None
    best_epoch: int
    epochs: int
    steps: int
    stopped_early: bool = False
    resumed_from_epoch: int = 0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Batch:
    """What one training step hands the method's loss, already on the device.

    Attributes:
        images: Labelled images ``[B, ...]`` (augmented as configured).
        labels: Their labels ``[B]``.
        unlabelled: The unlabelled batch (every tensor the unlabelled dataset yields per example, stacked:
            e.g. a weak and a strong view), or ``None`` when the method uses no unlabelled data.
        epoch: Current epoch (0-based).
        step: Optimizer steps taken so far.
    """

    images: torch.Tensor
    labels: torch.Tensor
    unlabelled: tuple[torch.Tensor, ...] | None = None
    epoch: int = 0
    step: int = 0


Forward = Callable[[torch.Tensor], torch.Tensor]
"""The model's forward pass under the run's precision (autocast applied): images in, logits out."""
LossFn = Callable[[Forward, Batch, "TrainConfig"], torch.Tensor]
"""A method's per-batch loss: ``loss(forward, batch, config)`` returns a scalar tensor."""


def cross_entropy(forward: Forward, batch: Batch, config: TrainConfig) -> torch.Tensor:
    """The supervised loss: cross-entropy of the labelled batch, with the configured label smoothing."""
    logits = forward(batch.images)
    return F.cross_entropy(logits.float(), batch.labels, label_smoothing=config.label_smoothing)


def _unlabelled_batches(
    data: Any, batch_size: int, cfg: TrainConfig, epoch: int, rank: int, world: int, pin: bool
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Endless unlabelled batches for one epoch: a fresh permutation per pass, seeded by (seed, epoch, pass)."""
    n = len(data)
    for cycle in range(1 << 30):
        generator = torch.Generator().manual_seed(_step_seed(cfg.seed, epoch, -4 - cycle))
        perm = torch.randperm(n, generator=generator).tolist()
        loader = DataLoader(
            data,
            batch_size=batch_size,
            sampler=perm[rank::world],
            num_workers=cfg.num_workers,
            pin_memory=pin,
            drop_last=True,
            generator=generator,
        )
        for batch in loader:
            yield tuple(x for x in batch if isinstance(x, torch.Tensor))


def _labels(data: Any) -> torch.Tensor:
    labels = labels_of(data)
    if labels is not None:
        return labels
    return torch.tensor([int(data[i][1]) for i in range(len(data))], dtype=torch.long)


def _fit_probe(model: Any, train: Any, val: Any, cfg: TrainConfig) -> FitResult:
    kwargs: dict[str, Any] = {
        "batch_size": cfg.eval_batch_size or 2 * cfg.batch_size,
        "num_workers": cfg.num_workers,
        "cache_dir": cfg.cache_dir,
        "precision": cfg.precision,
        "progress": cfg.progress,
    }
    train_x = extract(model.backbone, train, split="train", **kwargs)
    val_x = val_y = None
    if val is not None and len(val) > 0:
        val_x, val_y = extract(model.backbone, val, split="val", **kwargs), _labels(val)
    info = model.fit_embeddings(train_x, _labels(train), val_x, val_y)
    metric = cfg.metric if cfg.metric != "loss" else "accuracy"
    return FitResult(
        metric=metric, best_metric=info.get("val_metric"), best_epoch=1, epochs=1, steps=0, extra=info
    )


def _schedule(warmup: int, total: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _optimizer(model: AdaptedModel, cfg: TrainConfig) -> torch.optim.AdamW:
    lr = cfg.lr or model.default_lr
    head_lr = cfg.head_lr or max(lr, 1e-3)
    groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
    for name, p in model.trainable_parameters().items():
        decay = cfg.weight_decay if p.ndim >= 2 and not any(t in name for t in _NO_DECAY) else 0.0
        groups.setdefault((head_lr if name.startswith("head.") else lr, decay), []).append(p)
    if not groups:
        raise TunerError(f"tuner {model.tuner_name!r} left no parameter to train")
    return torch.optim.AdamW(
        [{"params": ps, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), ps in groups.items()]
    )


def _step_seed(seed: int, epoch: int, batch: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + batch) % (2**63 - 1)


def evaluate_logits(
    model: AdaptedModel,
    dataset: Any,
    *,
    batch_size: int,
    num_workers: int = 0,
    precision: str = "fp32",
    rank: int = 0,
    world: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[N, C]`` and labels ``[N]`` over ``dataset`` (sharded across processes, then gathered)."""
    device = model.device
    n = len(dataset)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=shard(n, rank, world), num_workers=num_workers
    )
    logits, labels = [], []
    was_training = model.training
    model.eval()
    with torch.inference_mode(), autocast(precision, device):
        for batch in loader:
            logits.append(model(batch[0].to(device)).float())
            labels.append(torch.as_tensor(batch[1]).to(device))
    model.train(was_training)
    local_logits = torch.cat(logits) if logits else torch.zeros((0, model.num_classes), device=device)
    local_labels = torch.cat(labels) if labels else torch.zeros(0, dtype=torch.long, device=device)
    return (
        gather_rows(local_logits, n, rank, world, device),
        gather_rows(local_labels, n, rank, world, device),
    )


def _val_metric(logits: torch.Tensor, labels: torch.Tensor, metric: str, num_classes: int) -> float:
    if metric == "loss":
        return float(F.cross_entropy(logits, labels))
    return score(logits.argmax(-1), labels, metric, num_classes)


def _better(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def fit(
    model: AdaptedModel,
    train: Any,
    val: Any | None = None,
    config: TrainConfig | dict[str, Any] | None = None,
    *,
    accelerator: Accelerator | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    loss: LossFn = cross_entropy,
    method: str = "supervised",
    unlabelled: Any | None = None,
    unlabelled_batch_size: int | None = None,
    method_state: Any | None = None,
) -> FitResult:
    """Train ``model`` in place on ``train``; keep the state that scored best on ``val``.

    Args:
        model: An adapted model from :func:`hfm.tuners.get_tuner`.
        train: A :class:`hfm.data.Subset` (read through the backbone's transform) or a torch dataset
            yielding ``(image_tensor, label, ...)`` such as :class:`hfm.data.ImageDataset` (augmentation there).
        val: Validation data in the same forms; ``None`` trains all epochs and keeps the last state.
        config: A :class:`TrainConfig` (or its dict).
        accelerator: An existing ``accelerate.Accelerator``; one is made otherwise (DDP under a launcher),
            except inside :func:`hfm.devices.run_alone`, where the run trains alone on its device.
        on_epoch_end: Called on the main process with the epoch's history entry, after its checkpoint.
        loss: The method's per-batch loss (default: supervised :func:`cross_entropy`).
        method: The method's name, kept in the checkpoint (a checkpoint resumes only the same method).
        unlabelled: A torch dataset of unlabelled examples (each item a tuple of tensors, transforms applied);
            its batches reach ``loss`` as :attr:`Batch.unlabelled`.
        unlabelled_batch_size: Unlabelled examples per step and process (default: ``batch_size``).
        method_state: State the method's loss keeps across steps (an object with ``state_dict()`` and
            ``load_state_dict()``, e.g. FreeMatch's adaptive thresholds); saved in the checkpoint and restored
            on resume, so a resumed run continues with the state an uninterrupted one had.

    Returns:
        A :class:`FitResult`.

    Raises:
        TunerError: When the loss becomes NaN or infinite, or a checkpoint belongs to another training.
    """
    cfg = config if isinstance(config, TrainConfig) else TrainConfig.model_validate(config or {})
    if model.uses_embeddings:
        return _fit_probe(model, train, val, cfg)
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    if accelerator is None:
        accelerator = alone_accelerator()  # type: ignore[assignment]  # a run trained alone (hfm.devices)
    if accelerator is None:
        ddp = DistributedDataParallelKwargs(find_unused_parameters=model.ddp_find_unused)
        accelerator = Accelerator(cpu=launched_on_cpu(), kwargs_handlers=[ddp])
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    main = accelerator.is_main_process
    precision = resolve_precision(cfg.precision, device)
    transform = model.backbone.transform
    train_ds = as_dataset(train, transform)
    val_ds = as_dataset(val, transform) if val is not None and len(val) > 0 else None
    n = len(train_ds)  # type: ignore[arg-type]
    if n == 0:
        raise DataError("training data is empty: check the episode and the data source")
    u_batch = unlabelled_batch_size or cfg.batch_size
    if unlabelled is not None and len(unlabelled) < u_batch * world:
        raise DataError(
            f"the unlabelled pool has {len(unlabelled)} examples, fewer than one unlabelled batch "
            f"({u_batch} per process x {world}); lower the unlabelled batch size or add unlabelled images"
        )

    per_rank = math.ceil(n / world)
    batches = math.ceil(per_rank / cfg.batch_size)
    steps_per_epoch = math.ceil(batches / cfg.grad_accum)
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    epochs = math.ceil(total / steps_per_epoch)

    torch.manual_seed(cfg.seed)
    wrapped = accelerator.prepare(model)
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _schedule(round(cfg.warmup_ratio * total), total)
    )
    trainable = list(model.trainable_parameters().values())

    def forward(images: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            return wrapped(images)  # type: ignore[no-any-return]

    state: dict[str, Any] = {"epoch": 0, "step": 0, "best": None, "best_epoch": 0, "bad": 0, "history": []}
    best_state: dict[str, torch.Tensor] | None = None
    resumed_from = 0
    ckpt = Path(cfg.checkpoint_dir) / CHECKPOINT_NAME if cfg.checkpoint_dir else None
    if cfg.resume and ckpt is not None and ckpt.is_file():
        payload = torch.load(ckpt, map_location="cpu", weights_only=True)
        if (
            payload["fingerprint"] != cfg.fingerprint()
            or payload["tuner"] != model.tuner_name
            or payload.get("method", "supervised") != method
        ):
            raise TunerError(
                f"checkpoint {ckpt} belongs to a different training config, tuner or method: "
                "use another checkpoint_dir or resume=False"
            )
        model.load_tensors({k: v.to(device) for k, v in payload["model"].items()})
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        state, best_state = payload["state"], payload["best_state"]
        resumed_from = int(state["epoch"])
        if method_state is not None and payload.get("method_state") is not None:
            method_state.load_state_dict(payload["method_state"])

    bar = tqdm(
        total=total,
        initial=state["step"],
        desc=f"train {model.tuner_name}",
        disable=not (cfg.progress and main),
    )
    stopped = state.get("stopped", False)
    with bar:
        for epoch in range(state["epoch"], epochs):
            if stopped or state["step"] >= total:
                break
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(_step_seed(cfg.seed, epoch, -1)))
            order = torch.cat([perm, perm[: per_rank * world - n]]).tolist()
            torch.manual_seed(_step_seed(cfg.seed, epoch, -2))
            loader = DataLoader(
                train_ds,
                batch_size=cfg.batch_size,
                sampler=order[rank::world],
                num_workers=cfg.num_workers,
                pin_memory=device.type == "cuda",
                generator=torch.Generator().manual_seed(_step_seed(cfg.seed, epoch, -3)),
            )
            wrapped.train()
            extra = (
                _unlabelled_batches(unlabelled, u_batch, cfg, epoch, rank, world, device.type == "cuda")
                if unlabelled is not None
                else None
            )
            losses: list[float] = []
            group_loss = torch.zeros((), device=device)
            for b, batch in enumerate(loader):
                torch.manual_seed(_step_seed(cfg.seed, epoch, b))
                group_start = (b // cfg.grad_accum) * cfg.grad_accum
                group_size = min(cfg.grad_accum, batches - group_start)
                sync = b + 1 == group_start + group_size
                images, labels = batch[0].to(device, non_blocking=True), torch.as_tensor(batch[1]).to(device)
                no_sync = (
                    accelerator.no_sync(wrapped) if (world > 1 and not sync) else contextlib.nullcontext()
                )
                step = Batch(images=images, labels=labels, epoch=epoch, step=state["step"])
                if extra is not None:
                    step.unlabelled = tuple(x.to(device, non_blocking=True) for x in next(extra))
                with no_sync:
                    batch_loss = loss(forward, step, cfg)
                    accelerator.backward(batch_loss / group_size)
                group_loss = group_loss + batch_loss.detach() / group_size
                if not sync:
                    continue
                mean_loss = float(accelerator.reduce(group_loss, reduction="mean"))
                group_loss = torch.zeros((), device=device)
                if not math.isfinite(mean_loss):
                    raise TunerError(
                        f"training loss became {mean_loss} at step {state['step'] + 1} (epoch {epoch + 1}): "
                        "lower the learning rate or check the data for broken images"
                    )
                if cfg.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                losses.append(mean_loss)
                bar.update(1)
                bar.set_postfix(loss=f"{mean_loss:.4f}")
                if state["step"] >= total:
                    break

            entry: dict[str, Any] = {
                "epoch": epoch + 1,
                "step": state["step"],
                "train_loss": sum(losses) / max(1, len(losses)),
                "lr": scheduler.get_last_lr()[0],
            }
            last = epoch + 1 == epochs or state["step"] >= total
            if val_ds is not None and ((epoch + 1) % cfg.eval_every == 0 or last):
                logits, labels = evaluate_logits(
                    model,
                    val_ds,
                    batch_size=cfg.eval_batch_size or 2 * cfg.batch_size,
                    num_workers=cfg.num_workers,
                    precision=precision,
                    rank=rank,
                    world=world,
                )
                value = _val_metric(logits, labels, cfg.metric, model.num_classes)
                entry[f"val_{cfg.metric}"] = value
                if _better(value, state["best"], cfg.metric):
                    state.update(best=value, best_epoch=epoch + 1, bad=0)
                    best_state = {k: v.detach().cpu().clone() for k, v in model.state_to_save().items()}
                else:
                    state["bad"] += 1
                    stopped = cfg.patience is not None and state["bad"] >= cfg.patience
                bar.set_postfix({"loss": f"{entry['train_loss']:.4f}", f"val_{cfg.metric}": f"{value:.4f}"})
            state["history"].append(entry)
            state["epoch"] = epoch + 1
            state["stopped"] = stopped
            if ckpt is not None:
                if main:
                    _save_checkpoint(
                        ckpt,
                        {
                            "fingerprint": cfg.fingerprint(),
                            "tuner": model.tuner_name,
                            "method": method,
                            "model": {k: v.detach().cpu() for k, v in model.state_to_save().items()},
                            "optimizer": optimizer.state_dict(),
                            "scheduler": scheduler.state_dict(),
                            "state": state,
                            "best_state": best_state,
                            "method_state": None if method_state is None else method_state.state_dict(),
                        },
                    )
                accelerator.wait_for_everyone()
            if on_epoch_end is not None and main:
                on_epoch_end(dict(entry))

    if best_state is not None:
        model.load_tensors({k: v.to(device) for k, v in best_state.items()})
    model.eval()
    return FitResult(
        metric=cfg.metric,
        best_metric=state["best"],
        best_epoch=state["best_epoch"] or state["epoch"],
        epochs=state["epoch"],
        steps=state["step"],
        stopped_early=bool(stopped),
        history=list(state["history"]),
        resumed_from_epoch=resumed_from,
    )
