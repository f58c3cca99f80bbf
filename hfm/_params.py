"""Typed parameters of a registered component (a tuner, a method): a dataclass validated from a preset block."""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any, ClassVar

import pydantic

from hfm.errors import HfmError

if TYPE_CHECKING:
    from typing_extensions import Self


@dataclasses.dataclass
class TypedParams:
    """Base of the typed parameters of one component; subclasses are dataclasses with a default for every field.

    Class attributes ``kind`` (``"tuner"``, ``"method"``) and ``error`` (the :class:`HfmError` subclass raised)
    make the one-line messages name what the user wrote.
    """

    kind: ClassVar[str] = "component"
    error: ClassVar[type[HfmError]] = HfmError

    @classmethod
    def from_params(cls, name: str, params: dict[str, Any]) -> Self:
        """Validate ``params`` (from a preset or a call) into this config.

        Raises:
            HfmError: (``cls.error``) For an unknown parameter (naming the allowed ones) or a bad value.
        """
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise cls.error(
                f"{cls.kind} {name!r} has no parameter {unknown[0]!r}: allowed are {', '.join(allowed) or 'none'}"
            )
        try:
            config = pydantic.TypeAdapter(cls).validate_python(dict(params))
        except pydantic.ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "?"
            raise cls.error(f"{cls.kind} {name!r}: parameter {field!r}: {first['msg']}") from None
        config.check(name)
        return config

    def check(self, name: str) -> None:
        """Extra value checks (ranges, combinations); raise ``self.error``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))
