"""Methods: how labelled and unlabelled data are used, behind one interface, in an open registry.

A method is a :class:`~hfm.methods.base.Method` subclass registered under a short name; a preset names it in
its ``method:`` block next to its tuner (``supervised`` when absent). A tuner says *which parameters adapt*; a
method says *how the draw's data train them*, so the two combine freely. Third-party code adds methods with the
same decorator the built-in ones use::

    @register_method("my-method")
    class MyMethod(Method):
        config_cls = MyConfig
        def fit(self, model, ctx): ...

Built-in methods are imported on first registry access, so ``import hfm.methods`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from hfm._registry import Registry
from hfm.errors import MethodError

if TYPE_CHECKING:
    from hfm.methods.base import Method

# Built-in method name -> module, imported only when asked for.
_BUILTINS = {
    "supervised": "supervised",
    "mil": "mil",
    "zero-shot": "zeroshot",
    "text-init": "zeroshot",
    "label-spreading": "graph",
    "label-propagation": "graph",
    "self-training": "self_training",
    "pseudo-label": "consistency",
    "fixmatch": "consistency",
    "freematch": "consistency",
}
_METHODS: Registry[type[Method]] = Registry("method", "hfm.methods", _BUILTINS, MethodError, "method_name")

DEFAULT_METHOD = "supervised"

T = TypeVar("T", bound="type[Method]")


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`Method` subclass under ``name``.

    Raises:
        ValueError: When ``name`` is already taken by another class (a programming error, not a user one).
    """
    return _METHODS.register(name)  # type: ignore[return-value]


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; build it as ``cls(**params)``.

    Raises:
        MethodError: For an unknown name (the message lists the known ones).
    """
    return _METHODS.get(name)


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    return _METHODS.names()


__all__ = ["DEFAULT_METHOD", "get_method", "list_methods", "register_method"]
