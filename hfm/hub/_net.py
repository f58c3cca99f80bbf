"""Hub settings read at call time, and retrying of transient failures.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE`` and the cache folders once, at import; hfm reads them
from the environment each time it talks to the Hub, so a mirror or offline switch set later still applies.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx2
from huggingface_hub import get_token
from huggingface_hub.errors import HfHubHTTPError

T = TypeVar("T")
_sleep = time.sleep  # tests replace this to skip the waits
_TRUE = {"1", "true", "yes", "on"}


def endpoint() -> str:
    """The Hub endpoint: ``HF_ENDPOINT`` now, else huggingface.co."""
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set now."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def cache_dir() -> Path:
    """The Hub cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(home) / "hub"


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
