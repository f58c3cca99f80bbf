"""hfm.pretrain end to end on tiny models: loss, determinism, export round trip, resume, gate, no val/test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import hfm
from hfm.embeddings import extract
from hfm.pretrain import PretrainError, pretrain
from hfm.pretrain.dino import Dino
from pretrain.conftest import mae_recipe, tiny_recipe


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_loss_falls(tmp_path: Path) -> None:
    """The student learns to match its teacher.

    DINO's loss is not a fixed objective: the teacher and its centre move, and early on the centring raises
    the teacher's entropy and with it the loss. Holding the teacher still (momentum 1) and centring on each
    batch gives the student a fixed target, so its loss must fall.
    """
    objective = {"momentum": 1.0, "momentum_end": 1.0, "center_momentum": 0.0}
    recipe = tiny_recipe(objective=objective, schedule={"epochs": 5, "lr": 3e-3}, monitor={"enabled": False})
    result = pretrain(recipe, out=tmp_path / "out")
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 5
    assert losses[-1] < losses[0] - 0.5, losses


@pytest.mark.parametrize("make", [tiny_recipe, mae_recipe], ids=["dino", "mae"])
def test_fixed_seed_gives_identical_weights_and_another_seed_does_not(tmp_path: Path, make: Any) -> None:
    pretrain(make(), out=tmp_path / "a")
    pretrain(make(), out=tmp_path / "b")
    pretrain(make(schedule={"seed": 1}), out=tmp_path / "c")
    a, b, c = (_weights(tmp_path / n) for n in "abc")
    assert _same(a, b)
    assert not _same(a, c)


@pytest.mark.parametrize(
    "backbone",
    [
        {"architecture": "resnet10t", "kwargs": {"channels": [8, 8, 8, 8]}, "input_size": 32},
        {"name": "pathology/kaiko-vitb16", "twin": True},  # timm catalog entry (twin)
        {"name": "pathology/phikon", "twin": True},  # transformers catalog entry (twin)
    ],
    ids=["timm-cnn-scratch", "timm-twin", "transformers-twin"],
)
def test_export_loads_back_and_embeds_exactly(tmp_path: Path, backbone: dict[str, Any]) -> None:
    out = tmp_path / "out"
    result = pretrain(tiny_recipe(backbone=backbone, schedule={"epochs": 1}), out=out)
    data = hfm.load_data({"type": "synthetic", "n_classes": 2, "n_per_class": 4, "size": 40}).test
    trained = extract(result.backbone, data, cache=False, progress=False)
    loaded = hfm.load_backbone(f"local-dir:{out}")
    again = extract(loaded, data, cache=False, progress=False)
    assert torch.equal(trained, again)
    assert loaded.spec.pooling == result.backbone.spec.pooling
    assert loaded.spec.mean == result.backbone.spec.mean
    # The library's own layout is there, plus the card and its plot.
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "hfm_spec.json", "README.md", "pretrain_monitor.png"} <= files
    assert "model.safetensors" in files
    card = (out / "README.md").read_text()
    assert "24 train images" in card and "never read" in card


def test_exported_backbone_runs_in_a_recipe(tmp_path: Path) -> None:
    out = tmp_path / "out"
    pretrain(tiny_recipe(schedule={"epochs": 1}), out=out)
    sweep = hfm.run(
        {
            "name": "probe-on-pretrained",
            "backbone": f"local-dir:{out}",
            "data": {"type": "synthetic", "n_classes": 2, "n_per_class": 8, "size": 32},
            "presets": ["probe/logreg"],
            "shots": [2],
            "seeds": [0],
            "output": str(tmp_path / "sweep"),
        },
        progress=False,
        verbose=False,
    )
    assert sweep.ok


class _Interrupt(Exception):
    pass


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    recipe = tiny_recipe(schedule={"epochs": 3})
    pretrain(recipe, out=tmp_path / "full")

    def stop_after_first(entry: dict[str, Any]) -> None:
        if entry["epoch"] == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        pretrain(recipe, out=tmp_path / "cut", on_epoch_end=stop_after_first)
    assert not (tmp_path / "cut").exists()  # nothing half-written
    assert (tmp_path / ".cut.pretrain" / "checkpoint.pt").is_file()
    resumed = pretrain(recipe, out=tmp_path / "cut", resume=True)
    assert resumed.resumed_from_epoch == 1
    assert _same(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))
    assert not (tmp_path / ".cut.pretrain").exists()  # the checkpoint goes once the backbone is written


def test_resume_refuses_a_checkpoint_of_another_recipe(tmp_path: Path) -> None:
    def stop(entry: dict[str, Any]) -> None:
        raise _Interrupt

    with pytest.raises(_Interrupt):
        pretrain(tiny_recipe(), out=tmp_path / "out", on_epoch_end=stop)
    with pytest.raises(PretrainError, match="another recipe"):
        pretrain(tiny_recipe(schedule={"lr": 1e-2}), out=tmp_path / "out", resume=True)


def test_no_harm_gate_stops_a_collapsing_run_and_keeps_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def collapse(self: Dino, student: Any, views: list[torch.Tensor], epoch: int) -> torch.Tensor:
        # Pull every image's embedding to the batch mean: the textbook collapse.
        emb = self.student.backbone(torch.cat(views[:2]))
        return emb.var(dim=0).sum() * 100

    monkeypatch.setattr(Dino, "loss", collapse)
    recipe = tiny_recipe(schedule={"epochs": 6, "lr": 5e-2, "warmup_epochs": 0}, export="student")
    result = pretrain(recipe, out=tmp_path / "out")
    assert result.stopped is not None
    assert "collapsed" in result.stopped or "no-harm gate" in result.stopped
    assert result.epochs < 6
    assert result.best_epoch == 0
    start = hfm.pretrain.loop.load_start(hfm.pretrain.parse_recipe(recipe))[0]
    kept = _weights(tmp_path / "out")
    assert all(torch.equal(kept[k], v) for k, v in start.model.state_dict().items())
    assert "Stopped early" in (tmp_path / "out" / "README.md").read_text()


def test_val_and_test_images_are_never_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hfm.data

    real = hfm.data.load_data
    read: list[str] = []

    def load(source: Any) -> Any:
        splits = real(source)

        def forbidden(name: str) -> Any:
            def reader(i: int) -> Any:
                read.append(name)
                raise AssertionError(f"{name} image {i} was read")

            return reader

        splits.val.reader = forbidden("val")
        splits.test.reader = forbidden("test")
        return splits

    monkeypatch.setattr(hfm.data, "load_data", load)
    result = pretrain(tiny_recipe(), out=tmp_path / "out")
    assert result.checks  # the monitor ran, on the train split
    assert read == []


def test_val_and_test_files_are_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No val/test file of a folder source is opened at all: not decoded, not hashed, not screened."""
    import builtins
    import io

    from PIL import Image

    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            Image.new("L", (32, 32), color=10 * i + (100 if cls == "b" else 0)).save(root / cls / f"{i}.png")
    source = {"type": "folder", "root": str(root), "split": {"seed": 0, "val": 0.2, "test": 0.2}}
    splits = hfm.load_data(source)
    held_out = {str(root / rel) for rel in [*splits.val.ids, *splits.test.ids]}
    train = {str(root / rel) for rel in splits.train.ids}
    assert held_out and train
    opened: list[str] = []
    real_open = builtins.open

    def recording_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, Path)):
            opened.append(str(Path(file)))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    monkeypatch.setattr(io, "open", recording_open)
    pretrain(tiny_recipe(data=source), out=tmp_path / "out")
    monkeypatch.undo()
    assert train <= set(opened)  # the recorder sees the train files
    assert not held_out & set(opened), sorted(held_out & set(opened))


