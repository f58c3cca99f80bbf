"""Publish a pretrained backbone folder (what ``hfm pretrain`` writes) to the Hub as a model, in one commit.

The folder already is the model repository: the library's own files (timm ``config.json`` +
``model.safetensors``, or transformers ``save_pretrained``), ``hfm_spec.json``, ``hfm_pretrain.json``, the card
``README.md`` and its monitor plot. They are staged, scanned like any push (local paths redacted, images other
than the plot refused, the token never uploaded) and sent as a single commit, so
``hfm.load_backbone("hf-hub:ORG/NAME")`` (timm) or ``hfm.load_backbone("ORG/NAME")`` loads it back.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from hfm.errors import HubError

PRETRAIN_FILES = ("hfm_spec.json", "hfm_pretrain.json")
PLOT = "pretrain_monitor.png"


def is_pretrained_backbone(folder: Path) -> bool:
    """Whether ``folder`` is a backbone folder written by ``hfm pretrain``."""
    return all((folder / name).is_file() for name in PRETRAIN_FILES)


def push_backbone(
    folder: Path,
    repo_id: str,
    *,
    public: bool,
    revision: str | None,
    dry_run: bool,
    license_ack: bool,
    message: str | None,
    attempts: int,
    backoff: float,
) -> object:
    """Stage, scan and send the backbone folder; returns a :class:`hfm.hub.push.PushResult`."""
    from hfm.hub import _net
    from hfm.hub.licenses import policy_for
    from hfm.hub.push import scan_and_send

    spec = json.loads((folder / "hfm_spec.json").read_text(encoding="utf-8"))
    policy = policy_for(spec.get("license"), gated=bool(spec.get("gated")))
    if policy.needs_ack and not license_ack:
        raise HubError(policy.refusal(str(spec.get("hub_id", "?"))))
    facts = json.loads((folder / "hfm_pretrain.json").read_text(encoding="utf-8"))
    name = facts.get("recipe", {}).get("name", folder.name)
    with tempfile.TemporaryDirectory(prefix="hfm-push-") as tmp:
        stage = Path(tmp)
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            shutil.copyfile(path, stage / path.name)
        return scan_and_send(
            stage,
            plot_names=(PLOT,),
            repo_id=repo_id,
            revision=revision or "main",
            public=public,
            message=message or f"hfm pretrain: {name}",
            token=_net.token(),
            dry_run=dry_run,
            attempts=attempts,
            backoff=backoff,
        )
