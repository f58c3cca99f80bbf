"""Hugging Face ``datasets``: a local ``save_to_disk`` / parquet folder, or a Hub id (via ``hfm.hub``)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import model_validator
from tqdm.auto import tqdm

from hfm.data.files import SPLIT_NAMES
from hfm.data.registry import Raw, SourceBlock, register_source
from hfm.data.splits import Subset
from hfm.errors import DataError


@register_source("hf")
class HfSource(SourceBlock):
    """A Hugging Face dataset: a Hub ``id`` (network, via :mod:`hfm.hub.data_fetch`) or a local ``path``
    (a ``save_to_disk`` folder, or parquet files named ``train-*.parquet`` / ``test-*.parquet`` ...)."""

    id: str | None = None
    path: Path | None = None
    config: str | None = None
    revision: str | None = None
    image_column: str = "image"
    label_column: str = "label"
    group_column: str | None = None
    val_split: str | None = None
    """Name of the validation split when it is not ``validation``/``val``/``valid``."""

    @model_validator(mode="after")
    def _id_or_path(self) -> HfSource:
        if (self.id is None) == (self.path is None):
            raise ValueError("give exactly one of 'id' (a Hub dataset) or 'path' (a local dataset folder)")
        return self

    def load(self) -> Raw:
        """Map the dataset's splits to train/val/test (see :func:`load_hf`)."""
        return load_hf(self)


class HfReader:
    """``reader(i)`` decodes row ``rows[i]`` of the image column (PIL, encoded bytes or an array)."""

    def __init__(self, dataset: Any, column: str, rows: list[int], where: str) -> None:
        self.dataset = dataset.select_columns([column])
        self.column = column
        self.rows = rows
        self.where = where

    def __call__(self, i: int) -> Any:
        row = self.rows[i]
        try:
            value = self.dataset[row][self.column]
            return _decode(value)
        except DataError:
            raise
        except Exception as err:  # noqa: BLE001 - any decoder failure is a bad image
            raise DataError(
                f"{self.where}: row {row}: cannot decode {self.column!r} ({str(err)[:120]})"
            ) from None


def _decode(value: Any) -> Any:
    if isinstance(value, Image.Image):
        value.load()
        return value
    if isinstance(value, dict) and value.get("bytes") is not None:
        with Image.open(io.BytesIO(value["bytes"])) as image:
            image.load()
            return image
    if isinstance(value, dict) and value.get("path"):
        with Image.open(value["path"]) as image:
            image.load()
            return image
    if value is None:
        raise DataError("empty image")
    return np.asarray(value)


def _open(config: HfSource) -> tuple[dict[str, Any], str]:
    import datasets

    if config.id is not None:
        from hfm.hub.data_fetch import load_hub_dataset

        return load_hub_dataset(config.id, config=config.config, revision=config.revision), config.id
    path = Path(config.path).expanduser()  # type: ignore[arg-type]
    where = str(config.path)
    if not path.exists():
        raise DataError(f"{where}: dataset folder not found (check 'path')")
    if (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file():
        loaded = datasets.load_from_disk(str(path))
    else:
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise DataError(f"{where}: no save_to_disk dataset and no .parquet files here")
        by_split: dict[str, list[str]] = {}
        for file in files:
            stem = file.stem.split("-")[0].split("_")[0].lower()
            by_split.setdefault(stem if stem in SPLIT_NAMES else "train", []).append(str(file))
        loaded = datasets.load_dataset("parquet", data_files=by_split)
    if isinstance(loaded, datasets.Dataset):
        return {"all": loaded}, where
    return dict(loaded), where


def load_hf(config: HfSource) -> Raw:
    """Map dataset splits to train/val/test; labels from a ``ClassLabel`` when present."""
    datasets_by_name, where = _open(config)
    aliases = dict(SPLIT_NAMES, all="all")
    if config.val_split is not None:
        aliases[config.val_split.lower()] = "val"
    chosen: dict[str, tuple[str, Any]] = {}
    for name, dataset in datasets_by_name.items():
        target = aliases.get(name.lower())
        if target is not None and target not in chosen:
            chosen[target] = (name, dataset)
    if not chosen:
        raise DataError(f"{where}: no train/validation/test split (found {', '.join(datasets_by_name)})")
    first = next(iter(chosen.values()))[1]
    for column in (config.image_column, config.label_column, config.group_column):
        if column is not None and column not in first.column_names:
            raise DataError(
                f"{where}: missing column {column!r}; columns are {', '.join(first.column_names)}"
            )
    feature = first.features[config.label_column]
    names: list[str] | None = list(config.classes) if config.classes is not None else None
    if names is None and hasattr(feature, "names"):
        names = list(feature.names)
    raw_labels = {target: list(ds[config.label_column]) for target, (_, ds) in chosen.items()}
    if names is None:
        unique = {v for values in raw_labels.values() for v in values}
        if all(isinstance(v, (int, np.integer)) for v in unique):
            names = [str(i) for i in range(int(max(unique)) + 1)]
        else:
            names = sorted(str(v) for v in unique)
    index = {name: i for i, name in enumerate(names)}
    parts: dict[str, Subset] = {}
    skipped: list[str] = []
    for target, (split_name, dataset) in chosen.items():
        labels = []
        for row, value in enumerate(raw_labels[target]):
            if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
                if not 0 <= int(value) < len(names):
                    raise DataError(f"{where}: {split_name} row {row}: label {value} is not a class index")
                labels.append(int(value))
            elif str(value) in index:
                labels.append(index[str(value)])
            else:
                raise DataError(
                    f"{where}: {split_name} row {row}: unknown label {value!r} in column {config.label_column!r}"
                )
        rows = list(range(len(labels)))
        reader = HfReader(dataset, config.image_column, rows, where)
        kept = []
        for row in tqdm(rows, desc=f"checking {split_name}", leave=False, disable=len(rows) < 200):
            try:
                reader(row)
            except DataError:
                if config.on_error == "raise":
                    raise
                skipped.append(f"{split_name}/{row}")
                continue
            kept.append(row)
        groups = None
        if config.group_column is not None:
            all_groups = [str(g) for g in dataset[config.group_column]]
            groups = [all_groups[r] for r in kept]
        parts[target] = Subset(
            ids=[f"{split_name}/{r}" for r in kept],
            labels=np.asarray([labels[r] for r in kept], dtype=np.int64),
            reader=HfReader(dataset, config.image_column, kept, where),
            groups=groups,
        )
    info = {"skipped_files": len(skipped), "skipped": skipped[:20]} if skipped else {}
    return Raw(parts=parts, classes=names, where=where, info=info)
