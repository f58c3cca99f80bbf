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


class StorageError(HfmError):
    """A folder cannot be created or written: a file in the way, no permission, no space left (names it)."""


class BackboneError(HfmError):
    """A backbone cannot be found, downloaded or loaded."""


class HubError(HfmError):
    """The Hub (or a mirror) refused or failed a request."""


class TunerError(HfmError, ValueError):
    """A tuner cannot be applied to this backbone or with these parameters."""


class MethodError(HfmError, ValueError):
    """A method cannot be used with these parameters, this tuner or this data."""


class BackboneNotFoundError(BackboneError, KeyError):
    """The name is neither a catalog entry nor a Hub id or local folder (the message lists close matches)."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown backbone"


class BackboneNotCachedError(BackboneError):
    """The model is not in the local cache and the Hub cannot be reached (offline mode or no network)."""


class BackboneAccessError(BackboneError):
    """The Hub refused the download: gated without a token or without access, private, or missing."""


class RemoteCodeError(BackboneError):
    """Loading needs code from the Hub repository but the user did not allow it by name."""


class BackboneLoadError(BackboneError):
    """The files were found but do not build the backbone the spec describes (weights, sizes, pooling)."""
