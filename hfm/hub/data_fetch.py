"""Dataset downloads: MedMNIST ``.npz`` files from their official Zenodo record, and Hub datasets.

MedMNIST files are verified against the MD5 sums the MedMNIST project publishes (``medmnist/info.py``,
v3.0.2, record https://zenodo.org/records/10519652; Yang et al., Scientific Data 2023) and cached under
``$HFM_CACHE/datasets/medmnist``. Offline (``HF_HUB_OFFLINE=1`` or ``HFM_OFFLINE=1``) nothing is
fetched: a missing file fails at once with what to do.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from hfm.env import hfm_cache_dir, offline, offline_variable
from hfm.errors import HubError

_RECORD = "https://zenodo.org/records/10519652/files"

# name -> (class names, {size: md5}); single-label 2D sets only (ChestMNIST is multi-label).
# The three organ views (axial, coronal, sagittal) share one label set.
_ORGAN_CLASSES = [
    "bladder",
    "femur-left",
    "femur-right",
    "heart",
    "kidney-left",
    "kidney-right",
    "liver",
    "lung-left",
    "lung-right",
    "pancreas",
    "spleen",
]

MEDMNIST: dict[str, tuple[list[str], dict[int, str]]] = {
    "pathmnist": (
        [
            "adipose",
            "background",
            "debris",
            "lymphocytes",
            "mucus",
            "smooth muscle",
            "normal colon mucosa",
            "cancer-associated stroma",
            "colorectal adenocarcinoma epithelium",
        ],
        {
            28: "a8b06965200029087d5bd730944a56c1",
            64: "55aa9c1e0525abe5a6b9d8343a507616",
            128: "ac42d08fb904d92c244187169d1fd1d9",
            224: "2c51a510bcdc9cf8ddb2af93af1eadec",
        },
    ),
    "dermamnist": (
        [
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ],
        {
            28: "0744692d530f8e62ec473284d019b0c7",
            64: "b70a2f5635c6199aeaa28c31d7202e1f",
            128: "2defd784463fa5243564e855ed717de1",
            224: "8974907d8e169bef5f5b96bc506ae45d",
        },
    ),
    "octmnist": (
        ["choroidal neovascularization", "diabetic macular edema", "drusen", "normal"],
        {
            28: "c68d92d5b585d8d81f7112f81e2d0842",
            64: "e229e9440236b774d9f0dfef9d07bdaf",
            128: "0a97e76651ace45c5d943ee3f65b63ae",
            224: "abc493b6d529d5de7569faaef2773ba3",
        },
    ),
    "pneumoniamnist": (
        ["normal", "pneumonia"],
        {
            28: "28209eda62fecd6e6a2d98b1501bb15f",
            64: "8f4eceb4ccffa70c672198ea285246c6",
            128: "05b46931834c231683c68f40c47b2971",
            224: "d6a3c71de1b945ea11211b03746c1fe1",
        },
    ),
    "retinamnist": (
        ["0", "1", "2", "3", "4"],
        {
            28: "bd4c0672f1bba3e3a89f0e4e876791e4",
            64: "afda852cc34dcda56f86ad2b2457dbcc",
            128: "e48e916a24454daf90583d4e6efb1a18",
            224: "eae7e3b6f3fcbda4ae613ebdcbe35348",
        },
    ),
    "breastmnist": (
        ["malignant", "normal, benign"],
        {
            28: "750601b1f35ba3300ea97c75c52ff8f6",
            64: "742edef2a1fd1524b2efff4bd7ba9364",
            128: "363e4b3f8d712e9b5de15470a2aaadf1",
            224: "b56378a6eefa9fed602bb16d192d4c8b",
        },
    ),
    "bloodmnist": (
        [
            "basophil",
            "eosinophil",
            "erythroblast",
            "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)",
            "lymphocyte",
            "monocyte",
            "neutrophil",
            "platelet",
        ],
        {
            28: "7053d0359d879ad8a5505303e11de1dc",
            64: "2b94928a2ae4916078ca51e05b6b800b",
            128: "adace1e0ed228fccda1f39692059dd4c",
            224: "b718ff6835fcbdb22ba9eacccd7b2601",
        },
    ),
    "tissuemnist": (
        [
            "Collecting Duct, Connecting Tubule",
            "Distal Convoluted Tubule",
            "Glomerular endothelial cells",
            "Interstitial endothelial cells",
            "Leukocytes",
            "Podocytes",
            "Proximal Tubule Segments",
            "Thick Ascending Limb",
        ],
        {
            28: "ebe78ee8b05294063de985d821c1c34b",
            64: "123ece2eba09d0aa5d698fda57103344",
            128: "61b955355d7425a89687b06cca3ce0c2",
            224: "b077128c4a949f0a4eb01517f9037b9c",
        },
    ),
    "organamnist": (
        _ORGAN_CLASSES,
        {
            28: "68e3f8846a6bd62f0c9bf841c0d9eacc",
            64: "2dcccc29b88e6da5a01161ef20cda288",
            128: "eeae80d0a227a8d099027e1b3cfd3b60",
            224: "50747347e05c87dd3aaf92c49f9f3170",
        },
    ),
    "organcmnist": (
        _ORGAN_CLASSES,
        {
            28: "b9ceb9546e10131b32923c5bbeaea2b1",
            64: "3ce34a8724ea6f548e6db4744d03b6a9",
            128: "773c1f009daa3fe5d9a2a201b2a7ed94",
            224: "050f5e875dc056f6768abf94ec9995d1",
        },
    ),
    "organsmnist": (
        _ORGAN_CLASSES,
        {
            28: "9ab87b696fb54e2a387ebe992d6ed5f1",
            64: "53a6d115339d874c25e309a994ff46d3",
            128: "ded0c5fa01a95dc4978b956f613e9b8e",
            224: "b354719e553fbbb2513d5533f52a4cb1",
        },
    ),
}


def medmnist_classes(name: str) -> list[str]:
    """Class names of a MedMNIST set in label order."""
    return list(_entry(name)[0])


def medmnist_url(name: str, size: int) -> str:
    _entry(name)
    return f"{_RECORD}/{name}{'' if size == 28 else f'_{size}'}.npz?download=1"


def _entry(name: str) -> tuple[list[str], dict[int, str]]:
    entry = MEDMNIST.get(name.lower())
    if entry is None:
        raise HubError(f"unknown MedMNIST set {name!r}; choose one of {', '.join(sorted(MEDMNIST))}")
    return entry


def fetch_medmnist(name: str, size: int = 28, *, timeout: float = 30.0) -> Path:
    """The verified local copy of MedMNIST ``name`` at ``size`` pixels, downloading it if needed.

    Raises:
        HubError: Unknown set or size, offline with no cached copy, download failure, or checksum mismatch.
    """
    classes, sums = _entry(name)
    del classes
    if size not in sums:
        raise HubError(f"MedMNIST {name} has no {size}px version; choose one of {sorted(sums)}")
    name = name.lower()
    target = hfm_cache_dir("datasets") / "medmnist" / f"{name}{'' if size == 28 else f'_{size}'}.npz"
    if target.is_file():
        return target
    url = medmnist_url(name, size)
    if offline_variable() is not None:
        raise HubError(
            f"MedMNIST {name} ({size}px) is not cached and hfm is offline; download {url} "
            f"and use 'path:' in the source, or unset {offline_variable()}"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=target.parent, suffix=".part")
    temp = Path(temp_name)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(handle, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"{name}.npz", leave=False) as bar:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != sums[size]:
            raise HubError(
                f"MedMNIST {name} ({size}px) from {url} failed its checksum (md5 {digest.hexdigest()}, "
                f"expected {sums[size]}); try again later or download it by hand"
            )
        os.replace(temp, target)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise HubError(f"could not download MedMNIST {name} from {url} ({err}); check the network") from None
    finally:
        temp.unlink(missing_ok=True)
    return target


def load_hub_dataset(dataset_id: str, *, config: str | None = None, revision: str | None = None) -> Any:
    """A Hub dataset as a ``DatasetDict`` via ``datasets.load_dataset`` (cached copies work offline)."""
    import datasets

    try:
        return datasets.load_dataset(dataset_id, config, revision=revision)
    except Exception as err:  # noqa: BLE001 - datasets raises many types for "not reachable / not found"
        reason = str(err).splitlines()[0][:160] if str(err) else type(err).__name__
        hint = f" (offline: {offline_variable()} is set and it is not cached)" if offline() else ""
        raise HubError(f"could not load Hub dataset {dataset_id!r}{hint}: {reason}") from None
