"""Items 13 and 16: mistakes found before any run, with the exit status of `hfm run`, in clear words.

Faults injected:
- item 13: k larger than a class (under ``hfm run`` and ``hfm validate --data``); an unknown backbone with
  ``twin: true`` and a missing relative data root under ``hfm validate``; ``hfm validate``'s exit status;
- item 16: a duplicate key in a recipe; a text file named ``.npz``; ``on_error: skip`` dropping images silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from hfm.cli import main
from hfm.data import load_data
from hfm.errors import DataError
from hfm.runner import run

from .conftest import recipe, synthetic, write_folder


def test_k_larger_than_a_class_stops_before_any_run(tmp_path: Path) -> None:
    """Fault: k=3 where a class has 2 training examples; the hint names allow_fewer and no run folder exists."""
    out = tmp_path / "out"
    data = {**synthetic(3), "n_per_class": 2}
    with pytest.raises(DataError, match="allow_fewer: true"):
        run(recipe(out, data, shots=[1, 3]), progress=False, verbose=False)
    assert not out.exists()


def _validate(tmp_path: Path, cfg: dict, capsys) -> tuple[int, str]:
    file = tmp_path / "r.yaml"
    file.write_text(yaml.safe_dump(cfg))
    code = main(["validate", str(file)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_validate_rejects_a_twin_of_an_unknown_backbone(tmp_path: Path, capsys) -> None:
    """Fault: ``twin: true`` on a backbone that is not in the catalog; exit status 2 like `hfm run`."""
    cfg = recipe(tmp_path / "out", synthetic(3), backbone={"name": "nobody/model", "twin": True})
    code, text = _validate(tmp_path, cfg, capsys)
    assert code == 2 and "twins exist only for catalog entries" in text


def test_validate_with_data_finds_what_run_finds_before_its_first_run(tmp_path: Path, capsys) -> None:
    """Fault: k=3 where a class has 2 training examples; the schema is fine, so plain ``hfm validate`` passes
    and ``hfm validate --data`` (data loaded, every draw made) stops it like `hfm run`, writing nothing."""
    out = tmp_path / "out"
    cfg = recipe(out, {**synthetic(3), "n_per_class": 2}, shots=[1, 3])
    file = tmp_path / "r.yaml"
    file.write_text(yaml.safe_dump(cfg))
    assert main(["validate", str(file)]) == 0
    capsys.readouterr()
    assert main(["validate", "--data", str(file)]) == 2
    assert "allow_fewer: true" in capsys.readouterr().out
    assert not out.exists()


def test_validate_rejects_a_missing_relative_data_root(tmp_path: Path, capsys) -> None:
    """Fault: a relative ``root`` that does not exist next to the recipe."""
    code, text = _validate(tmp_path, recipe(tmp_path / "out", {"type": "folder", "root": "nowhere"}), capsys)
    assert code == 2 and f"{tmp_path / 'nowhere'} does not exist" in text


def test_duplicate_recipe_keys_are_rejected(tmp_path: Path, capsys) -> None:
    """Fault: ``shots`` given twice in one recipe (YAML silently kept the last)."""
    file = tmp_path / "r.yaml"
    text = yaml.safe_dump(recipe(tmp_path / "out", synthetic(3)))
    file.write_text(text + "shots: [8]\n")
    assert main(["validate", str(file)]) == 2
    assert "key 'shots' appears twice" in capsys.readouterr().out


def test_text_file_named_npz_says_so_plainly(tmp_path: Path) -> None:
    """Fault: a text file saved as ``.npz`` (numpy calls it "pickled data" and the message was cut mid-word)."""
    path = tmp_path / "d.npz"
    path.write_text("id,label\n1,a\n")
    with pytest.raises(DataError) as info:
        load_data({"type": "npz", "path": str(path)})
    assert "not a readable .npz file (not a zip archive)" in str(info.value)
    assert "pickled" not in str(info.value)


def test_skipped_images_are_counted_on_stderr(tmp_path: Path, capsys) -> None:
    """Fault: ``on_error: skip`` drops a corrupt file; the count was recorded but never printed."""
    root = write_folder(tmp_path / "imgs")
    (root / "a" / "img0.png").write_bytes(b"not a png")
    splits = load_data({"type": "folder", "root": str(root), "on_error": "skip"})
    assert splits.split_info["skipped_files"] == 1
    assert "skipped 1 unreadable image(s) (on_error: skip), e.g. a/img0.png" in capsys.readouterr().err
    assert np.asarray(splits.train.image(0)).size


def test_unseen_test_label_is_named_as_itself(tmp_path: Path) -> None:
    """Fault: test holds label 5 that train never has (it was reported as "class '2' has no training examples")."""
    from .conftest import write_npz

    images = {s: np.zeros((4, 8, 8), dtype=np.uint8) for s in ("train", "val", "test")}
    labels = {"train": np.array([0, 1, 0, 1]), "val": np.array([0, 1, 0, 1]), "test": np.array([0, 1, 5, 1])}
    with pytest.raises(DataError, match=r"test label '5' \(index 5\) never appears in train"):
        load_data({"type": "npz", "path": str(write_npz(tmp_path / "d.npz", images, labels))})


def test_mistyped_local_adapter_path_is_not_sent_to_the_hub(tmp_path: Path, capsys, monkeypatch) -> None:
    """Fault: ``runs/adapterr`` (a typo, shaped like ``org/name``) while ``runs`` exists here: it was told to
    unset HF_HUB_OFFLINE."""
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    assert main(["predict", "runs/adapterr", str(image)]) == 2
    err = capsys.readouterr().err
    assert "no such adapter folder" in err and "HF_HUB_OFFLINE" not in err


def test_predict_accepts_a_run_folder(tmp_path: Path, capsys) -> None:
    """Fault: ``hfm predict OUT/<preset>/k1/seed0`` (a run folder, as push and card accept) was rejected."""
    out = tmp_path / "out"
    run(recipe(out, synthetic(3)), progress=False, verbose=False)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    assert main(["predict", str(out / "probe" / "logreg" / "k1" / "seed0"), str(image)]) == 0
    assert str(image) in capsys.readouterr().out


def test_push_while_offline_fails_at_once(tmp_path: Path, monkeypatch) -> None:
    """Fault: a push with a token while HF_HUB_OFFLINE is set (it retried for 15 s, then said "try again later")."""
    from hfm.errors import HubError
    from hfm.hub import push as push_module
    from hfm.hub.push import push

    out = tmp_path / "out"
    run(recipe(out, synthetic(3)), progress=False, verbose=False)
    monkeypatch.setenv("HF_TOKEN", "hf_dummy")
    sent: list[object] = []
    monkeypatch.setattr(push_module, "_send", lambda *a, **kw: sent.append(a))
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set"):
        push(out / "probe" / "logreg" / "k1" / "seed0", "lab/x", license_ack=True)
    assert sent == []  # no request (and no retries) was even tried


def test_vpt_on_a_backbone_it_cannot_prompt_stops_before_any_run(tmp_path: Path) -> None:
    """Fault: VPT on BiomedCLIP's image tower (open_clip), which it does not support: it failed mid-sweep."""
    from hfm.errors import TunerError

    out = tmp_path / "out"
    cfg = recipe(
        out,
        synthetic(3),
        presets=["vpt/shallow-10"],
        backbone={"name": "multimodal/biomedclip", "twin": True},
    )
    with pytest.raises(TunerError, match="vpt is not supported"):
        run(cfg, progress=False, verbose=False)
    assert not out.exists()


def test_no_progress_hides_the_file_checking_bar(tmp_path: Path, capsys) -> None:
    """Fault: ``--no-progress`` still showed the bar that checks every file of a large folder (200+ files)."""
    root = write_folder(tmp_path / "imgs", n_per_class=70)
    file = tmp_path / "r.yaml"
    file.write_text(yaml.safe_dump(recipe(tmp_path / "out", {"type": "folder", "root": str(root)})))
    assert main(["run", str(file), "--no-progress"]) == 0
    assert "checking" not in capsys.readouterr().err
