"""``hfm.pretrain(recipe)``: self-supervised (continued) pretraining on accelerate, exported as a backbone.

One code path for one CPU, one GPU and several processes (DDP under ``torchrun`` / ``accelerate launch``).
Determinism: the head initialisation derives from the seed, the image order of epoch ``e`` and every view of
image ``i`` from ``(seed, e, i)``, every other random draw of a step from ``(seed, e, step)``; checkpoints are
written at epoch ends with the optimizer, schedule, teacher, loss centre and monitor state, so a resumed run
ends with the same weights as an uninterrupted one. Only the train split of the data is ever read.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hfm.pretrain import adapt, card, monitor
from hfm.pretrain.config import PretrainError, PretrainRecipe, load_recipe, parse_recipe
from hfm.pretrain.data import TrainImages, load_train
from hfm.pretrain.dino import Dino
from hfm.pretrain.export import check_output, write_backbone
from hfm.pretrain.mae import Mae
from hfm.pretrain.views import MultiCropDataset, make_mae_transform, make_transform

if TYPE_CHECKING:
    from accelerate import Accelerator

    from hfm.backbones.base import Backbone

CHECKPOINT_NAME = "checkpoint.pt"
MIN_IMAGES = 4


@dataclasses.dataclass
class PretrainResult:
    """What pretraining did.

    Attributes:
        output: The backbone folder (load it with ``hfm.load_backbone("local-dir:" + str(output))``).
        images: Train images used.
        epochs: Epochs completed.
        steps: Optimizer steps taken.
        best_epoch: Epoch whose weights were exported (0: the starting weights).
        stopped: Why the monitor stopped the run early, else ``None``.
        history: One dict per epoch: ``epoch``, ``step``, ``loss``, ``lr``, ``momentum``.
        checks: Monitor readings (epoch 0 is the starting backbone): ``epoch``, ``knn``, ``spread``.
        seconds: Wall time of the training loop.
        resumed_from_epoch: Epochs already done in the checkpoint this run resumed from.
        backbone: The exported backbone in memory (LoRA not yet merged), on the training device.
    """

    output: Path
    images: int
    epochs: int
    steps: int
    best_epoch: int
    stopped: str | None
    history: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    seconds: float
    resumed_from_epoch: int = 0
    backbone: Any = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "backbone"}
        out["output"] = str(self.output)
        return out


# -- starting backbone ---------------------------------------------------------------------------------------
def _from_scratch(recipe: PretrainRecipe) -> tuple[Backbone, dict[str, Any]]:
    import timm

    from hfm.backbones.base import Backbone
    from hfm.backbones.loaders.timm_loader import timm_spec

    block = recipe.backbone
    size = block.input_size
    kwargs = dict(block.kwargs)
    torch.manual_seed(recipe.schedule.seed)
    try:
        model = timm.create_model(str(block.architecture), pretrained=False, num_classes=0, **kwargs)
    except (RuntimeError, ValueError, TypeError, AssertionError) as err:
        raise PretrainError(f"timm cannot build {block.architecture!r} with {kwargs}: {err}") from err
    model.pretrained_cfg = {  # type: ignore[assignment]
        **dict(getattr(model, "pretrained_cfg", {}) or {}),
        "architecture": block.architecture,
        "input_size": (3, size, size),
        "mean": tuple(block.mean),
        "std": tuple(block.std),
        "crop_pct": 1.0,
    }
    spec = timm_spec(model, name=recipe.name, hub_id=f"timm:{block.architecture}")
    return Backbone(model, spec, family="timm"), kwargs


def load_start(recipe: PretrainRecipe) -> tuple[Backbone, dict[str, Any]]:
    """The starting backbone and its timm architecture arguments (for the exported ``config.json``)."""
    block = recipe.backbone
    if block.name is None:
        backbone, model_args = _from_scratch(recipe)
    else:
        from hfm.backbones import load_backbone

        backbone = load_backbone(block.name, twin=block.twin, allow_pickle=block.allow_pickle)
        model_args = {}
        config = backbone.source_path / "config.json" if backbone.source_path else None
        if backbone.family == "timm" and config is not None and config.is_file():
            model_args = dict(json.loads(config.read_text()).get("model_args", {}))
    if backbone.family not in ("timm", "transformers"):
        raise PretrainError(
            f"{block.label()}: hfm pretrain exports timm and transformers backbones, not {backbone.family} "
            "towers; pretrain the tower's timm trunk instead"
        )
    if backbone.spec.pooling == "pooler":
        raise PretrainError(
            f"{block.label()}: {recipe.objective.name} needs a token-pooled embedding (cls or mean), not the "
            "'pooler' output"
        )
    return backbone, model_args


# -- schedule ------------------------------------------------------------------------------------------------
def _lr_factor(step: int, warmup: int, total: int, floor: float) -> float:
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _momentum(step: int, total: int, start: float, end: float) -> float:
    return end - (end - start) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total - 1))))


def _step_seed(seed: int, epoch: int, step: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + step + 7) % (2**63 - 1)


def _optimizer(module: torch.nn.Module, weight_decay: float, lr: float) -> torch.optim.AdamW:
    decay: list[torch.nn.Parameter] = []
    plain: list[torch.nn.Parameter] = []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and "token" not in name and "pos_embed" not in name else plain).append(p)
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}], lr=lr
    )


def _save(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def checkpoint_dir(out: Path) -> Path:
    """Where an interrupted pretraining keeps its epoch checkpoint (beside the output, removed on success)."""
    return out.parent / f".{out.name}.pretrain"


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


# -- the run -------------------------------------------------------------------------------------------------
def pretrain(
    recipe: str | os.PathLike[str] | dict[str, Any] | PretrainRecipe,
    *,
    out: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: bool | None = None,
    accelerator: Accelerator | None = None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
) -> PretrainResult:
    """Pretrain a backbone self-supervised on the train images of a data source and export it.

    Args:
        recipe: A pretrain recipe: YAML path, dict or :class:`PretrainRecipe`.
        out: The backbone folder to write (default the recipe's ``output``).
        resume: Continue from the epoch checkpoint an interrupted run left beside ``out``.
        progress: Show progress bars (default the recipe's ``schedule.progress``).
        accelerator: An existing ``accelerate.Accelerator`` (one is made otherwise).
        on_epoch_end: Called on the main process with each epoch's history entry, after its checkpoint.

    Returns:
        A :class:`PretrainResult`; the folder loads with ``hfm.load_backbone("local-dir:OUT")``.

    Raises:
        PretrainError, ConfigError, DataError, BackboneError: one-line :class:`hfm.errors.HfmError`\\ s.
    """
    from accelerate import Accelerator

    from hfm.devices import autocast, launched_on_cpu, resolve_precision

    if isinstance(recipe, (str, os.PathLike)):
        recipe = load_recipe(Path(recipe))
    recipe = parse_recipe(recipe)
    sched = recipe.schedule
    show = sched.progress if progress is None else progress
    output = Path(out or recipe.output).expanduser()
    check_output(output)

    data = load_train(recipe.data)
    train = data.images  # train splits only: val and test are never read
    if len(train) < max(MIN_IMAGES, 2):
        raise PretrainError(
            f"only {len(train)} train images: self-supervised pretraining needs at least {MIN_IMAGES}"
        )
    backbone, model_args = load_start(recipe)

    accelerator = accelerator or Accelerator(cpu=launched_on_cpu())
    rank, world, device = accelerator.process_index, accelerator.num_processes, accelerator.device
    main = accelerator.is_main_process
    precision = resolve_precision(sched.precision, device)
    n = len(train)
    per_rank = math.ceil(n / world)
    if per_rank < sched.batch_size:
        raise PretrainError(
            f"{n} train images give {per_rank} per process, fewer than schedule.batch_size "
            f"{sched.batch_size}: lower the batch size or add images"
        )
    batches = per_rank // sched.batch_size  # full batches only: batch-norm heads need more than one image
    total = sched.epochs * batches

    torch.manual_seed(sched.seed)
    adapt.apply(backbone, recipe.adapt)
    objective = recipe.objective
    ssl: Dino | Mae = (
        Mae(backbone, objective, recipe.backbone.label())
        if objective.name == "mae"
        else Dino(backbone, objective, sched.epochs)
    ).to(device)
    exported = ssl.teacher if recipe.export == "teacher" and ssl.teacher is not None else ssl.student
    watch = (
        monitor.monitor_subset(data.labelled, recipe.monitor, sched.seed) if recipe.monitor.enabled else None
    )

    student = accelerator.prepare(ssl.student)
    optimizer = _optimizer(ssl.student, sched.weight_decay, sched.lr)
    floor = sched.min_lr / sched.lr
    warmup = sched.warmup_epochs * batches
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total, floor))
    backbone_params = [p for p in ssl.student.backbone.parameters() if p.requires_grad]
    trainable = [p for p in ssl.student.parameters() if p.requires_grad]

    state: dict[str, Any] = {"epoch": 0, "step": 0, "history": [], "checks": [], "best_epoch": 0}
    state.update(best_knn=None, stopped=None)
    best_state: dict[str, torch.Tensor] | None = None
    ckpt = checkpoint_dir(output) / CHECKPOINT_NAME
    resumed_from = 0
    if resume and ckpt.is_file():
        payload = torch.load(ckpt, map_location="cpu", weights_only=True)
        if payload["fingerprint"] != recipe.fingerprint() or payload["world"] != world:
            raise PretrainError(
                f"checkpoint {ckpt} belongs to another recipe or number of processes: delete it or run without "
                "--resume"
            )
        ssl.load_state_dict(payload["objective"])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        state, best_state = payload["state"], payload["best_state"]
        resumed_from = int(state["epoch"])
    elif watch is not None:
        start = monitor.measure(exported.backbone, watch, recipe.monitor, epoch=0, precision=precision)
        state["checks"].append(start.to_dict())
        state["best_knn"] = start.knn
        best_state = _cpu_state(exported.backbone)

    transform = (
        make_mae_transform(backbone, recipe.views)
        if objective.name == "mae"
        else make_transform(backbone, recipe.views)
    )
    dataset = MultiCropDataset(train, transform, sched.seed)
    began = time.perf_counter()
    bar = tqdm(
        total=total, initial=state["step"], desc=f"pretrain {objective.name}", disable=not (show and main)
    )
    with bar:
        for epoch in range(state["epoch"], sched.epochs):
            if state["stopped"]:
                break
            dataset.epoch = epoch
            perm = torch.randperm(
                n, generator=torch.Generator().manual_seed(_step_seed(sched.seed, epoch, -1))
            )
            order = torch.cat([perm, perm[: per_rank * world - n]]).tolist()
            loader = DataLoader(
                dataset,
                batch_size=sched.batch_size,
                sampler=order[rank::world],
                num_workers=sched.num_workers,
                drop_last=True,
                pin_memory=device.type == "cuda",
            )
            student.train()
            if ssl.teacher is not None:
                ssl.teacher.train()
            losses: list[float] = []
            momentum = getattr(objective, "momentum", None)
            for views in loader:
                torch.manual_seed(_step_seed(sched.seed, epoch, state["step"]))
                views = [v.to(device, non_blocking=True) for v in views]
                with autocast(precision, device):
                    loss = ssl.loss(student, views, epoch)
                accelerator.backward(loss)
                ssl.after_backward(epoch)
                if epoch < recipe.adapt.head_warmup_epochs:
                    for p in backbone_params:
                        p.grad = None
                if sched.max_grad_norm is not None:
                    accelerator.clip_grad_norm_(trainable, sched.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if isinstance(ssl, Dino):
                    momentum = _momentum(state["step"], total, ssl.block.momentum, ssl.block.momentum_end)
                    ssl.update_teacher(momentum)
                value = float(accelerator.reduce(loss.detach(), reduction="mean"))
                if not math.isfinite(value):
                    raise PretrainError(
                        f"the pretraining loss became {value} at step {state['step'] + 1}: lower schedule.lr"
                    )
                state["step"] += 1
                losses.append(value)
                bar.update(1)
                bar.set_postfix(loss=f"{value:.4f}")
            entry = {
                "epoch": epoch + 1,
                "step": state["step"],
                "loss": sum(losses) / max(1, len(losses)),
                "lr": scheduler.get_last_lr()[0],
                "momentum": momentum,
            }
            state["history"].append(entry)
            state["epoch"] = epoch + 1
            last = epoch + 1 == sched.epochs
            if watch is not None and ((epoch + 1) % recipe.monitor.every == 0 or last):
                check = monitor.measure(
                    exported.backbone, watch, recipe.monitor, epoch=epoch + 1, precision=precision
                )
                state["checks"].append(check.to_dict())
                start_check = monitor.Check(**state["checks"][0])
                stop = monitor.verdict(start_check, check, recipe.monitor)
                if stop is None and check.knn >= state["best_knn"]:
                    state.update(best_knn=check.knn, best_epoch=epoch + 1)
                    best_state = _cpu_state(exported.backbone)
                state["stopped"] = stop
                bar.set_postfix(loss=f"{entry['loss']:.4f}", knn=f"{check.knn:.3f}")
            # The last epoch needs no checkpoint: the export follows at once (and removes the checkpoint).
            if main and not (last or state["stopped"]):
                _save(
                    ckpt,
                    {
                        "fingerprint": recipe.fingerprint(),
                        "world": world,
                        "objective": _cpu_state(ssl),
                        "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(),
                        "state": state,
                        "best_state": best_state,
                    },
                )
            accelerator.wait_for_everyone()
            if on_epoch_end is not None and main:
                on_epoch_end(dict(entry))
    seconds = time.perf_counter() - began

    if best_state is not None:
        exported.backbone.load_state_dict({k: v.to(device) for k, v in best_state.items()})
    else:
        state["best_epoch"] = state["epoch"]
    result = PretrainResult(
        output=output,
        images=n,
        epochs=int(state["epoch"]),
        steps=int(state["step"]),
        best_epoch=int(state["best_epoch"]),
        stopped=state["stopped"],
        history=list(state["history"]),
        checks=list(state["checks"]),
        seconds=seconds,
        resumed_from_epoch=resumed_from,
        backbone=exported.backbone.eval(),
    )
    if main:
        _export(recipe, result, exported.backbone, backbone, model_args, data, world, device)
        shutil.rmtree(checkpoint_dir(output), ignore_errors=True)
    accelerator.wait_for_everyone()
    return result


def _export(
    recipe: PretrainRecipe,
    result: PretrainResult,
    trained: Backbone,
    start: Backbone,
    model_args: dict[str, Any],
    data: TrainImages,
    world: int,
    device: torch.device,
) -> None:
    from hfm import __version__

    model = adapt.merged(trained).cpu().eval()
    params = round(sum(p.numel() for p in model.parameters()) / 1e6, 3)
    spec = start.spec.replace(
        name=recipe.name,
        hub_id=recipe.name,
        revision=None,
        twin={},
        params_m=params,
        description=recipe.description or f"{start.spec.name} after hfm pretrain ({recipe.objective.name})",
    )
    block = recipe.backbone
    adapted = {
        "all": "all weights",
        "last_blocks": f"the last {recipe.adapt.blocks} block(s) and the final norm",
        "lora": f"LoRA r={recipe.adapt.r} on the spec's targets, merged",
        "explora": f"the last {recipe.adapt.blocks} block(s) in full plus LoRA r={recipe.adapt.r} elsewhere, merged",
    }[recipe.adapt.mode]
    if recipe.adapt.head_warmup_epochs:
        adapted += f"; heads warmed up {recipe.adapt.head_warmup_epochs} epoch(s) with the backbone frozen"
    kept = "best monitor score" if result.checks else "last epoch (no monitor)"
    facts = {
        "recipe": recipe.model_dump(mode="json"),
        "recipe_fingerprint": recipe.fingerprint(),
        "hfm_version": __version__,
        "library": start.family,
        "start": {
            "label": block.label(),
            "name": block.name,
            "twin": block.twin,
            "hub_id": start.spec.hub_id if block.name else None,
            "revision": start.revision,
        },
        "exported": recipe.export,
        "adapted": adapted,
        "images": result.images,
        "data_label": ", ".join(
            Path(str(block.get("path") or block.get("root") or block.get("id") or block.get("type"))).name
            for block in recipe.data
        ),
        "images_per_source": data.counts,
        "data_fingerprint": data.fingerprint,
        "split_info": data.split_info,
        "processes": world,
        "device": str(device),
        "epochs_done": result.epochs,
        "best_epoch": result.best_epoch,
        "kept_because": kept if result.best_epoch else "the starting weights scored best",
        "stopped": result.stopped,
        "seconds": result.seconds,
        "history": result.history,
        "monitor": result.checks,
    }

    def extras(stage: Path) -> None:
        (stage / "README.md").write_text(card.render(facts), encoding="utf-8")
        card.plot_history(
            result.history, result.checks, stage / card.PLOT_NAME, objective=recipe.objective.name
        )

    write_backbone(
        result.output,
        model,
        spec,
        family=start.family,
        model_args=model_args,
        source=start.source_path,
        facts=facts,
        extras=extras,
    )
