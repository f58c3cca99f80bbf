"""Model cards: metadata built by huggingface_hub, accepted by the Hub's validation, with every section."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard

from hfm.cli import main
from hfm.errors import HubError
from hfm.hub.cards import render_card
from hub.conftest import make_adapter
from hub.server import HubServer, validate_card_metadata


def _load(text: str, tmp_path: Path) -> ModelCard:
    path = tmp_path / "README.md"
    path.write_text(text, encoding="utf-8")
    return ModelCard.load(path)


def test_sweep_card_metadata_and_sections(sweep: Path, tmp_path: Path) -> None:
    card = _load(str(render_card(sweep, repo_id="lab/hibou-probe")), tmp_path)
    data = card.data.to_dict()
    assert data["base_model"] == "histai/hibou-b"
    assert data["base_model_relation"] == "adapter"
    assert data["library_name"] == "hfm"
    assert data["pipeline_tag"] == "image-classification"
    assert data["license"] == "apache-2.0"  # inherited from the base
    assert {"hfm", "medical", "pathology", "probe", "few-shot"} <= set(data["tags"])
    assert "datasets" not in data  # an npz file is not a Hub dataset
    results = data["model-index"][0]["results"]
    by_metric = {r["metrics"][0]["type"]: r["metrics"][0] for r in results}
    # published k is the largest (4); accuracy there is 0.6 and 0.61 over seeds 0 and 1
    assert by_metric["accuracy"]["value"] == pytest.approx(0.605)
    assert "k=4" in by_metric["accuracy"]["name"] and "2 seeds" in by_metric["accuracy"]["name"]
    assert "auroc" not in by_metric  # undefined metrics are not reported as numbers
    assert validate_card_metadata(str(card)) == []
    text = card.text
    for section in ("## Intended use", "## Base model", "## Data and few-shot protocol", "## Evaluation",
                    "## How to use", "## Limitations", "## Reproducibility", "## Citation"):  # fmt: skip
        assert section in text
    assert "not a medical device" in text.lower() and "not for diagnosis" in text.lower()
    assert "![Label efficiency" in text and "(label_efficiency.png)" in text
    assert "| probe/default | 1 |" in text and "| probe/default | 4 |" in text
    assert "| tumor |" in text  # per-class recall
    assert "runs/probe/default/k4/seed0/episode.json" in text
    assert "by `patient`" in text and "ffffffffffffffff" in text
    assert 'hfm.load_adapter("lab/hibou-probe")' in text
    assert "primary_metric: accuracy" in text  # recipe inline
    assert "Chen" not in text and "hibou" in text.lower()


def test_lora_card_is_peft_with_plain_usage(adapters: dict[str, Path], tmp_path: Path) -> None:
    card = _load(str(render_card(adapters["lora"], repo_id="lab/hopt-lora")), tmp_path)
    assert card.data.library_name == "peft"
    assert "PeftModel.from_pretrained(base, folder)" in card.text
    assert 'timm.create_model("hf-hub:bioptimus/H-optimus-0@' in card.text  # pinned to the recorded commit
    assert "head.safetensors" in card.text
    hf = str(render_card(adapters["lora-hf"], repo_id="lab/hibou-lora"))
    assert 'AutoModel.from_pretrained("histai/hibou-b"' in hf


def test_license_rules(tmp_path: Path) -> None:
    import json

    rad = make_adapter(tmp_path / "rad", "probe", "radiology/rad-dino")
    # An adapter recorded on a RAD-DINO revision from before its MIT licence (the MSRLA then applied).
    config = json.loads((rad / "hfm_config.json").read_text())
    config["backbone"]["spec"]["license"] = "msrla"
    (rad / "hfm_config.json").write_text(json.dumps(config))
    card = _load(str(render_card(rad, intended_use="Benchmarking only.")), tmp_path)
    assert card.data.license == "other"  # msrla is not a Hub license id
    assert card.data.license_name == "msrla"
    assert card.data.license_link
    assert "**Non-commercial:**" in card.text
    assert "Benchmarking only." in card.text and "not for diagnosis" not in card.text
    assert validate_card_metadata(str(card)) == []
    mine = _load(str(render_card(rad, license="cc-by-nc-4.0")), tmp_path)
    assert mine.data.license == "cc-by-nc-4.0"


def test_hub_dataset_is_listed(adapters: dict[str, Path], tmp_path: Path) -> None:
    import json

    folder = tmp_path / "a"
    shutil.copytree(adapters["probe"], folder)
    config = json.loads((folder / "hfm_config.json").read_text())
    config["data"]["source"] = {"type": "hf", "id": "lab/crc-patches"}
    (folder / "hfm_config.json").write_text(json.dumps(config))
    card = _load(str(render_card(folder)), tmp_path)
    assert card.data.datasets == ["lab/crc-patches"]


def test_card_passes_server_validation_over_http(sweep: Path, hub_server: HubServer) -> None:
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    api._validate_yaml(str(render_card(sweep)))  # raises ValueError when the Hub would refuse it
    bad = str(render_card(sweep)).replace("license: apache-2.0", "license: my-own-license")
    with pytest.raises(ValueError, match="license"):
        api._validate_yaml(bad)


def test_server_validation_rejects_broken_model_index() -> None:
    card = "---\nmodel-index:\n- name: x\n  results:\n  - task: {type: image-classification}\n    metrics: []\n---\n"
    errors = validate_card_metadata(card)
    assert any("dataset" in e for e in errors) and any("metrics" in e for e in errors)


def test_cli_card_prints_and_writes(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["card", str(sweep), "--repo", "lab/x", "--k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("---\n") and "k=1" in out
    target = tmp_path / "card.md"
    assert main(["card", str(sweep), "--out", str(target)]) == 0
    assert ModelCard.load(target).data.base_model == "histai/hibou-b"


def test_run_folder_card(sweep: Path, tmp_path: Path) -> None:
    card = _load(str(render_card(sweep / "probe/default/k1/seed1")), tmp_path)
    assert "seed 1" in card.text
    assert card.data.to_dict()["model-index"][0]["results"][0]["metrics"][0]["value"] == pytest.approx(0.535)


def test_not_an_adapter_folder(tmp_path: Path) -> None:
    with pytest.raises(HubError, match="holds no adapter"):
        render_card(tmp_path)


def _grouped_csv(folder: Path) -> Path:
    """A CSV manifest of 32 tiny images, two classes, four images per patient."""
    import csv

    import numpy as np
    from PIL import Image

    rows = []
    for i in range(32):
        rel = f"img/{i}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 12), 7 * i, dtype=np.uint8)).save(folder / rel)
        rows.append({"file": rel, "diagnosis": ["normal", "tumour"][i % 2], "patient": f"p{i // 4}"})
    path = folder / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_card_states_the_groups_the_data_source_gave(tmp_path: Path) -> None:
    """Groups named only in the data block (no recipe-level key) are honoured, recorded and stated."""
    import json

    from hfm.runner import run, run_dir

    manifest = _grouped_csv(tmp_path / "data")
    recipe = {
        "name": "grouped",
        "backbone": {"name": "pathology/uni", "twin": True},
        "data": {
            "type": "csv",
            "path": str(manifest),
            "path_column": "file",
            "label_column": "diagnosis",
            "group_column": "patient",
        },  # fmt: skip
        "presets": ["probe/logreg"],
        "shots": [1],
        "seeds": [0],
        "bootstrap": 0,
        "output": str(tmp_path / "out"),
    }
    assert run(recipe, progress=False, verbose=False).ok
    folder = run_dir(tmp_path / "out", "probe/logreg", 1, 0)
    text = str(render_card(folder))
    assert "Group-aware split: yes, by `patient`: hfm made the" in text
    assert "no group" not in text and "may fall in both" not in text
    assert json.loads((folder / "episode.json").read_text())["group_key"] == "patient"
    assert json.loads((folder / "adapter" / "hfm_config.json").read_text())["data"]["group_key"] == "patient"


def test_card_says_when_there_were_no_groups(adapters: dict[str, Path], tmp_path: Path) -> None:
    import json

    folder = tmp_path / "a"
    shutil.copytree(adapters["probe"], folder)
    config = json.loads((folder / "hfm_config.json").read_text())
    config["data"] = {"fingerprint": "0" * 16, "source": {"type": "synthetic"}, "group_key": None,
                      "split_info": {"made_by": "hfm", "group_aware": False}}  # fmt: skip
    (folder / "hfm_config.json").write_text(json.dumps(config))
    assert "Group-aware split: no: the data source gave no groups" in str(render_card(folder))
