"""Image files on disk: class folders and CSV manifests (also used for DICOM files).

Ids are POSIX paths relative to the folder (or the CSV's folder): stable across machines, never absolute.
Every file is decoded once at load time so a corrupt or truncated image is found before any split is made
(except inside :func:`hfm.data.images.train_split_only`, for callers that read the train split alone).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import model_validator

from hfm.data.dicom import DicomOpener
from hfm.data.images import (
    IMAGE_EXTENSIONS,
    FileReader,
    Opener,
    open_image,
    screen_files,
    screening_at_load,
)
from hfm.data.registry import Raw, SourceBlock, register_source
from hfm.data.splits import Subset
from hfm.errors import DataError

SPLIT_NAMES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
}
DICOM_EXTENSIONS = (".dcm", ".dicom", "")


@register_source("folder")
class FolderSource(SourceBlock):
    """One sub-folder per class under ``root``; any PNG, JPEG, TIFF or BMP image inside (recursively).

    Optional ``train``/``val``/``test`` top-level folders each holding the class folders give fixed splits.
    """

    root: Path
    extensions: list[str] = [".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"]

    def load(self) -> Raw:
        """Read the class folders (see :func:`load_folder`)."""
        return load_folder(self)


@register_source("csv")
class CsvSource(SourceBlock):
    """A CSV manifest: one row per image, paths relative to the CSV's folder (or to ``root``)."""

    path: Path
    root: Path | None = None
    path_column: str = "path"
    label_column: str = "label"
    group_column: str | None = None
    split_column: str | None = None

    def load(self) -> Raw:
        """Read the manifest (see :func:`load_csv`)."""
        return load_csv(self)


@register_source("dicom")
class DicomSource(SourceBlock):
    """DICOM files (needs ``pydicom``: ``pip install hfm-hub[dicom]``): class folders under ``root`` or a
    CSV manifest ``csv`` (columns as for the ``csv`` source). Only pixel data leaves the loader."""

    root: Path | None = None
    csv: Path | None = None
    path_column: str = "path"
    label_column: str = "label"
    group_column: str | None = None
    split_column: str | None = None
    window: Literal["auto", "none"] = "auto"
    """``auto`` applies the file's window centre/width when present; ``none`` scales by min/max."""

    @model_validator(mode="after")
    def _root_or_csv(self) -> DicomSource:
        if (self.root is None) == (self.csv is None):
            raise ValueError("give exactly one of 'root' (class folders) or 'csv' (a manifest)")
        return self

    def load(self) -> Raw:
        """Read the DICOM files (see :func:`load_dicom`)."""
        return load_dicom(self)


def load_folder(config: FolderSource) -> Raw:
    """One sub-folder per class (optionally under ``train``/``val``/``test`` folders)."""
    exts = tuple(e.lower() for e in config.extensions) or IMAGE_EXTENSIONS
    return _from_folders(Path(config.root).expanduser(), str(config.root), exts, config, open_image)


def load_csv(config: CsvSource) -> Raw:
    """A manifest with path, label and optional group and split columns."""
    return _from_manifest(
        Path(config.path).expanduser(),
        None if config.root is None else Path(config.root).expanduser(),
        config,
        open_image,
    )


def load_dicom(config: DicomSource) -> Raw:
    """DICOM files, by class folder or manifest; only windowed pixel data leaves the reader."""
    opener = DicomOpener(window=config.window)
    if config.root is not None:
        return _from_folders(
            Path(config.root).expanduser(), str(config.root), DICOM_EXTENSIONS, config, opener
        )
    assert config.csv is not None  # guaranteed by the source model
    return _from_manifest(Path(config.csv).expanduser(), None, config, opener)


# -- class folders ------------------------------------------------------------------------------------------
def _from_folders(
    root: Path, where: str, exts: Sequence[str], config: FolderSource | DicomSource, opener: Opener
) -> Raw:
    if not root.is_dir():
        raise DataError(f"{where}: folder not found (check 'root')")
    subdirs = _subdirs(root)
    split_dirs = {SPLIT_NAMES[d.name.lower()]: d for d in subdirs if d.name.lower() in SPLIT_NAMES}
    if "train" in split_dirs and len(split_dirs) == len(subdirs):
        layout = {name: _subdirs(folder) for name, folder in split_dirs.items()}
    else:
        layout = {"all": subdirs}
    names = sorted({d.name for dirs in layout.values() for d in dirs})
    if config.classes is not None:
        unknown = [n for n in names if n not in config.classes]
        if unknown:
            raise DataError(
                f"{where}: folder {unknown[0]!r} is not one of the listed classes {config.classes}"
            )
        names = list(config.classes)
    if not names:
        raise DataError(f"{where}: no class sub-folders found (expected one folder of images per class)")
    index = {name: i for i, name in enumerate(names)}
    relpaths: list[str] = []
    labels: list[int] = []
    splits: list[str] = []
    for split, dirs in layout.items():
        for folder in dirs:
            files = _files(folder, exts)
            if not files:
                raise DataError(
                    f"{where}: class folder {_rel(folder, root)!r} has no images ({', '.join(exts)})"
                )
            relpaths.extend(_rel(f, root) for f in files)
            labels.extend([index[folder.name]] * len(files))
            splits.extend([split] * len(files))
    return _build(root, where, relpaths, labels, None, splits, names, config.on_error, opener)


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name
    )


