"""Sort a user's backbone name into a catalog entry, an ad-hoc Hub id or a local folder (no torch import)."""

from __future__ import annotations

from hfm.backbones.catalog import UnknownBackboneError, find_spec, get_spec, modalities
from hfm.backbones.spec import BackboneSpec
from hfm.errors import BackboneNotFoundError

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"


def resolve_name(name_or_id: str) -> tuple[BackboneSpec | None, str, str | None]:
    """Sort a user's name into ``(catalog spec or None, repo id or folder, forced family or None)``.

    Raises:
        BackboneNotFoundError: An unknown or ambiguous catalog name (the message lists close matches).
    """
    name = name_or_id.strip()
    if name.startswith(LOCAL_DIR_PREFIX):
        return None, name[len(LOCAL_DIR_PREFIX) :], None
    try:
        if name.startswith(HF_HUB_PREFIX):
            repo = name[len(HF_HUB_PREFIX) :]
            return find_spec(repo), repo, "timm"
        spec = find_spec(name)
        if spec is not None:
            return spec, spec.hub_id, None
        head = name.split("/", 1)[0]
        if "/" in name and head not in modalities() and name.count("/") == 1:
            return None, name, None  # an ad-hoc Hub repo (transformers unless its files say otherwise)
        get_spec(name)  # raises with close matches
    except UnknownBackboneError as err:
        raise BackboneNotFoundError(str(err)) from None
    raise BackboneNotFoundError(f"unknown backbone {name!r}")  # pragma: no cover - get_spec raised
