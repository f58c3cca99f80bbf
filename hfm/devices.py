"""Devices, precision and processes: one place for what training and embedding both need.

Precision ``auto`` means bf16 autocast on a GPU that supports it and fp32 on the CPU. Under ``torchrun`` /
``accelerate launch`` each process takes a strided shard of the examples and the shards are gathered back in
the original order. Inside :func:`run_alone` a process is on its own whatever the launcher said: no sharding,
no collectives, one device (run-parallel sweeps, :mod:`hfm.parallel`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any

import torch

from hfm.errors import DataError


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on a GPU that supports it, else ``fp32``; explicit values pass through."""
    if precision not in ("auto", "fp32", "bf16"):
        raise DataError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast for ``bf16``, nothing for ``fp32``."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def launched_on_cpu() -> bool:
    """Whether this is a multi-process launch (torchrun, accelerate launch) on a machine without CUDA.

    accelerate 1.15 only sets up CPU multi-processing (gloo) when told ``cpu=True``; otherwise every process
    silently runs alone on the whole data.
    """
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1 or int(os.environ.get("LOCAL_RANK", "-1")) != -1
    return launched and not torch.cuda.is_available()


_ALONE: ContextVar[torch.device | None] = ContextVar("hfm_alone_device", default=None)


@contextlib.contextmanager
def run_alone(device: torch.device | str) -> Iterator[torch.device]:
    """Within this block this process (thread) works alone on ``device``, even under a multi-process launch.

    :func:`process_info` then reports rank 0 of 1 on ``device`` (so extraction and evaluation neither shard
    nor gather) and :func:`alone_accelerator` hands :func:`hfm.train.fit` a single-device stand-in for
    ``accelerate.Accelerator`` (so the model is never wrapped in DDP). A run-parallel sweep trains each run so.
    """
    token = _ALONE.set(torch.device(device))
    try:
        yield torch.device(device)
    finally:
        _ALONE.reset(token)


class LocalAccelerator:
    """The part of ``accelerate.Accelerator`` that :func:`hfm.train.fit` uses, for one process on one device.

    accelerate has no way to opt one training out of the process group its launcher set up (its state is a
    process-wide singleton), so a run trained alone inside a multi-process launch uses this instead: the same
    calls, no collective.
    """

    process_index = 0
    num_processes = 1
    is_main_process = True

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        return model.to(self.device)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def no_sync(self, model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    def reduce(self, tensor: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        return tensor

    def clip_grad_norm_(self, parameters: Iterable[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)

    def wait_for_everyone(self) -> None:
        return None


def alone_accelerator() -> LocalAccelerator | None:
    """A :class:`LocalAccelerator` inside :func:`run_alone`; ``None`` otherwise (use accelerate's)."""
    device = _ALONE.get()
    return None if device is None else LocalAccelerator(device)


def process_info() -> tuple[int, int, torch.device]:
    """``(rank, world_size, device)`` of this process; initialises torch.distributed under a launcher.

    Inside :func:`run_alone`: ``(0, 1, its device)``.
    """
    alone = _ALONE.get()
    if alone is not None:
        return 0, 1, alone
    from accelerate import PartialState

    state = PartialState(cpu=launched_on_cpu())
    return state.process_index, state.num_processes, state.device


def shard(n: int, rank: int, world: int) -> list[int]:
    """Positions ``rank, rank + world, ...`` below ``n``: this process's strided share."""
    return list(range(rank, n, world))


def gather_rows(local: torch.Tensor, n: int, rank: int, world: int, device: torch.device) -> torch.Tensor:
    """Reassemble strided shards of ``n`` rows from every process, in the original order (CPU tensor)."""
    if world == 1:
        return local.cpu()
    import torch.distributed as dist

    per = math.ceil(n / world)
    padded = torch.zeros((per, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: len(local)] = local.to(device)
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    out = torch.empty((n, *local.shape[1:]), dtype=local.dtype)
    for r, part in enumerate(parts):
        count = len(range(r, n, world))
        out[r::world] = part[:count].cpu()
    return out
