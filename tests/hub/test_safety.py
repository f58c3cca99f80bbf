"""The staging scan: local paths redacted; images, DICOM fields and the token refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfm.errors import HubError
from hfm.hub.licenses import policy_for
from hfm.hub.safety import redact_paths, scan_stage


def test_redact_paths_keeps_urls_and_relative_paths() -> None:
    text = (
        'path: /work/shared/data/crc.npz\n"root": "/home/ann/slides/"\nwin: "C:\\\\Users\\\\ann\\\\x.csv"\n'
        "home: ~/data/f.csv\nurl: https://huggingface.co/org/name/resolve/main/x\nrel: runs/lora/k4/seed0/a.json 1/2/3"
    )
    out, count = redact_paths(text)
    assert count == 4
    assert "path: [local path]/crc.npz" in out and '"root": "[local path]/slides"' in out
    assert "[local path]/x.csv" in out and "home: [local path]/f.csv" in out
    assert (
        "https://huggingface.co/org/name/resolve/main/x" in out and "runs/lora/k4/seed0/a.json 1/2/3" in out
    )
    assert "/work" not in out and "/home" not in out and "Users" not in out


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("scan.dcm", b"x", "raw images and DICOM"),
        ("image.jpg", b"x", "raw images and DICOM"),
        ("plain", b"\0" * 128 + b"DICM" + b"\0" * 8, "raw images and DICOM"),
        ("other.png", b"x", "only the label-efficiency plot"),
        ("model.bin", b"x", "unknown file type"),
        ("meta.json", b'{"PatientName": "DOE^JOHN"}', "DICOM header fields"),
        ("meta.csv", b"tag,value\n(0010,0020),123\n", "DICOM header fields"),
        ("note.md", b"token hf_secret_123", "contains your Hub token"),
    ],
)
def test_refusals(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(HubError, match=message) as err:
        scan_stage(tmp_path, token="hf_secret_123")
    assert "hf_secret_123" not in str(err.value)


def test_group_key_named_like_a_dicom_field_is_fine(tmp_path: Path) -> None:
    (tmp_path / "hfm_config.json").write_text('{"group_key": "PatientID", "path": "/data/x.npz"}')
    (tmp_path / "label_efficiency.png").write_bytes(b"\x89PNG")
    report = scan_stage(tmp_path, token=None, plot_names=("label_efficiency.png",))
    assert report.redactions == {"hfm_config.json": 1}
    assert "[local path]/x.npz" in (tmp_path / "hfm_config.json").read_text()


@pytest.mark.parametrize(
    ("license_id", "gated", "ack", "nc"),
    [
        ("cc-by-nc-nd-4.0", True, True, True),
        ("cc-by-nd-4.0", False, True, False),
        ("cc-by-nc-4.0", False, False, True),
        ("apache-2.0", True, False, False),
        ("health-ai-developer-foundations", True, True, False),
        ("msrla", False, False, True),
        ("kaiko-non-commercial", False, False, True),
        ("mit", False, False, False),
    ],
)
def test_license_policy(license_id: str, gated: bool, ack: bool, nc: bool) -> None:
    policy = policy_for(license_id, gated=gated)
    assert policy.needs_ack is ack and policy.non_commercial is nc
