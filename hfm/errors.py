"""User-facing errors: one line that says what went wrong and what to do.

The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class HfmError(Exception):
    """Base class for mistakes a user can make and fix (bad input, missing files, offline, ...)."""


class ConfigError(HfmError, ValueError):
    """A recipe, preset or source block is invalid (names the file and field)."""


class DataError(HfmError, ValueError):
    """Data cannot be read or does not fit the few-shot protocol (names the file, class or field)."""


class BackboneError(HfmError):
    """A backbone cannot be found, downloaded or loaded."""


class HubError(HfmError):
    """The Hub (or a mirror) refused or failed a request."""


class TunerError(HfmError, ValueError):
    """A tuner cannot be applied to this backbone or with these parameters."""


class MethodError(HfmError, ValueError):
    """A method cannot be used with these parameters, this tuner or this data."""
