"""Small file-system helpers shared by everything that writes folders users rely on, and the file names an
adapter folder is recognised by (the tuners write it, the hub publishes and pulls it)."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

CONFIG_NAME = "hfm_config.json"
"""The hfm config of an adapter folder: tuner, parameters, backbone and preprocessing."""


def move_into_place(tmp: Path, final: Path) -> None:
    """Rename a completed temporary folder to ``final``, replacing any older folder there.

    The older folder is first renamed aside and removed only after the new one is in place, so a crash leaves
    either the old or the new complete folder (plus, at worst, a hidden ``.NAME.old-*`` leftover), never a
    half-written one.
    """
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final)