def _files(folder: Path, exts: Sequence[str]) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            if os.path.splitext(name)[1].lower() in exts:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.as_posix())


def _rel(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


# -- manifests ----------------------------------------------------------------------------------------------
def _from_manifest(path: Path, root: Path | None, config: CsvSource | DicomSource, opener: Opener) -> Raw:
    where = str(path)
    if not path.is_file():
        raise DataError(f"{where}: CSV file not found (check 'path')")
    base = root if root is not None else path.parent
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        wanted = {
            "path_column": config.path_column,
            "label_column": config.label_column,
            "group_column": config.group_column,
            "split_column": config.split_column,
        }
        for field_name, column in wanted.items():
            if column is not None and column not in columns:
                raise DataError(
                    f"{where}: missing column {column!r} ({field_name}); columns are {', '.join(columns) or 'none'}"
                )
        rows = list(reader)
    if not rows:
        raise DataError(f"{where}: no rows")
    relpaths, label_names, groups, splits = [], [], [], []
    for line, row in enumerate(rows, start=2):
        value = (row.get(config.path_column) or "").strip()
        if not value:
            raise DataError(f"{where}: line {line}: empty {config.path_column!r}")
        file = Path(value) if Path(value).is_absolute() else base / value
        if not file.is_file():
            raise DataError(
                f"{where}: line {line}: file {value!r} ({config.path_column}) not found under {base}"
            )
        relpaths.append(_rel(file, base))
        label = (row.get(config.label_column) or "").strip()
        if not label:
            raise DataError(f"{where}: line {line}: empty {config.label_column!r}")
        label_names.append(label)
        if config.group_column is not None:
            group = (row.get(config.group_column) or "").strip()
            if not group:
                raise DataError(
                    f"{where}: line {line}: empty {config.group_column!r} (group_column); every row needs its "
                    "group (patient, slide), or drop group_column"
                )
            groups.append(group)
        if config.split_column is not None:
            raw_split = (row.get(config.split_column) or "").strip().lower()
            if raw_split not in SPLIT_NAMES:
                raise DataError(
                    f"{where}: line {line}: split {raw_split!r} in column {config.split_column!r} "
                    "is not train, val or test"
                )
            splits.append(SPLIT_NAMES[raw_split])
    first_label: dict[str, tuple[int, str]] = {}
    for line, (relpath, label) in enumerate(zip(relpaths, label_names, strict=True), start=2):
        seen = first_label.setdefault(relpath, (line, label))
        if seen[1] != label:
            raise DataError(
                f"{where}: line {line}: {relpath!r} is listed again with label {label!r} (line {seen[0]} says "
                f"{seen[1]!r}); keep one row per file"
            )
    if config.classes is not None:
        names = list(config.classes)
        for line, label in enumerate(label_names, start=2):
            if label not in names:
                raise DataError(
                    f"{where}: line {line}: unknown label {label!r} in column {config.label_column!r} "
                    f"(classes: {', '.join(names)})"
                )
    else:
        unique = set(label_names)
        names = sorted(unique, key=int) if all(_is_int(x) for x in unique) else sorted(unique)
    index = {name: i for i, name in enumerate(names)}
    labels = [index[name] for name in label_names]
    return _build(
        base,
        where,
        relpaths,
        labels,
        groups if config.group_column is not None else None,
        splits if config.split_column is not None else ["all"] * len(relpaths),
        names,
        config.on_error,
        opener,
    )


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


# -- shared ---------------------------------------------------------------------------------------------------
def _build(
    root: Path,
    where: str,
    relpaths: list[str],
    labels: list[int],
    groups: list[str] | None,
    splits: list[str],
    classes: list[str],
    on_error: str,
    opener: Opener,
) -> Raw:
    if on_error == "raise" and not screening_at_load():
        kept, skipped = list(range(len(relpaths))), list[str]()  # the caller decodes only the files it reads
    else:
        kept, skipped = screen_files(
            root, relpaths, on_error=on_error, opener=opener, desc=f"checking {where}"
        )
    reader = FileReader(root, [relpaths[i] for i in kept], opener)
    all_ids = [relpaths[i] for i in kept]
    all_labels = np.asarray([labels[i] for i in kept], dtype=np.int64)
    all_groups = None if groups is None else [groups[i] for i in kept]
    everything = Subset(ids=all_ids, labels=all_labels, reader=reader, groups=all_groups)
    kept_splits = [splits[i] for i in kept]
    parts: dict[str, Subset] = {}
    for name in dict.fromkeys(kept_splits):
        parts[name] = everything.take([j for j, s in enumerate(kept_splits) if s == name])
    info = {"skipped_files": len(skipped), "skipped": skipped[:20]} if skipped else {}
    return Raw(parts=parts, classes=classes, where=where, info=info)
