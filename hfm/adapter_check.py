"""Check an adapter folder's weight files before they are loaded or published.

A truncated or foreign ``.safetensors`` file fails deep inside safetensors or torch with a message that names
neither the file nor the fix; these checks name both, in one line. :func:`verify_for_publishing` is what
``hfm push`` runs: the file checks, then a full load through :func:`hfm.load_adapter` whenever the backbone can
be loaded here, so a folder ``hfm predict`` would reject is never published.
"""

from __future__ import annotations

from pathlib import Path

from hfm._fs import corrupt_weight_file
from hfm.errors import BackboneError, TunerError


def check_weight_files(folder: Path) -> None:
    """Every ``.safetensors`` file in ``folder`` has an intact header covering the whole file, and there is one.

    Raises:
        TunerError: Naming the missing, truncated or corrupt file and how to fix it.
    """
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise TunerError(
            f"adapter folder {folder} has no weights (*.safetensors): it is incomplete; save it again"
        )
    broken = corrupt_weight_file(folder)
    if broken is not None:
        raise TunerError(
            f"adapter weights {broken} are truncated or corrupt: save or download the adapter again"
        )


def verify_for_publishing(folder: Path) -> bool:
    """Check that ``folder`` loads as an adapter; return whether the full load (with the backbone) ran.

    The backbone is rebuilt from the cache only (offline); when it is not available the file checks alone
    are made and ``False`` is returned.

    Raises:
        TunerError: The adapter is incomplete, damaged or does not fit its recorded backbone.
    """
    from hfm.adapter import load_adapter

    check_weight_files(folder)
    try:
        load_adapter(folder)
    except BackboneError:
        return False
    return True
