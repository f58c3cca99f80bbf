"""``hfm backbones verify``: a downloaded model's Hub configs against its catalog entry, offline.

The Hugging Face cache is faked with hand-written Hub configs (the layout ``snapshot_download`` leaves), so
the check runs exactly as on a machine that ran ``hfm backbones download``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from hfm.backbones.catalog import get_spec
from hfm.backbones.verify import verify_folder
from hfm.cli import main

IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
UNI_CONFIG = {
    "architecture": "vit_large_patch16_224",
    "num_classes": 0,
    "model_args": {"init_values": 1e-5, "dynamic_img_size": True},
    "pretrained_cfg": {"input_size": [3, 224, 224], "interpolation": "bilinear", "crop_pct": 1.0, **IMAGENET},
}
# wanglab/medsam-vit-base preprocessor_config.json: the SAM processor's ImageNet values, bilinear.
MEDSAM_PROCESSOR = {
    "do_resize": True,
    "size": {"longest_edge": 1024},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": IMAGENET["mean"],
    "image_std": IMAGENET["std"],
    "do_pad": True,
}


def _cache(repo: str, files: dict[str, Any], *, commit: str = "c" * 40, ref: str | None = "main") -> Path:
    """Write ``files`` as a cached snapshot of ``repo`` (``ref`` pointing at it) and return the folder."""
    root = Path(os.environ["HF_HUB_CACHE"]) / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, content in files.items():
        (snapshot / name).write_text(json.dumps(content))
    if ref is not None:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / ref).write_text(commit)
    return snapshot


def test_agreeing_config_has_no_disagreement(capsys: pytest.CaptureFixture[str]) -> None:
    _cache("MahmoodLab/UNI", {"config.json": UNI_CONFIG})
    assert main(["backbones", "verify", "pathology/uni"]) == 0
    assert "agree with the entry" in capsys.readouterr().out


def test_disagreeing_config_is_reported_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    config = json.loads(json.dumps(UNI_CONFIG))
    config["pretrained_cfg"].update(crop_pct=0.875, input_size=[3, 256, 256])
    config["model_args"]["init_values"] = 1.0
    _cache("MahmoodLab/UNI", {"config.json": config})
    assert main(["backbones", "verify", "uni"]) == 1
    out = capsys.readouterr().out
    assert "3 disagreement(s)" in out
    assert "input_size: entry 224, config.json pretrained_cfg 256 [UNEXPLAINED]" in out
    assert "crop_pct: entry 1.0, config.json pretrained_cfg 0.875 [UNEXPLAINED]" in out
    # the entry cites the publisher's own kwargs for this one: a deliberate difference, with its source
    assert "loader_kwargs.init_values: entry 1e-05, config.json model_args 1.0 [explained]" in out


def test_uni_hub_config_with_bicubic_is_explained_by_the_publisher_code() -> None:
    config = json.loads(json.dumps(UNI_CONFIG))
    config["pretrained_cfg"]["interpolation"] = "bicubic"
    found = verify_folder(get_spec("pathology/uni"), _cache("MahmoodLab/UNI", {"config.json": config}))
    assert [(d.fact, d.entry, d.hub, d.explained) for d in found] == [
        ("interpolation", "bilinear", "bicubic", True)
    ]
    assert "get_encoder.py" in str(found[0].provenance)


def test_medsam_processor_config_differs_where_the_entry_follows_medsam_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = get_spec("radiology/medsam")
    assert spec.revision is not None
    _cache(spec.hub_id, {"config.json": {"model_type": "sam"}, "preprocessor_config.json": MEDSAM_PROCESSOR},
           commit=spec.revision, ref=None)  # fmt: skip
    assert main(["backbones", "verify", "radiology/medsam", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    facts = {d["fact"]: d for d in report["disagreements"]}
    assert set(facts) == {"mean", "std", "interpolation"}
    assert all(d["explained"] for d in facts.values())
    assert "MedSAM_Inference.py" in facts["std"]["provenance"]
    assert report["commit"] == spec.revision


def test_transformers_architecture_mismatch_is_unexplained() -> None:
    spec = get_spec("radiology/rad-dino")
    folder = _cache(spec.hub_id, {"config.json": {"model_type": "vit"}})
    found = verify_folder(spec, folder)
    assert [(d.fact, d.hub, d.explained) for d in found] == [("architecture", "vit", False)]


def test_vision_tower_architecture_is_not_a_disagreement() -> None:
    spec = get_spec("multimodal/medsiglip")
    processor = {"size": {"height": 448, "width": 448}, "resample": 2, "image_mean": [0.5] * 3,
                 "image_std": [0.5] * 3}  # fmt: skip
    folder = _cache(
        spec.hub_id, {"config.json": {"model_type": "siglip"}, "preprocessor_config.json": processor}
    )
    assert verify_folder(spec, folder) == []


def test_processor_resize_mode_is_compared() -> None:
    spec = get_spec("radiology/rad-dino")
    processor = {
        "size": {"height": 518, "width": 518},
        "image_mean": list(spec.mean),
        "image_std": list(spec.std),
    }
    folder = _cache(
        spec.hub_id, {"config.json": {"model_type": "dinov2"}, "preprocessor_config.json": processor}
    )
    assert [(d.fact, d.entry, d.hub) for d in verify_folder(spec, folder)] == [
        ("resize_mode", "shortest", "squash")
    ]


def test_open_clip_config_is_compared() -> None:
    spec = get_spec("multimodal/biomedclip")
    config = {
        "model_cfg": {
            "embed_dim": 512,
            "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "image_size": 224},
        },
        "preprocess_cfg": {"mean": list(spec.mean), "std": [0.3, 0.3, 0.3]},
    }
    found = verify_folder(spec, _cache(spec.hub_id, {"open_clip_config.json": config}))
    assert [(d.fact, d.config) for d in found] == [("std", "open_clip_config.json")]


def test_not_cached_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones", "verify", "pathology/virchow2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hfm: error:") and "\n" not in err and "hfm backbones download" in err


def test_show_prints_where_each_fact_comes_from(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backbones", "show", "ophthalmology/retfound-cfp"]) == 0
    out = capsys.readouterr().out
    assert "where the facts come from:" in out
    assert "models_vit.py" in out and "util/datasets.py" in out
