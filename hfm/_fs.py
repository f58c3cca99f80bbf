"""Small file-system helpers shared by everything that writes folders users rely on, and the file names an
adapter folder is recognised by (the tuners write it, the hub publishes and pulls it)."""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from pathlib import Path

CONFIG_NAME = "hfm_config.json"
"""The hfm config of an adapter folder: tuner, parameters, backbone and preprocessing."""


def _aside_name(final: Path) -> Path:
    return final.with_name(f".{final.name}{OLD_MARK}{uuid.uuid4().hex[:8]}")


OLD_MARK = ".old-"
"""Infix of the hidden name an older folder is renamed to while its replacement moves in."""


def move_into_place(tmp: Path, final: Path) -> None:
    """Rename a completed temporary folder to ``final``, replacing any older folder there.

    The older folder is first renamed aside (``.NAME.old-*``) and removed only after the new one is in place.
    If the second rename fails the older folder is renamed back at once; if the process dies between the two
    renames, :func:`restore_aside` (run by the next clean-up) renames it back. So a crash leaves either the old
    or the new complete folder under ``final``, never neither and never a half-written one.
    """
    if not final.exists():
        tmp.rename(final)
        return
    old = _aside_name(final)
    final.rename(old)
    try:
        tmp.rename(final)
    except BaseException:
        old.rename(final)
        raise
    shutil.rmtree(old, ignore_errors=True)


def restore_aside(folder: Path, pattern: str = "*") -> None:
    """Recover from a crash inside :func:`move_into_place`: below ``folder``, every ``.NAME.old-*`` whose
    ``NAME`` is missing is renamed back to ``NAME``; one whose ``NAME`` exists is a leftover and removed."""
    for old in sorted(folder.rglob(f".{pattern}{OLD_MARK}*")):
        if not old.is_dir():
            continue
        name = old.name[1:].rsplit(OLD_MARK, 1)[0]
        final = old.with_name(name)
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.rename(final)


def describe_os_error(err: BaseException) -> str:
    """A short reason for a failed write: "no space left", "permission denied", ... (never a traceback)."""
    errno_ = getattr(err, "errno", None)
    if errno_ is None and isinstance(err.__cause__, OSError):
        errno_ = err.__cause__.errno
    text = str(err)
    if errno_ == errno.ENOSPC or "No space left" in text or "os error 28" in text:
        return "no space left on device"
    if errno_ in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if errno_ == errno.EROFS:
        return "read-only file system"
    if errno_ == errno.EDQUOT:
        return "disk quota exceeded"
    reason = getattr(err, "strerror", None) or (text.splitlines()[0] if text else type(err).__name__)
    return str(reason)[:160]


STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)
_STORAGE_TEXT = (
    "No space left",
    "unexpected pos",
    "os error 28",
    "Disk quota exceeded",
    "Read-only file system",
)


def storage_cause(err: BaseException) -> BaseException | None:
    """The exception in ``err``'s chain that is a full, over-quota, read-only or unwritable disk, else ``None``.

    torch reports a full disk while saving as ``unexpected pos N vs M``; safetensors wraps the OS error in
    its own type, so the text is checked as well as the errno.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in STORAGE_ERRNOS:
            return current
        if any(text in str(current) for text in _STORAGE_TEXT):
            return current
        current = current.__cause__ or current.__context__
    return None


def describe_storage(err: BaseException) -> str:
    """:func:`describe_os_error`, where torch's and safetensors' words for a full disk read "no space left"."""
    reason = describe_os_error(err)
    if "unexpected pos" in str(err):
        return "no space left on device"
    return reason


def ensure_dir(path: Path, what: str) -> Path:
    """Create folder ``path`` (and parents) or raise a one-line :class:`~hfm.errors.StorageError` saying why.

    Args:
        path: The folder.
        what: What it is for, in the message (``"output folder"``, ``"cache folder (HFM_CACHE)"``).
    """
    from hfm.errors import StorageError

    if path.exists() and not path.is_dir():
        raise StorageError(f"{what} {path} is a file, not a folder: choose another path or remove the file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [path, *path.parents] if p.exists() and not p.is_dir()), path)
        raise StorageError(
            f"cannot create {what} {path}: {blocker} is a file, not a folder; choose another path"
        ) from None
    except OSError as err:
        raise StorageError(
            f"cannot create {what} {path}: {describe_os_error(err)}; choose another path"
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise StorageError(f"cannot write to {what} {path}: permission denied; choose another path")
    return path


def corrupt_weight_file(folder: Path) -> Path | None:
    """The first ``.safetensors`` file below ``folder`` whose header does not cover the file (truncated or
    damaged), or ``None`` when all are intact. Only headers are read, so this is cheap."""
    from safetensors import safe_open

    for path in sorted(folder.rglob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as handle:
                list(handle.keys())
        except Exception:  # noqa: BLE001 - safetensors raises its own error type for any damage
            return path
    return None
