"""Which images to label next: ``hfm select`` and the labels that come back.

One round of the loop a person runs::

    hfm select recipe.yaml --budget 20 --out sel/          # sel/to_label.csv, sel/contact_sheet.png
    (label the images in any tool; save sel/labels.csv with columns id,label)
    hfm run recipe.yaml --labelled sel/labels.csv          # train on exactly those labels
    hfm select recipe.yaml --budget 20 --labelled sel/labels.csv --out sel/   # the next round, among the rest

The strategies are those of :mod:`hfm.methods.samplers`, run on the backbone's cached embeddings of the train
split. ``hfm select`` never reads the source's own labels: the sampler sees only the labels of the CSV, and a
sampler that reads the truth (``class-balanced``) is refused. Every round is kept in ``query_log.json`` beside
``to_label.csv`` (round, strategy, seed, backbone, ids, scores); a run trained with ``--labelled`` reads that log
from the CSV's folder and records it in its ``episode.json`` and adapter metadata, so the card can say what the
model saw and why.

Running a round again with the same inputs rewrites the same files with the same content: the round number is
the number of logged rounds the labelled set already answers, not the number of times ``hfm select`` ran.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hfm.data.episodes import Draw, QueryRound, eligible
from hfm.data.splits import Splits
from hfm.errors import DataError, MethodError

TO_LABEL = "to_label.csv"
CONTACT_SHEET = "contact_sheet.png"
QUERY_LOG = "query_log.json"


@dataclass
class Selection:
    """What one ``hfm select`` round wrote.

    Attributes:
        round: The round's number (0: the cold start).
        ids: Chosen example ids, in choice order.
        scores: The strategy's score of each.
        files: The files written (to_label.csv, contact sheet, query log).
        notes: One-line remarks for the person (e.g. labels of images that were never queried).
    """

    round: int
    ids: list[str]
    scores: list[float]
    files: list[Path]
    notes: list[str]


# ---- labels CSV ---------------------------------------------------------------------------------------------
def read_labels(path: str | Path, splits: Splits) -> dict[int, int]:
    """Read a labels CSV (``id,label``; the label is a class name or index) as train position -> class index.

    Raises:
        DataError: One line naming the file and row: unreadable file, missing columns, an id that is not a
            training image of this source (or one held out with val/test), an unknown class, conflicting labels.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
            fields = rows[0].keys() if rows else []
    except OSError as err:
        raise DataError(f"{path}: cannot read labels ({err.strerror or err})") from None
    if not rows or "id" not in fields or "label" not in fields:
        raise DataError(f"{path}: expected a CSV with columns id,label and at least one row")
    train = splits.train
    position = {example_id: i for i, example_id in enumerate(train.ids)}
    held = splits.heldout_groups() if train.groups is not None else None
    allowed = eligible(train, held)
    names = {name: i for i, name in enumerate(splits.classes)}
    out: dict[int, int] = {}
    for line, row in enumerate(rows, start=2):
        example_id, raw = (row.get("id") or "").strip(), (row.get("label") or "").strip()
        if example_id not in position:
            raise DataError(
                f"{path}, line {line}: id {example_id!r} is not a training image of this source; "
                "use ids from to_label.csv"
            )
        pos = position[example_id]
        if not allowed[pos]:
            raise DataError(f"{path}, line {line}: id {example_id!r} shares its group with val/test; drop it")
        if raw in names:
            label = names[raw]
        elif raw.isdigit() and int(raw) < len(splits.classes):
            label = int(raw)
        else:
            raise DataError(
                f"{path}, line {line}: unknown class {raw!r}; use one of {', '.join(splits.classes)}"
            )
        if out.get(pos, label) != label:
            raise DataError(f"{path}, line {line}: id {example_id!r} is labelled twice, differently")
        out[pos] = label
    return out


