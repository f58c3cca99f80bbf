"""One open registry shape for tuners, methods and data sources: a name → class map with lazily imported
built-ins, a registering decorator that works from outside hfm, and a one-line error listing the known names."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

from hfm.errors import HfmError

C = TypeVar("C", bound=type)


class Registry(Generic[C]):
    """Classes registered under short names.

    Args:
        kind: What the names are, for messages (``"tuner"``, ``"method"``, ``"data source"``).
        package: Package of the built-in modules.
        builtins: Built-in name → module in ``package``; a module is imported only when one of its names is
            asked for (or the list of names is), so importing the registry stays cheap.
        error: The error raised for an unknown name.
        name_attr: Class attribute set to the registered name.
    """

    def __init__(
        self,
        kind: str,
        package: str,
        builtins: Mapping[str, str],
        error: type[HfmError],
        name_attr: str,
    ) -> None:
        self.kind = kind
        self.package = package
        self.builtins = builtins
        self.error = error
        self.name_attr = name_attr
        self.classes: dict[str, C] = {}
        self._all_loaded = False

    def register(self, name: str, check: Callable[[C], None] | None = None) -> Callable[[C], C]:
        """Class decorator registering ``cls`` under ``name``.

        Raises:
            ValueError: When ``name`` is already taken by another class (a programming error, not a user one).
        """

        def decorator(cls: C) -> C:
            if check is not None:
                check(cls)
            existing = self.classes.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(
                    f"{self.kind} name {name!r} is already registered by {existing.__qualname__}"
                )
            setattr(cls, self.name_attr, name)
            self.classes[name] = cls
            return cls

        return decorator

    def load_builtins(self) -> None:
        """Import every built-in module (once)."""
        if not self._all_loaded:
            self._all_loaded = True
            for module in sorted(set(self.builtins.values())):
                importlib.import_module(f"{self.package}.{module}")

    def get(self, name: str, message: str | None = None) -> C:
        """The class registered as ``name``.

        Raises:
            HfmError: ``self.error`` for an unknown name; ``message`` (formatted with ``name`` and ``known``)
                replaces the default text.
        """
        if name not in self.classes:
            if name in self.builtins:
                importlib.import_module(f"{self.package}.{self.builtins[name]}")
            else:  # a built-in module may register more names than it is listed for
                self.load_builtins()
        try:
            return self.classes[name]
        except KeyError:
            known = ", ".join(self.names())
            text = message or "unknown {kind} {name!r}: use one of {known}"
            raise self.error(text.format(kind=self.kind, name=name, known=known)) from None

    def names(self) -> list[str]:
        """Registered names (built-ins included), sorted."""
        self.load_builtins()
        return sorted(self.classes)

    def knows(self, name: str) -> bool:
        """Whether ``name`` is a built-in or registered name; imports nothing."""
        return name in self.builtins or name in self.classes
