"""Tuners: adaptation methods behind one interface, in an open registry.

A tuner is an :class:`~hfm.tuners.base.AdaptedModel` subclass registered under a short name. Building one
is ``get_tuner(name)(backbone, num_classes, **params)``. Third-party code adds tuners with the same decorator
the built-in ones use::

    @register_tuner("my-tuner")
    class MyTuner(AdaptedModel):
        config_cls = MyConfig
        ...

The built-in tuners (probe, lora, dora, vpt, full, bitfit) are imported on first registry access, so
``import hfm.tuners`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from hfm._registry import Registry
from hfm.errors import TunerError

if TYPE_CHECKING:
    from hfm.tuners.base import AdaptedModel

# Built-in tuner name -> module. A name is imported only when asked for, so a probe-only sweep never imports
# peft (and with it much of transformers).
_BUILTINS = {
    "probe": "probe",
    "lora": "lora",
    "dora": "lora",
    "vpt": "vpt",
    "full": "full",
    "bitfit": "bitfit",
    "mil": "mil",
    "text-probe": "text_probe",
}
_TUNERS: Registry[type[AdaptedModel]] = Registry("tuner", "hfm.tuners", _BUILTINS, TunerError, "tuner_name")

T = TypeVar("T", bound="type[AdaptedModel]")


def register_tuner(name: str) -> Callable[[T], T]:
    """Class decorator: register an :class:`AdaptedModel` subclass under ``name``.

    Raises:
        ValueError: When ``name`` is already taken by another class (a programming error, not a user one).
    """
    return _TUNERS.register(name)  # type: ignore[return-value]


def get_tuner(name: str) -> type[AdaptedModel]:
    """The tuner class registered as ``name``; call it as ``cls(backbone, num_classes, **params)``.

    Raises:
        TunerError: For an unknown name (the message lists the known ones).
    """
    return _TUNERS.get(name)


def builtin_tuners() -> tuple[str, ...]:
    """The tuner names hfm ships, in a stable order, without importing their modules (or peft)."""
    return tuple(_BUILTINS)


def is_known_tuner(name: str) -> bool:
    """Whether ``name`` is a built-in or registered tuner; imports nothing."""
    return _TUNERS.knows(name)


def list_tuners() -> list[str]:
    """Registered tuner names, sorted."""
    return _TUNERS.names()


__all__ = ["builtin_tuners", "get_tuner", "is_known_tuner", "list_tuners", "register_tuner"]