def test_last_blocks_adapts_only_the_last_block(tmp_path: Path) -> None:
    recipe = tiny_recipe(
        adapt={"mode": "last_blocks", "blocks": 1}, export="student", monitor={"enabled": False}
    )
    pretrain(recipe, out=tmp_path / "out")
    start = hfm.pretrain.loop.load_start(hfm.pretrain.parse_recipe(recipe))[0].model.state_dict()
    kept = _weights(tmp_path / "out")
    changed = {k for k, v in start.items() if not torch.equal(kept[k], v)}
    assert changed and all(k.startswith(("blocks.1.", "norm.")) for k in changed), changed


def test_lora_is_merged_before_export(tmp_path: Path) -> None:
    recipe = tiny_recipe(adapt={"mode": "lora", "r": 4}, export="student", monitor={"enabled": False})
    pretrain(recipe, out=tmp_path / "out")
    start = hfm.pretrain.loop.load_start(hfm.pretrain.parse_recipe(recipe))[0].model.state_dict()
    kept = _weights(tmp_path / "out")
    assert kept.keys() == start.keys()  # no lora_ keys: plain timm weights
    changed = {k for k, v in start.items() if not torch.equal(kept[k], v)}
    assert changed and all(".attn." in k for k in changed), changed
    hfm.load_backbone(f"local-dir:{tmp_path / 'out'}")


def test_card_records_the_start_data_and_schedule(tmp_path: Path) -> None:
    out = tmp_path / "out"
    pretrain(tiny_recipe(), out=out)
    facts = json.loads((out / "hfm_pretrain.json").read_text())
    assert facts["images"] == 24
    assert len(facts["data_fingerprint"]) == 64
    assert facts["monitor"][0]["epoch"] == 0
    card = (out / "README.md").read_text()
    assert "timm vit_tiny_patch16_224 (random init)" in card
    assert "Not for diagnostic use" in card


def test_explora_adapts_the_last_block_fully_and_lora_elsewhere(tmp_path: Path) -> None:
    recipe = tiny_recipe(
        adapt={"mode": "explora", "blocks": 1, "r": 4}, export="student", monitor={"enabled": False}
    )
    pretrain(recipe, out=tmp_path / "out")
    start = hfm.pretrain.loop.load_start(hfm.pretrain.parse_recipe(recipe))[0].model.state_dict()
    kept = _weights(tmp_path / "out")
    assert kept.keys() == start.keys()
    changed = {k for k, v in start.items() if not torch.equal(kept[k], v)}
    assert any(k.startswith("blocks.1.mlp.") for k in changed)  # the last block adapts in full
    early = {k for k in changed if k.startswith("blocks.0.")}
    assert early and all(".attn." in k for k in early), early  # LoRA (merged) on the first block's attention
    assert "patch_embed.proj.weight" not in changed
