"""Backbone errors: each says in one line what went wrong and what to do.

All are :class:`hfm.errors.BackboneError` subclasses, so the CLI prints them without a traceback.
"""

from __future__ import annotations

from hfm.errors import BackboneError


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
