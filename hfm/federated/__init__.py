"""Federated few-shot adaptation on Flower: sites train one adapter together without sharing images.

Each site keeps its images, its draw of k labels per class and its embeddings; only the adapter's trainable
parameters (the probe head; LoRA matrices and head; prompts and head) and scalar metrics cross the wire. The
server aggregates with Flower's FedAvg or FedProx. ``hfm federate RECIPE`` runs a study in simulation
(:mod:`hfm.federated.study`); :mod:`hfm.federated.apps` holds the ``ServerApp`` and ``ClientApp`` for real sites.

Needs the optional extra ``hfm-hub[federated]`` (``flwr``); nothing here imports it until it is used. Flower's own
simulation engine (``federation.engine: flower``) also needs Ray: ``hfm-hub[federated-ray]``.
"""

from __future__ import annotations

from hfm.errors import HfmError


class FederatedError(HfmError):
    """A federated recipe or run cannot go ahead (e.g. Flower is not installed)."""


def require_flwr() -> None:
    """Raise a one-line :class:`FederatedError` when Flower is missing."""
    try:
        import flwr  # noqa: F401
    except ImportError:
        raise FederatedError("federated training needs Flower: pip install 'hfm-hub[federated]'") from None


__all__ = ["FederatedError", "require_flwr"]
