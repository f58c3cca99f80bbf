from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hfm.data import episode, load_data
from hfm.data.dicom import DicomOpener
from hfm.errors import DataError

pydicom = pytest.importorskip("pydicom")
from pydicom.data import get_testdata_file  # noqa: E402

CT = Path(get_testdata_file("CT_small.dcm"))
MR = Path(get_testdata_file("MR_small.dcm"))
HEADER_STRINGS = ("CompressedSamples", "CT1", "MR1", "PatientName", "PatientID", "StudyDate")


def _edited(path: Path, out: Path, **changes: object) -> Path:
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    out.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(out)
    return out


@pytest.fixture
def dicom_folder(tmp_path: Path) -> Path:
    root = tmp_path / "dicom"
    for cls, source in (("ct", CT), ("mr", MR)):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            shutil.copy(source, root / cls / f"scan {i}.dcm")
    return root


def test_dicom_folder_leaks_no_header_field(dicom_folder: Path, tmp_path: Path) -> None:
    splits = load_data({"type": "dicom", "root": str(dicom_folder), "split": {"val": 0.2, "test": 0.2}})
    assert splits.classes == ["ct", "mr"]
    shots = episode(splits, 2, seed=0)
    shots.save(tmp_path / "episode.json")
    image = splits.train.image(0)
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 2
    text = (
        json.dumps(
            {
                "ids": splits.train.ids + splits.val.ids + splits.test.ids,
                "source": splits.source,
                "split_info": splits.split_info,
                "episode": shots.to_dict(),
            }
        )
        + (tmp_path / "episode.json").read_text()
    )
    for secret in HEADER_STRINGS:
        assert secret not in text
    assert str(pydicom.dcmread(CT).PatientName) not in text


def test_rescale_and_window_ct(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    windowed = _edited(CT, tmp_path / "w.dcm", WindowCenter=40, WindowWidth=400)
    image = DicomOpener()(windowed)
    assert image.dtype == np.uint8 and image.shape == hu.shape
    assert np.all(image[hu <= 40 - 200] == 0) and np.all(image[hu >= 40 + 200] == 255)
    inside = (hu > -150) & (hu < 230)
    expected = np.round(np.clip((hu - (40 - 0.5 - 399 / 2)) / 399, 0, 1) * 255)
    np.testing.assert_allclose(image[inside], expected[inside], atol=1)
    # Without a window, min/max scaling of the rescaled values.
    plain = DicomOpener()(CT)
    assert plain.min() == 0 and plain.max() == 255
    np.testing.assert_array_equal(DicomOpener(window="none")(windowed), plain)


def test_mr_uses_its_own_window_and_monochrome1_inverts(tmp_path: Path) -> None:
    auto = DicomOpener()(MR)
    assert auto.dtype == np.uint8 and auto.shape == (64, 64)
    assert not np.array_equal(auto, DicomOpener(window="none")(MR))  # MR_small carries centre 600, width 1600
    inverted = DicomOpener()(_edited(MR, tmp_path / "m1.dcm", PhotometricInterpretation="MONOCHROME1"))
    np.testing.assert_array_equal(inverted, 255 - auto)


def test_8_bit_pixels(tmp_path: Path) -> None:
    ds = pydicom.dcmread(MR)
    pixels = (np.arange(64 * 64) % 200).astype(np.uint8).reshape(64, 64)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    del ds.WindowCenter, ds.WindowWidth
    ds.save_as(tmp_path / "8bit.dcm")
    image = DicomOpener()(tmp_path / "8bit.dcm")
    np.testing.assert_array_equal(image, np.round(pixels * (255 / 199)).astype(np.uint8))


def test_multiframe_and_non_dicom_are_rejected(dicom_folder: Path) -> None:
    _edited(CT, dicom_folder / "ct" / "cine.dcm", NumberOfFrames=2)
    with pytest.raises(DataError, match=r"ct/cine.dcm: multi-frame DICOM \(2 frames\) is not supported"):
        load_data({"type": "dicom", "root": str(dicom_folder)})
    (dicom_folder / "ct" / "cine.dcm").write_bytes(b"plain text, not DICOM")
    with pytest.raises(DataError, match="ct/cine.dcm: corrupt or unreadable"):
        load_data({"type": "dicom", "root": str(dicom_folder)})
    splits = load_data({"type": "dicom", "root": str(dicom_folder), "on_error": "skip"})
    assert splits.split_info["skipped_files"] == 1


def test_dicom_manifest(dicom_folder: Path) -> None:
    lines = ["file,kind"] + [f"{cls}/scan {i}.dcm,{cls}" for cls in ("ct", "mr") for i in range(6)]
    (dicom_folder / "list.csv").write_text("\n".join(lines) + "\n")
    splits = load_data(
        {
            "type": "dicom",
            "csv": str(dicom_folder / "list.csv"),
            "path_column": "file",
            "label_column": "kind",
        }
    )
    assert splits.classes == ["ct", "mr"]
    assert all(i.endswith(".dcm") and not i.startswith("/") for i in splits.train.ids)