# ---- query log ------------------------------------------------------------------------------------------------
def read_log(folder: str | Path) -> list[dict[str, Any]]:
    """The rounds logged in ``folder/query_log.json`` (empty when there is none)."""
    path = Path(folder) / QUERY_LOG
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["rounds"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a readable query log ({err}); remove it to start over") from None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def log_summary(rounds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The query log without ids and scores: round, strategy, seed, backbone and how many were chosen."""
    keys = ("round", "strategy", "seed", "backbone")
    return [{**{k: r.get(k) for k in keys}, "n": len(r.get("ids", []))} for r in rounds]


def query_rounds(log: list[dict[str, Any]], splits: Splits, labels: dict[int, int]) -> list[QueryRound]:
    """The logged rounds as :class:`QueryRound` over train positions, restricted to labelled examples, plus one
    round ``"given"`` for labels no round asked for."""
    position = {example_id: i for i, example_id in enumerate(splits.train.ids)}
    rounds: list[QueryRound] = []
    seen: set[int] = set()
    for entry in log:
        pairs = [
            (position[i], s)
            for i, s in zip(entry["ids"], entry["scores"], strict=True)
            if i in position and position[i] in labels
        ]
        seen.update(p for p, _ in pairs)
        if pairs:
            rounds.append(
                QueryRound(
                    round=int(entry["round"]),
                    strategy=str(entry["strategy"]),
                    indices=tuple(p for p, _ in pairs),
                    scores=tuple(float(s) for _, s in pairs),
                )
            )
    extra = tuple(sorted(p for p in labels if p not in seen))
    if extra:
        rounds.append(QueryRound(round=len(log), strategy="given", indices=extra))
    return rounds


# ---- a run on a labelled set ---------------------------------------------------------------------------------
def labelled_run(splits: Splits, path: str | Path, seed: int) -> tuple[Splits, Draw]:
    """The splits with the CSV's labels on its examples, and the draw whose labelled part is exactly them.

    The query log of the CSV's folder, when present, becomes the draw's rounds (what the model saw, and why).
    """
    from hfm.methods.samplers import labelled_draw

    labels = read_labels(path, splits)
    train_labels = splits.train.labels.copy()
    for pos, label in labels.items():
        train_labels[pos] = label
    relabelled = replace(splits, train=replace(splits.train, labels=train_labels))
    rounds = query_rounds(read_log(Path(path).parent), splits, labels)
    return relabelled, labelled_draw(relabelled, rounds, labels, k="all", seed=seed)


# ---- one round of selection ----------------------------------------------------------------------------------
def image_path(splits: Splits, example_id: str) -> str:
    """The file of a training image when the source reads files under a ``root`` folder; else ``""``."""
    root = (splits.source or {}).get("root")
    if root and (Path(root) / example_id).is_file():
        return str(Path(root) / example_id)
    return ""


def contact_sheet(splits: Splits, positions: list[int], path: Path, *, thumb: int = 112) -> Path:
    """A grid of the chosen images, each numbered as its row in ``to_label.csv``, written as a PNG."""
    from PIL import Image, ImageDraw

    from hfm.backbones.transforms import to_uint8_rgb

    cols = max(1, min(8, math.ceil(math.sqrt(len(positions)))))
    rows = max(1, math.ceil(len(positions) / cols))
    cell = thumb + 4
    sheet = Image.new("RGB", (cols * cell, rows * (cell + 14)), "white")
    draw = ImageDraw.Draw(sheet)
    for n, pos in enumerate(positions):
        image = Image.fromarray(to_uint8_rgb(splits.train.image(pos)))
        image.thumbnail((thumb, thumb))
        x, y = (n % cols) * cell + 2, (n // cols) * (cell + 14) + 2
        sheet.paste(image, (x, y))
        draw.text((x, y + thumb + 1), f"{n + 1}: {splits.train.ids[pos][-14:]}", fill="black")
    sheet.save(path)
    return path


def _next_round(log: list[dict[str, Any]], labelled_ids: set[str]) -> int:
    """The number of the round to run: one after the last logged round that any given label answers."""
    answered = [int(r["round"]) for r in log if labelled_ids & set(r["ids"])]
    return max(answered) + 1 if answered else 0


def select(
    splits: Splits,
    train_embeddings: np.ndarray,
    *,
    budget: int,
    out: str | Path,
    strategy: str = "typiclust",
    labelled: str | Path | None = None,
    seed: int = 0,
    backbone: str = "",
) -> Selection:
    """Choose ``budget`` training images to label next and write ``to_label.csv``, the contact sheet and the log.

    Args:
        splits: The data (its train labels are never read).
        train_embeddings: ``[N_train, D]`` embeddings of the train split.
        budget: How many images to choose.
        out: The selection folder (created; the query log accumulates there).
        strategy: A sampler of :mod:`hfm.methods.samplers` that does not read the truth.
        labelled: Labels CSV of the images labelled so far (``id,label``).
        seed: Seed of the strategy.
        backbone: The backbone's name, recorded in the log.

    Raises:
        DataError: Bad labels CSV or a budget larger than the unlabelled pool (one line each).
        MethodError: Unknown strategy, one that reads the true labels, or one that needs labels given none.
    """
    from hfm.methods.samplers import get_sampler, query_round

    if get_sampler(strategy).reads_truth:
        raise MethodError(f"strategy {strategy!r} reads the true labels; it exists for simulations only")
    if budget < 1:
        raise DataError(f"budget must be at least 1, got {budget}")
    out = Path(out)
    log = read_log(out)
    known = read_labels(labelled, splits) if labelled else {}
    train = splits.train
    labelled_ids = {train.ids[p] for p in known}
    round_no = _next_round(log, labelled_ids)
    notes = []
    queried = {i for r in log for i in r["ids"]}
    extra = sorted(labelled_ids - queried)
    if extra:
        notes.append(
            f"{len(extra)} labelled image(s) were not chosen by hfm select (e.g. {extra[0]!r}); "
            "they are used as labels all the same"
        )
    held = splits.heldout_groups() if train.groups is not None else None
    query = query_round(
        strategy, train_embeddings, eligible(train, held), known, budget,
        n_classes=splits.num_classes, seed=seed, round_no=round_no,
    )  # fmt: skip
    positions = list(query.indices)
    ids = [train.ids[p] for p in positions]
    out.mkdir(parents=True, exist_ok=True)
    lines = ["id,path,score,round"]
    lines += [
        f"{_csv(i)},{_csv(image_path(splits, i))},{s:.6g},{round_no}"
        for i, s in zip(ids, query.scores, strict=True)
    ]
    _write_atomic(out / TO_LABEL, "\n".join(lines) + "\n")
    contact_sheet(splits, positions, out / CONTACT_SHEET)
    entry = {
        "round": round_no,
        "strategy": strategy,
        "seed": seed,
        "backbone": backbone,
        "data_fingerprint": splits.fingerprint,
        "labelled_before": len(known),
        "ids": ids,
        "scores": list(query.scores),
    }
    log = [r for r in log if int(r["round"]) != round_no] + [entry]
    log.sort(key=lambda r: int(r["round"]))
    _write_atomic(out / QUERY_LOG, json.dumps({"rounds": log}, indent=1))
    return Selection(
        round=round_no,
        ids=ids,
        scores=list(query.scores),
        files=[out / TO_LABEL, out / CONTACT_SHEET, out / QUERY_LOG],
        notes=notes,
    )


def _csv(text: str) -> str:
    """One CSV field (quoted when it holds a comma or a quote)."""
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if ("," in text or '"' in text) else text


def select_from_recipe(
    recipe: str | Path,
    *,
    budget: int,
    out: str | Path,
    backbone: str | None = None,
    strategy: str = "typiclust",
    labelled: str | Path | None = None,
    seed: int = 0,
    twin: bool = False,
    progress: bool = True,
) -> Selection:
    """``hfm select``: load the recipe's data and backbone (or ``backbone``), embed the train split (cached on
    disk by :mod:`hfm.embeddings`) and run :func:`select`."""
    from hfm import recipes
    from hfm.backbones import load_backbone
    from hfm.data import load_data
    from hfm.embeddings import extract

    loaded = recipes.load(Path(recipe))
    if labelled is not None and not Path(labelled).is_file():
        raise DataError(f"{labelled}: labels file not found; pass the CSV you filled in (id,label)")
    splits = load_data(loaded.data)
    if budget > len(splits.train):
        raise DataError(f"budget {budget} is larger than the {len(splits.train)} training images; lower it")
    block = loaded.backbone
    name = backbone or block.name
    model = load_backbone(name, twin=twin or block.twin, policy=block.policy)
    embeddings = extract(
        model, splits.train, batch_size=loaded.embeddings.batch_size, num_workers=loaded.embeddings.num_workers,
        split="train", progress=progress,
    )  # fmt: skip
    return select(
        splits, embeddings.numpy(), budget=budget, out=out, strategy=strategy, labelled=labelled, seed=seed,
        backbone=name,
    )  # fmt: skip


__all__ = [
    "Selection",
    "contact_sheet",
    "labelled_run",
    "log_summary",
    "read_labels",
    "read_log",
    "select",
    "select_from_recipe",
]
