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

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from hfm.errors import MethodError

if TYPE_CHECKING:
    from hfm.methods.base import Method

# Built-in method name -> module, imported only when asked for.
_BUILTINS = {
    "supervised": "supervised",
    "label-spreading": "graph",
    "label-propagation": "graph",
    "self-training": "self_training",
    "pseudo-label": "consistency",
    "fixmatch": "consistency",
    "freematch": "consistency",
}
_REGISTRY: dict[str, type[Method]] = {}
_builtins_loaded = False

DEFAULT_METHOD = "supervised"

T = TypeVar("T", bound="type[Method]")


def register_method(name: str) -> Callable[[T], T]:
    """Class decorator: register a :class:`Method` subclass under ``name``.

    Raises:
        ValueError: When ``name`` is already taken by another class (a programming error, not a user one).
    """

    def decorator(cls: T) -> T:
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"method name {name!r} is already registered by {existing.__qualname__}")
        cls.method_name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    _builtins_loaded = True
    for module in sorted(set(_BUILTINS.values())):
        importlib.import_module(f"hfm.methods.{module}")


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``; build it as ``cls(**params)``.

    Raises:
        MethodError: For an unknown name (the message lists the known ones).
    """
    if name not in _REGISTRY and name in _BUILTINS:
        importlib.import_module(f"hfm.methods.{_BUILTINS[name]}")
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_methods())
        raise MethodError(f"unknown method {name!r}: use one of {known}") from None


def list_methods() -> list[str]:
    """Registered method names, sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


__all__ = ["DEFAULT_METHOD", "get_method", "list_methods", "register_method"]
