"""What crosses the wire: the adapter's trainable parameters, by name, and nothing else.

A site's update is an ``flwr.app.ArrayRecord`` holding exactly the tensors of
:meth:`~hfm.tuners.base.AdaptedModel.trainable_parameters` (the probe head; LoRA matrices and head; prompts and
head) plus a ``MetricRecord`` of scalars (the number of labelled examples it trained on, its mean loss; the
accuracy on its own test split when asked to evaluate). Frozen backbone weights, images, embeddings and per-image
predictions never enter a message; :func:`check_update` refuses any other tensor before it is sent or used.

With per-site heads (``federation.personal_head``, FedPer-style personalisation) the head's tensors (``head.*``)
stay at the site as well: only the rest of the adapter travels, and every function here takes ``personal_head``
to work on that shared part.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch

from hfm.errors import HfmError

if TYPE_CHECKING:
    from flwr.app import ArrayRecord

    from hfm.tuners.base import AdaptedModel


class WireError(HfmError):
    """A message carries something other than the adapter's trainable parameters."""


HEAD = "head."


def shared_parameters(model: AdaptedModel, personal_head: bool = False) -> dict[str, torch.nn.Parameter]:
    """The trainable parameters that travel: all of them, or all but the head's with per-site heads."""
    params = model.trainable_parameters()
    return {n: p for n, p in params.items() if not (personal_head and n.startswith(HEAD))}


def trainable_state(model: AdaptedModel, personal_head: bool = False) -> OrderedDict[str, torch.Tensor]:
    """The trainable parameters (those that travel), detached on the CPU, in name order (what a site sends)."""
    params = shared_parameters(model, personal_head)
    return OrderedDict((name, params[name].detach().cpu().clone()) for name in sorted(params))


def check_update(model: AdaptedModel, state: dict[str, torch.Tensor], personal_head: bool = False) -> None:
    """Refuse a state whose names or shapes are not exactly the model's trainable parameters (less the head's
    with per-site heads).

    Raises:
        WireError: Names a missing, unexpected or misshaped tensor.
    """
    params = shared_parameters(model, personal_head)
    extra, missing = sorted(set(state) - set(params)), sorted(set(params) - set(state))
    if extra or missing:
        raise WireError(
            f"a federated update must hold exactly the adapter's trainable parameters "
            f"(unexpected {extra[:3]}, missing {missing[:3]})"
        )
    for name, tensor in state.items():
        if tuple(tensor.shape) != tuple(params[name].shape):
            raise WireError(
                f"federated update {name!r} has shape {tuple(tensor.shape)}, expected {tuple(params[name].shape)}"
            )


def to_record(
    model: AdaptedModel, state: dict[str, torch.Tensor] | None = None, personal_head: bool = False
) -> ArrayRecord:
    """An ``ArrayRecord`` of the trainable parameters (of ``model``, or ``state`` checked against it)."""
    from flwr.app import ArrayRecord

    state = trainable_state(model, personal_head) if state is None else state
    check_update(model, state, personal_head)
    return ArrayRecord(OrderedDict((k, state[k].detach().cpu().float()) for k in sorted(state)))


def from_record(
    model: AdaptedModel, record: ArrayRecord, personal_head: bool = False
) -> OrderedDict[str, torch.Tensor]:
    """The tensors of ``record``, checked against ``model``'s trainable parameters."""
    state = OrderedDict((k, torch.as_tensor(v.numpy())) for k, v in record.items())
    check_update(model, state, personal_head)
    return state


def load_state(model: AdaptedModel, state: dict[str, torch.Tensor], personal_head: bool = False) -> None:
    """Copy trainable parameters into ``model`` in place (with ``personal_head``, the model keeps its head)."""
    check_update(model, state, personal_head)
    params = model.trainable_parameters()
    with torch.no_grad():
        for name, tensor in state.items():
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))
