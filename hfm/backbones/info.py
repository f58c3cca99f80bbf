"""What the ``hfm backbones`` commands show: one summary per spec, a plain-text table, and downloads."""

from __future__ import annotations

from typing import Any

from hfm.backbones.spec import BackboneSpec
from hfm.hub.download import Snapshot
from hfm.policy import LoadPolicy

TABLE_COLUMNS = ("name", "modality", "architecture", "params_m", "embed_dim", "license", "gated")
_HEADERS = {"params_m": "params (M)", "embed_dim": "embedding"}


def spec_summary(spec: BackboneSpec) -> dict[str, Any]:
    """The short record ``hfm backbones list --json`` prints for one entry."""
    return {
        "name": spec.name,
        "hub_id": spec.hub_id,
        "loader": spec.loader,
        "architecture": spec.architecture,
        "modality": spec.modality,
        "params_m": spec.params_m,
        "embed_dim": spec.embed_dim,
        "input_size": spec.input_size,
        "pooling": spec.pooling,
        "license": spec.license,
        "gated": spec.gated,
        "trust_remote_code": spec.trust_remote_code,
    }


def format_table(rows: list[dict[str, Any]], columns: tuple[str, ...] = TABLE_COLUMNS) -> str:
    """A left-aligned plain-text table (``yes``/``no`` for booleans, ``-`` for missing values)."""

    def cell(value: Any) -> str:
        if isinstance(value, bool):
            return "yes" if value else "no"
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:g}"
        return str(value)

    header = [_HEADERS.get(c, c) for c in columns]
    body = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in body]
    return "\n".join(lines)


def format_spec(spec: BackboneSpec) -> str:
    """Every field of a spec, one ``key: value`` line each, then where each fact comes from."""
    data = spec.to_dict()
    provenance = data.pop("provenance")
    width = max(len(k) for k in data)
    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            text = ", ".join(f"{k}={v!r}" for k, v in value.items()) or "-"
        elif isinstance(value, list):
            text = ", ".join(str(v) for v in value) or "-"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        else:
            text = "-" if value in (None, "") else str(value)
        lines.append(f"{key.ljust(width)}  {text}")
    lines.append("")
    lines.append("where the facts come from:")
    for key, text in provenance.items():
        lines.append(f"  {key.ljust(width)}  {text}")
    lines.append(f"  {'other facts'.ljust(width)}  {spec.source or '-'}")
    return "\n".join(lines)


def download_backbone(
    name_or_id: str,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    policy: LoadPolicy | None = None,
) -> Snapshot:
    """Fetch a backbone's configs and safetensors weights into the Hugging Face cache.

    For preparing an offline or air-gapped machine: copy the cache (``HF_HUB_CACHE``) afterwards and load
    with ``HF_HUB_OFFLINE=1``. Repository code (``*.py``) is fetched only with ``trust_remote_code``; pickled
    weights (``pytorch_model.bin`` ...) only with ``allow_pickle`` and when the revision has no safetensors.
    The three may come as one :class:`~hfm.policy.LoadPolicy` instead.
    """
    from hfm.backbones.names import LOCAL_DIR_PREFIX, resolve_name
    from hfm.errors import BackboneNotFoundError
    from hfm.hub.download import resolve_snapshot

    chosen = LoadPolicy.from_keywords(
        policy, revision=revision, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle
    )
    if name_or_id.startswith(LOCAL_DIR_PREFIX):
        raise BackboneNotFoundError(f"{name_or_id!r} is a local folder: there is nothing to download")
    spec, repo, _ = resolve_name(name_or_id)
    return resolve_snapshot(
        repo, policy=chosen.pinned(spec.revision if spec else None), name=spec.name if spec else name_or_id
    )
