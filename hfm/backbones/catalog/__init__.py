"""The backbone catalog: real health foundation models with their exact loading facts.

Entries live in one module per modality (``pathology.py``, ``radiology.py`` ...), each exporting ``SPECS``.
Every entry cites the model card or code its facts come from.
"""

from __future__ import annotations

import difflib

from hfm.backbones.catalog import general, multimodal, ophthalmology, pathology, radiology
from hfm.backbones.spec import BackboneSpec

_MODULES = (pathology, radiology, ophthalmology, multimodal, general)


class UnknownBackboneError(KeyError):
    """Raised for a name that is neither in the catalog nor a Hub id / local folder."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown backbone"


def _build() -> dict[str, BackboneSpec]:
    catalog: dict[str, BackboneSpec] = {}
    for module in _MODULES:
        for spec in module.SPECS:
            if spec.name in catalog:
                raise RuntimeError(f"duplicate catalog entry {spec.name!r}")
            catalog[spec.name] = spec
    return catalog


CATALOG: dict[str, BackboneSpec] = _build()


def list_specs(modality: str | None = None) -> list[BackboneSpec]:
    """Catalog entries, sorted by name, optionally for one modality."""
    specs = sorted(CATALOG.values(), key=lambda s: s.name)
    if modality is not None:
        specs = [s for s in specs if s.modality == modality]
    return specs


def modalities() -> list[str]:
    """The modalities the catalog covers."""
    return sorted({s.modality for s in CATALOG.values()})


def find_spec(name: str) -> BackboneSpec | None:
    """The entry for a catalog name, a short name (``uni``) when unambiguous, or its Hub id; else ``None``.

    Raises:
        UnknownBackboneError: When a short name matches more than one entry (the error lists them).
    """
    if name in CATALOG:
        return CATALOG[name]
    short = [s for s in CATALOG.values() if s.name.split("/", 1)[-1] == name]
    if len(short) == 1:
        return short[0]
    if len(short) > 1:
        options = ", ".join(s.name for s in short)
        raise UnknownBackboneError(f"backbone name {name!r} is ambiguous: use one of {options}")
    by_hub = [s for s in CATALOG.values() if s.hub_id.lower() == name.lower()]
    if len(by_hub) == 1:
        return by_hub[0]
    return None


def get_spec(name: str) -> BackboneSpec:
    """The catalog entry for ``name``; an unknown name raises with the closest matches."""
    spec = find_spec(name)
    if spec is not None:
        return spec
    candidates = list(CATALOG) + [n.split("/", 1)[-1] for n in CATALOG]
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownBackboneError(
        f"unknown backbone {name!r}.{hint} See `hfm backbones list`, or pass a Hub id "
        "('hf-hub:org/name' for timm, 'org/name' for transformers) or 'local-dir:/path'."
    )
