"""Reading images from files and arrays, and screening out corrupt ones before splits are made.

Readers are small classes (not lambdas) so a :class:`~hfm.data.splits.Subset` pickles into DataLoader
workers. Ids are always paths relative to the source root: absolute paths never leave this module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from hfm.data.content import array_digests, file_digests
from hfm.errors import DataError

Opener = Callable[[Path], Any]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

_PROGRESS = [True]


@contextmanager
def loading_progress(show: bool) -> Iterator[None]:
    """Show (or hide) the file-checking bar of :func:`screen_files` inside the block (``--no-progress``)."""
    before = _PROGRESS[0]
    _PROGRESS[0] = show
    try:
        yield
    finally:
        _PROGRESS[0] = before


# Whether loading decodes every file (a context variable: each thread and task sees its own setting).
_SCREEN_AT_LOAD: ContextVar[bool] = ContextVar("hfm_screen_at_load", default=True)


@contextmanager
def train_split_only() -> Iterator[None]:
    """Inside the block, loading opens no image file: for a caller that reads only the train split.

    Folder, manifest and DICOM sources under ``on_error: raise`` then skip the load-time decode of every file
    (the split does not depend on it: under ``raise`` no file is dropped, so the splits are the ones a normal
    load makes) and :func:`hfm.data.load_data` skips the train-vs-val/test duplicate check (it hashes the
    held-out files). The caller decodes the train files it reads (a bad one raises then). Under
    ``on_error: skip`` which files read decides the splits, so every file is still screened at load.
    """
    token = _SCREEN_AT_LOAD.set(False)
    try:
        yield
    finally:
        _SCREEN_AT_LOAD.reset(token)


def screening_at_load() -> bool:
    """Whether loading decodes every file now (``False`` inside :func:`train_split_only`)."""
    return _SCREEN_AT_LOAD.get()


def open_image(path: Path) -> Image.Image:
    """Decode an image file fully (so truncation is found now, not in a worker) and close it.

    The EXIF orientation is applied (a phone photo stored sideways arrives upright), as viewers show it.
    """
    with Image.open(path) as image:
        image.load()
        return ImageOps.exif_transpose(image)


class FileReader:
    """``reader(i)`` decodes file ``relpaths[i]`` under ``root``; failures name the file in one line."""

    def __init__(self, root: Path, relpaths: Sequence[str], opener: Opener = open_image) -> None:
        self.root = Path(root)
        self.relpaths = list(relpaths)
        self.opener = opener
        self._digests: list[str] | None = None

    def content_digests(self) -> list[str]:
        """Content digest of every file (see :mod:`hfm.data.content`), computed once per reader."""
        if self._digests is None:
            self._digests = file_digests(self.root, self.relpaths)
        return self._digests

    def __call__(self, i: int) -> Any:
        relpath = self.relpaths[i]
        try:
            return self.opener(self.root / relpath)
        except DataError as err:
            raise DataError(f"{relpath}: {err}") from None
        except FileNotFoundError:
            raise DataError(f"{relpath}: file not found under {self.root}") from None
        except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file
            raise DataError(f"{relpath}: cannot read image ({_reason(err)})") from None


class ArrayReader:
    """``reader(i)`` returns ``array[i]`` (an in-memory or memory-mapped image stack)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self._digests: list[str] | None = None

    def content_digests(self) -> list[str]:
        """Content digest of every row of the array, computed once per reader."""
        if self._digests is None:
            self._digests = array_digests(self.array)
        return self._digests

    def __call__(self, i: int) -> np.ndarray:
        return np.asarray(self.array[i])


def screen_files(
    root: Path,
    relpaths: Sequence[str],
    *,
    on_error: str,
    opener: Opener = open_image,
    desc: str = "checking images",
) -> tuple[list[int], list[str]]:
    """Decode every file once; return the indices that read and the relative paths that did not.

    With ``on_error="raise"`` the first bad file stops loading with its name; with ``"skip"`` the bad
    files are dropped (the caller reports their count in ``Splits.split_info``).
    """
    kept: list[int] = []
    skipped: list[str] = []
    for i, relpath in enumerate(
        tqdm(relpaths, desc=desc, leave=False, disable=len(relpaths) < 200 or not _PROGRESS[0])
    ):
        path = Path(root) / relpath
        if not path.is_file():
            raise DataError(f"{relpath}: file not found under {root} (check the path column or folder)")
        try:
            opener(path)
        except Exception as err:  # noqa: BLE001 - any decoder failure is a bad file
            if on_error == "raise" and isinstance(err, DataError):
                raise DataError(f"{relpath}: {err}") from None
            if on_error == "raise":
                raise DataError(
                    f"{relpath}: corrupt or unreadable image ({_reason(err)}); fix or remove it, "
                    "or set on_error: skip"
                ) from None
            skipped.append(relpath)
            continue
        kept.append(i)
    return kept, skipped


def _reason(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:160]
