"""The images pretraining reads: the train split of one or more data sources, never val or test.

Several sources (sites, scanners, public sets) are concatenated; the labels of the first source feed only the
monitor (a k-NN score on its train split), never the objective.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from hfm.data.splits import Subset, concat


@dataclass
class TrainImages:
    """The pretraining images.

    Attributes:
        images: Every train image of every source (labels: the source's own, unused by the objective).
        labelled: The first source's train split, for the monitor.
        fingerprint: Hash of every source's train fingerprint, in order.
        counts: Train images per source.
        split_info: How each source's splits were made.
    """

    images: Subset
    labelled: Subset
    fingerprint: str
    counts: list[int]
    split_info: list[dict[str, Any]]


def load_train(sources: list[dict[str, Any]]) -> TrainImages:
    """Load each source and keep its train split only: no val or test file is ever opened.

    Loading opens no file (:func:`hfm.data.images.train_split_only`); the train images are then decoded once
    here, so an unreadable train file stops the run before training with its name.
    """
    from hfm.data import load_data
    from hfm.data.images import train_split_only

    with train_split_only():
        loaded = [load_data(source) for source in sources]
    trains = [splits.train for splits in loaded]
    for subset in trains:
        for i in range(len(subset)):
            subset.image(i)
    infos = [dict(splits.split_info) for splits in loaded]
    if len(trains) == 1:
        images = trains[0]
    else:
        images = concat(trains, ids=[f"{i}:{x}" for i, subset in enumerate(trains) for x in subset.ids])
    digest = hashlib.sha256("\n".join(subset.fingerprint() for subset in trains).encode()).hexdigest()
    return TrainImages(
        images=images,
        labelled=trains[0],
        fingerprint=digest,
        counts=[len(subset) for subset in trains],
        split_info=infos,
    )
