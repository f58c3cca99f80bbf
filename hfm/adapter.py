"""Load an adapter folder (or Hub repo) back into a model that predicts exactly as the saved one did.

The folder's ``hfm_config.json`` names the tuner, its parameters, the classes and the backbone spec with the
commit that was used; the backbone is rebuilt from those through :func:`hfm.load_backbone` (a twin when the
adapter was trained on one) and the tuner's weights are applied on top.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hfm.adapter_check import check_weight_files
from hfm.errors import TunerError
from hfm.policy import LoadPolicy
from hfm.tuners import get_tuner
from hfm.tuners.base import CONFIG_NAME, FORMAT_VERSION

if TYPE_CHECKING:
    from hfm.backbones.base import Backbone
    from hfm.tuners.base import AdaptedModel


def read_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``hfm_config.json`` of an adapter folder, checked for the keys loading needs."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise TunerError(
            f"{folder} is not an hfm adapter folder (no {CONFIG_NAME}): pass the folder save() wrote"
        )
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise TunerError(
            f"{path} is not valid JSON ({err.msg} at line {err.lineno}): save the adapter again"
        ) from None
    missing = [
        k for k in ("format_version", "tuner", "tuner_params", "classes", "backbone") if k not in config
    ]
    if missing:
        raise TunerError(
            f"{path} lacks {', '.join(missing)}: it was not written by hfm; save the adapter again"
        )
    if int(config["format_version"]) > FORMAT_VERSION:
        raise TunerError(
            f"{path} has adapter format {config['format_version']}, newer than this hfm reads "
            f"({FORMAT_VERSION}): upgrade hfm-hub"
        )
    return config


def _rebuild_backbone(config: dict[str, Any], device: Any, dtype: Any, policy: LoadPolicy) -> Backbone:
    """The recorded backbone at its recorded commit, with the opt-ins the caller gave (never the adapter)."""
    from hfm.backbones import load_backbone

    info = config["backbone"]
    spec = info.get("spec") or {}
    name = spec.get("name") or spec.get("hub_id")
    if not name:
        raise TunerError("the adapter's hfm_config.json records no backbone name: save the adapter again")
    return load_backbone(
        name,
        twin=bool(info.get("twin", False)),
        policy=policy.pinned(info.get("resolved_revision") or spec.get("revision")),
        device=device,
        dtype=dtype,
    )


def load_adapter(
    folder_or_repo_id: str | os.PathLike[str],
    *,
    revision: str | None = None,
    backbone: Backbone | None = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
    device: Any = None,
    dtype: Any = None,
) -> AdaptedModel:
    """Rebuild a saved adapted model, in eval mode.

    Args:
        folder_or_repo_id: A local adapter folder, else a Hub repo id (downloaded by ``hfm.hub``).
        revision: Hub revision of the adapter repo (ignored for local folders).
        backbone: Use this backbone instead of loading the recorded one (it must be the same model; the
            adapter takes ownership of it, e.g. peft wraps it).
        trust_remote_code: Allow the backbone's Hub code to run (never taken from the adapter itself).
        allow_pickle: Allow the backbone's pickled weights, read with ``torch.load(weights_only=True)``
            (never taken from the adapter itself either).
        device: Device for the backbone and weights.
        dtype: Backbone dtype passed to :func:`hfm.load_backbone`.

    Returns:
        The adapted model, with ``classes`` set from the config and ``adapter_config`` holding the config.
    """
    folder = Path(folder_or_repo_id)
    if (
        folder.is_dir()
        and not (folder / CONFIG_NAME).is_file()
        and (folder / "adapter" / CONFIG_NAME).is_file()
    ):
        folder = folder / "adapter"  # a run folder, as `hfm push` and `hfm card` accept it
    if not folder.is_dir() and folder.parent != Path(".") and folder.parent.is_dir():
        raise TunerError(
            f"{folder_or_repo_id}: no such adapter folder (its parent {folder.parent} exists here); check the path"
        )
    if not folder.is_dir():
        from hfm.hub.pull import download_adapter

        folder = Path(download_adapter(str(folder_or_repo_id), revision=revision))
    config = read_config(folder)
    check_weight_files(folder)
    if backbone is None:
        policy = LoadPolicy(trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        backbone = _rebuild_backbone(config, device, dtype, policy)
    elif device is not None:
        backbone.to(device)
    classes = [str(c) for c in config["classes"]]
    tuner = get_tuner(config["tuner"])
    model = tuner(backbone, len(classes), **config["tuner_params"])
    model.to(backbone.device)
    model.classes = classes
    model.load_weights(folder)
    model.eval()
    model.adapter_config = config  # type: ignore[assignment]
    return model
