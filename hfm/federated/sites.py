"""Sites of a federation: each holds its own train / val / test splits and never shares them.

A federation is given either as one data source per site (each hospital's own archive) or as one source split
into simulated sites. A simulated split assigns every example of every split (train, val and test alike) to one
site, so each site's test split follows its own label mix:

* ``iid``: every example goes to a uniformly drawn site (sites differ by chance alone);
* ``dirichlet``: for each class, the share each site gets is drawn from ``Dirichlet(alpha)`` (the usual
  label-skew benchmark of federated learning; small ``alpha`` gives sites dominated by a few classes).

Randomness comes from hfm's hashed PCG64 generators (:func:`hfm.data.partition.rng_for`), never from global
state, so a split is the same on every machine. hfm writes its own few lines here because the partitioners of
``flwr-datasets`` work on Hugging Face ``datasets`` only, not on hfm's splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hfm.data.partition import rng_for
from hfm.data.splits import Splits, Subset
from hfm.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass
class Site:
    """One participant: a name and the splits it keeps to itself."""

    name: str
    splits: Splits

    def counts(self) -> dict[str, int]:
        """Examples per split (what a card may state about a site without naming it)."""
        return {name: len(getattr(self.splits, name)) for name in SPLITS}


def _assign(
    labels: np.ndarray, n_sites: int, shares: np.ndarray | None, rng: np.random.Generator
) -> np.ndarray:
    """Site index per example: uniformly at random, or by per-class site shares ``[C, n_sites]``."""
    if shares is None:
        return rng.integers(0, n_sites, size=len(labels))
    out = np.empty(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        order = where[rng.permutation(len(where))]
        cuts = (np.cumsum(shares[label])[:-1] * len(order)).round().astype(np.int64)
        for site, part in enumerate(np.split(order, cuts)):
            out[part] = site
    return out


def simulate(
    splits: Splits,
    n_sites: int,
    scheme: Literal["iid", "dirichlet"] = "iid",
    *,
    alpha: float = 0.5,
    seed: int = 0,
) -> list[Site]:
    """Split one dataset into ``n_sites`` simulated sites (see the module docstring).

    Args:
        splits: The whole dataset.
        n_sites: Number of sites (at least 2).
        scheme: ``iid`` or ``dirichlet`` (label skew).
        alpha: Concentration of the Dirichlet shares; smaller is more skewed.
        seed: Partition seed (independent of the episode seeds).

    Raises:
        DataError: A site would receive no training example.
    """
    if n_sites < 2:
        raise DataError(f"a federation needs at least 2 sites, got {n_sites}")
    shares = None
    if scheme == "dirichlet":
        drng = rng_for("federated-shares", splits.fingerprint, seed)
        shares = drng.dirichlet(np.full(n_sites, float(alpha)), size=splits.num_classes)
    parts: dict[str, list[Subset]] = {}
    for name in SPLITS:
        subset: Subset = getattr(splits, name)
        site_of = _assign(
            subset.labels, n_sites, shares, rng_for("federated-sites", splits.fingerprint, seed, name)
        )
        parts[name] = [subset.take(np.flatnonzero(site_of == s).tolist()) for s in range(n_sites)]
    sites = []
    for s in range(n_sites):
        if len(parts["train"][s]) == 0:
            raise DataError(
                f"simulated site {s + 1} of {n_sites} received no training example; "
                "use fewer sites, a larger alpha or another partition seed"
            )
        info = {
            **splits.split_info,
            "site": s + 1,
            "sites": n_sites,
            "scheme": scheme,
            "partition_seed": seed,
        }
        if scheme == "dirichlet":
            info["alpha"] = alpha
        site_splits = Splits(
            train=parts["train"][s],
            val=parts["val"][s],
            test=parts["test"][s],
            classes=list(splits.classes),
            source=dict(splits.source),
            split_info=info,
        )
        sites.append(Site(name=f"site-{s + 1}", splits=site_splits))
    return sites


def pooled_test(sites: list[Site]) -> tuple[list[str], np.ndarray, list[int]]:
    """The union of the sites' test splits: ids (prefixed by site), labels and the site index of each example."""
    ids: list[str] = []
    labels: list[np.ndarray] = []
    owner: list[int] = []
    for i, site in enumerate(sites):
        ids += [f"{site.name}/{x}" for x in site.splits.test.ids]
        labels.append(site.splits.test.labels)
        owner += [i] * len(site.splits.test)
    return ids, np.concatenate(labels) if labels else np.zeros(0, np.int64), owner
