"""Stratified, group-aware splitting from a seed, for sources that lack a val or test split.

Whole groups (patients, slides) go to one split, so none straddles train and test; groups are
stratified by their majority label. Randomness comes from a ``numpy`` PCG64 generator seeded from a
hash of the inputs, never from global state, so the split is the same on every machine.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from any printable parts (stable across machines and Python versions)."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def rng_for(*parts: object) -> np.random.Generator:
    """A private PCG64 generator for these parts."""
    return np.random.Generator(np.random.PCG64(derive_seed(*parts)))


def carve(
    labels: np.ndarray,
    groups: Sequence[str] | None,
    fractions: dict[str, float],
    seed: int,
) -> dict[str, np.ndarray]:
    """Split positions ``0..N-1`` into ``train`` plus the named splits in ``fractions`` (e.g. val, test).

    Args:
        labels: Integer label per example.
        groups: Group per example, or ``None`` (each example its own group: exact stratification).
        fractions: Fraction of examples per carved split, in carving order, e.g. ``{"test": .2, "val": .15}``.
        seed: Split seed (recorded in ``Splits.split_info``).

    Returns:
        Sorted position arrays for ``train`` and each carved split.
    """
    labels = np.asarray(labels, dtype=np.int64)
    keys = [str(g) for g in groups] if groups is not None else [f"#{i}" for i in range(len(labels))]
    members: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        members[key].append(i)
    strata: dict[int, list[str]] = defaultdict(list)
    for key in sorted(members):
        counts = Counter(labels[members[key]].tolist())
        majority = min(counts, key=lambda label: (-counts[label], label))
        strata[majority].append(key)

    names = [name for name, frac in fractions.items() if frac > 0]
    out: dict[str, list[int]] = {"train": [], **{name: [] for name in fractions}}
    for label in sorted(strata):
        stratum = strata[label]
        order = [stratum[j] for j in rng_for("split", seed, label).permutation(len(stratum))]
        total = sum(len(members[key]) for key in stratum)
        # With enough groups, every carved split gets at least one, so each class is evaluated.
        floor = 1 if len(stratum) > len(names) else 0
        cursor = 0
        for name in names:
            target = max(floor, int(round(fractions[name] * total)))
            taken = 0
            while cursor < len(order) and taken < target and len(order) - cursor > (1 if floor else 0):
                size = len(members[order[cursor]])
                if taken > 0 and taken + size / 2 > target:
                    break
                out[name].extend(members[order[cursor]])
                taken += size
                cursor += 1
        for key in order[cursor:]:
            out["train"].extend(members[key])
    return {name: np.array(sorted(idx), dtype=np.int64) for name, idx in out.items()}
