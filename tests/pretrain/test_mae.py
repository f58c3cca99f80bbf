"""The MAE objective on tiny timm ViTs: loss, export round trip, resume, adapt modes, gate, refusals (its fixed-seed
test is parametrised in test_pretrain.py, its two-process run in test_distributed.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import hfm
from hfm.embeddings import extract
from hfm.errors import ConfigError
from hfm.pretrain import PretrainError, parse_recipe, pretrain
from hfm.pretrain.loop import load_start
from hfm.pretrain.mae import MaeBranch
from pretrain.conftest import mae_recipe, tiny_recipe


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _changed(recipe: dict[str, Any], out: Path) -> set[str]:
    start = load_start(parse_recipe(recipe))[0].model.state_dict()
    kept = _weights(out)
    assert kept.keys() == start.keys()  # the encoder alone: no decoder, mask token or LoRA keys
    return {k for k, v in start.items() if not torch.equal(kept[k], v)}


def test_mae_loss_falls(tmp_path: Path) -> None:
    # Raw pixel targets: the synthetic images' patches are mostly noise once normalised per patch.
    recipe = mae_recipe(
        objective={"norm_pix_loss": False},
        schedule={"epochs": 6, "lr": 3e-3, "warmup_epochs": 0},
        monitor={"enabled": False},
    )
    result = pretrain(recipe, out=tmp_path / "out")
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 6
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(h["momentum"] is None for h in result.history)  # no teacher to move


@pytest.mark.parametrize(
    "backbone",
    [None, {"name": "pathology/kaiko-vitb16", "twin": True}],
    ids=["timm-vit-scratch", "timm-vit-twin"],
)
def test_mae_export_drops_the_decoder_and_embeds_exactly(
    tmp_path: Path, backbone: dict[str, Any] | None
) -> None:
    over = {"backbone": backbone} if backbone else {}
    recipe = mae_recipe(schedule={"epochs": 1}, **over)
    out = tmp_path / "out"
    result = pretrain(recipe, out=out)
    assert _changed(recipe, out)  # the encoder trained
    data = hfm.load_data({"type": "synthetic", "n_classes": 2, "n_per_class": 4, "size": 40}).test
    trained = extract(result.backbone, data, cache=False, progress=False)
    again = extract(hfm.load_backbone(f"local-dir:{out}"), data, cache=False, progress=False)
    assert torch.equal(trained, again)
    card = (out / "README.md").read_text()
    assert "mae (lightly)" in card and "decoder is dropped" in card and "student" in card


def test_mae_resume_ends_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    class Interrupt(Exception):
        pass

    def stop_after_first(entry: dict[str, Any]) -> None:
        if entry["epoch"] == 1:
            raise Interrupt

    recipe = mae_recipe(schedule={"epochs": 3})
    pretrain(recipe, out=tmp_path / "full")
    with pytest.raises(Interrupt):
        pretrain(recipe, out=tmp_path / "cut", on_epoch_end=stop_after_first)
    resumed = pretrain(recipe, out=tmp_path / "cut", resume=True)
    assert resumed.resumed_from_epoch == 1
    assert _same(_weights(tmp_path / "full"), _weights(tmp_path / "cut"))


def test_mae_last_blocks_and_lora_adapt_what_they_say(tmp_path: Path) -> None:
    last = mae_recipe(adapt={"mode": "last_blocks", "blocks": 1}, monitor={"enabled": False})
    pretrain(last, out=tmp_path / "last")
    changed = _changed(last, tmp_path / "last")
    assert changed and all(k.startswith(("blocks.1.", "norm.")) for k in changed), changed
    lora = mae_recipe(adapt={"mode": "lora", "r": 4}, monitor={"enabled": False})
    pretrain(lora, out=tmp_path / "lora")
    changed = _changed(lora, tmp_path / "lora")
    assert changed and all(".attn." in k for k in changed), changed  # merged LoRA on attention only


def test_mae_no_harm_gate_keeps_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def collapse(self: MaeBranch, images: torch.Tensor) -> torch.Tensor:
        emb = self.backbone(images)
        return emb.var(dim=0).sum() * 100

    monkeypatch.setattr(MaeBranch, "forward", collapse)
    recipe = mae_recipe(schedule={"epochs": 6, "lr": 5e-2, "warmup_epochs": 0})
    result = pretrain(recipe, out=tmp_path / "out")
    assert result.stopped is not None and result.epochs < 6
    assert result.best_epoch == 0
    assert not _changed(recipe, tmp_path / "out")


def test_mae_refuses_a_cnn_in_one_line(tmp_path: Path) -> None:
    cnn = {"architecture": "resnet10t", "kwargs": {"channels": [8, 8, 8, 8]}, "input_size": 32}
    with pytest.raises(PretrainError, match=r"objective mae wraps timm Vision Transformers.*ResNet") as err:
        pretrain(mae_recipe(backbone=cnn), out=tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_mae_has_no_teacher_to_export() -> None:
    with pytest.raises(ConfigError, match="no teacher"):
        parse_recipe(mae_recipe(export="teacher"))
    assert parse_recipe(mae_recipe()).export == "student"
    assert parse_recipe(tiny_recipe()).export == "teacher"  # DINO's default is unchanged
