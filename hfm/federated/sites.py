"""Sites of a federation: each holds its own train / val / test splits and never shares them.

A federation is given as one data source per site (each hospital's own archive), as one source partitioned by
a column (one site per hospital or scanner, :func:`by_column`; a site may also keep only the rows of one value,
:func:`restrict`), or as one source split into simulated sites. A simulated split assigns every example of every split (train, val and test alike) to one
site, so each site's test split follows its own label mix:

* ``iid``: every example goes to a uniformly drawn site (sites differ by chance alone);
* ``dirichlet``: for each class, the share each site gets is drawn from ``Dirichlet(alpha)`` (the usual
  label-skew benchmark of federated learning; small ``alpha`` gives sites dominated by a few classes).

Randomness comes from hfm's hashed PCG64 generators (:func:`hfm.data.partition.rng_for`), never from global
state, so a split is the same on every machine. hfm writes its own few lines here because the partitioners of
``flwr-datasets`` work on Hugging Face ``datasets`` only, not on hfm's splits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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


def column_values(block: dict[str, Any], column: str, where: str) -> dict[str, str]:
    """The value of ``column`` (hospital, scanner) for every example id of a data source.

    hfm's sources name one per-example column, the group (``group_key`` of an npz source: arrays
    ``{split}_<key>``; ``group_column`` of csv, dicom and hf sources), and it drives the leakage-safe split.
    The site column must not replace it, so the source is read a second time with the group field pointing at
    ``column``; only the ids and that column are kept from the second read (the splits, groups and images come
    from the first). A folder or csv source decodes its files once more for this.

    Raises:
        DataError: The source has no columns, or no column ``column``.
    """
    from hfm.data.registry import parse_source

    config = parse_source(block)
    field = next((f for f in ("group_key", "group_column") if f in type(config).model_fields), None)
    if field is None:
        raise DataError(
            f"{where}: a {config.type!r} source has no column to partition by {column!r}; "
            "use an npz (arrays {split}_" + column + "), csv, dicom (csv) or hf source"
        )
    try:
        raw = config.model_copy(update={field: column}).load()
    except DataError as err:
        raise DataError(f"{where}: cannot read the site column {column!r}: {err}") from None
    return {
        i: str(value)
        for part in raw.parts.values()
        for i, value in zip(part.ids, part.groups or [], strict=True)
    }


def restrict(splits: Splits, keep: Callable[[str], bool], info: dict[str, Any]) -> Splits:
    """The examples whose id ``keep`` accepts, in every split (``info`` is added to ``split_info``)."""
    parts = {}
    for name in SPLITS:
        subset: Subset = getattr(splits, name)
        parts[name] = subset.take([i for i, x in enumerate(subset.ids) if keep(x)])
    return Splits(
        **parts,
        classes=list(splits.classes),
        source=dict(splits.source),
        split_info={**splits.split_info, **info},
    )


def _value_of(values: dict[str, str], where: str) -> Callable[[str], str]:
    def lookup(example: str) -> str:
        if example not in values:
            raise DataError(
                f"{where}: example {example!r} has no site value (the source changed between reads)"
            )
        return values[example]

    return lookup


def _equals(value: Callable[[str], str], wanted: str) -> Callable[[str], bool]:
    return lambda example: value(example) == wanted


def where_site(splits: Splits, block: dict[str, Any], where: dict[str, str], name: str) -> Splits:
    """One site of a shared source: the rows whose columns have the given values (``{hospital: A}``).

    Raises:
        DataError: An unknown column, or a value no training image has.
    """
    for column, wanted in where.items():
        value = _value_of(column_values(block, column, f"site {name!r}"), f"site {name!r}")
        present = sorted({value(x) for s in SPLITS for x in getattr(splits, s).ids})
        if wanted not in present:
            raise DataError(
                f"site {name!r}: no image has {column} == {wanted!r} (values: {', '.join(present[:12])})"
            )
        splits = restrict(splits, _equals(value, wanted), {"site": name, "where": dict(where)})
    if len(splits.train) == 0:
        raise DataError(f"site {name!r}: no training image matches {where}; pick another value")
    return splits


def by_column(
    splits: Splits, block: dict[str, Any], column: str, values: list[str] | None = None
) -> list[Site]:
    """One site per value of ``column`` (every split partitioned alike), sites in value order.

    Args:
        splits: The whole dataset (its splits already made, group-aware).
        block: The data block it was read from (to read the column).
        column: The site column: an npz array ``{split}_<column>``, or a csv / hf column.
        values: The values to make sites of, in this order (default: every value present, sorted).

    Raises:
        DataError: An unknown column, a listed value no image has, or a site without training images.
    """
    where = f"partition by {column!r}"
    value = _value_of(column_values(block, column, where), where)
    present = sorted({value(x) for s in SPLITS for x in getattr(splits, s).ids})
    for wanted in values or []:
        if wanted not in present:
            raise DataError(
                f"{where}: no image has {column} == {wanted!r} (values: {', '.join(present[:12])})"
            )
    sites = []
    for v in values or present:
        site = restrict(splits, _equals(value, v), {"site": v, "partition_by": column})
        if len(site.train) == 0:
            raise DataError(
                f"{where}: {column} == {v!r} has no training image; list the other values in partition.values"
            )
        sites.append(Site(name=re.sub(r"[^\w.\-]+", "_", v) or "_", splits=site))
    if len(sites) < 2:
        raise DataError(f"{where}: a federation needs at least 2 sites, the column has {len(sites)} value(s)")
    names = [s.name for s in sites]
    if len(set(names)) != len(names):
        raise DataError(f"{where}: values {present} give clashing site names {names}")
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
