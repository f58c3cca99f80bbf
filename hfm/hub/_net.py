"""The Hub token, and retrying of transient failures.

Endpoint, cache folder and offline mode are read at call time by :mod:`hfm.env`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import httpx2
from huggingface_hub import get_token
from huggingface_hub.errors import HfHubHTTPError

T = TypeVar("T")
_sleep = time.sleep  # tests replace this to skip the waits


def token() -> str | None:
    """The token from huggingface_hub's usual places (``HF_TOKEN``, ``hf auth login``); never logged."""
    return get_token()


def status_of(err: BaseException) -> int | None:
    """The HTTP status of a Hub error, if it has one."""
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def is_transient(err: BaseException) -> bool:
    """HTTP 5xx/429, dropped or reset connections and timeouts: worth another try."""
    if isinstance(err, HfHubHTTPError):
        status = status_of(err)
        return status is None or status >= 500 or status == 429
    return isinstance(err, (httpx2.TransportError, ConnectionError, TimeoutError))


def describe(err: BaseException) -> str:
    """A short, token-free description of a failed request."""
    status = status_of(err)
    if status is not None:
        return f"HTTP {status}"
    return type(err).__name__


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int = 5,
    backoff: float = 1.0,
    before_retry: Callable[[], T | None] | None = None,
) -> T:
    """Run ``call``, retrying transient errors with exponential back-off (``backoff``, 2x, 4x ... seconds).

    Args:
        call: The request.
        attempts: Tries in all.
        backoff: First wait in seconds.
        before_retry: Called before each retry; a non-``None`` result is returned instead of retrying
            (used to notice that a commit whose answer was lost did land).
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as err:
            if attempt == attempts or not is_transient(err):
                raise
            _sleep(backoff * 2 ** (attempt - 1))
            if before_retry is not None:
                landed = before_retry()
                if landed is not None:
                    return landed
    raise AssertionError("unreachable")  # pragma: no cover
