"""Zero-shot classification on the BiomedCLIP twin: text tower, prompt ensembles, the text head, k = 0 sweeps."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hub.conftest import hub_server  # noqa: F401  (the local Hub server fixture)

import hfm
from hfm import recipes
from hfm.errors import ConfigError
from hfm.runner import run
from hfm.zeroshot.prompts import PromptsBlock, class_prompts, fingerprint
from hfm.zeroshot.text import TextTower, build_text_head, load_text_tower

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "smoke" / "multimodal__biomedclip__zero-shot.yaml"
PROMPTS = {
    "benign": ["a breast ultrasound image of a benign lesion", "benign mass"],
    "malignant": ["a breast ultrasound image of a malignant lesion"],
    "normal": ["a breast ultrasound image of normal tissue", "no lesion", "healthy breast"],
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, TextTower]:
    """The BiomedCLIP twin's image backbone and text tower (one twin cache for the module)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("HFM_CACHE", str(tmp_path_factory.mktemp("zs-cache")))
    try:
        backbone = hfm.load_backbone("multimodal/biomedclip", twin=True)
        tower = load_text_tower(backbone)
    finally:
        mp.undo()
    return backbone, tower


def test_text_tower_is_built_by_open_clip_from_the_entry_config(clip: tuple[Any, TextTower]) -> None:
    backbone, tower = clip
    from open_clip.hf_model import HFTextEncoder

    config = json.loads((Path(backbone.source_path) / "open_clip_config.json").read_text())
    text_cfg = config["model_cfg"]["text_cfg"]
    # The twin names the same Hugging Face text repo as the real config; its tokenizer is a local WordPiece.
    assert text_cfg["hf_tokenizer_name"] == "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"
    assert isinstance(tower.module, HFTextEncoder)
    assert tower.library == "open_clip" and tower.context_length == text_cfg["context_length"]
    emb = tower.encode(["benign lesion", "malignant lesion"])
    assert emb.shape == (2, backbone.spec.embed_dim)
    assert not torch.allclose(F.normalize(emb[0], dim=0), F.normalize(emb[1], dim=0), atol=1e-3)


def test_ensemble_is_the_mean_of_normalised_text_embeddings(clip: tuple[Any, TextTower]) -> None:
    _, tower = clip
    head = build_text_head(tower, PROMPTS)
    for row, prompts in zip(head.weight, PROMPTS.values(), strict=True):
        emb = tower.encode(prompts)
        expected = F.normalize(F.normalize(emb, dim=-1).mean(0), dim=0)
        torch.testing.assert_close(row, expected, atol=1e-6, rtol=1e-5)
        # Not the mean of raw embeddings (which weighs long prompts by their norm).
        raw = F.normalize(emb.mean(0), dim=0)
        if len(prompts) > 1:
            assert not torch.allclose(row, raw, atol=1e-6)
    assert head.fingerprint == fingerprint(PROMPTS)


def test_permuting_classes_permutes_logits(clip: tuple[Any, TextTower]) -> None:
    _, tower = clip
    x = torch.randn(5, tower.module.output_dim)
    head = build_text_head(tower, PROMPTS)
    order = ["normal", "benign", "malignant"]
    permuted = build_text_head(tower, {c: PROMPTS[c] for c in order})
    index = [list(PROMPTS).index(c) for c in order]
    torch.testing.assert_close(permuted.logits(x), head.logits(x)[:, index])


def test_logit_scale_is_applied_once(clip: tuple[Any, TextTower]) -> None:
    backbone, tower = clip
    head = build_text_head(tower, PROMPTS)
    images = torch.rand(3, 3, backbone.spec.input_size, backbone.spec.input_size)
    with torch.no_grad():
        cos = F.normalize(backbone(images), dim=-1) @ head.weight.T
    logits = head.logits(backbone(images).detach())
    torch.testing.assert_close(logits, tower.logit_scale * cos + tower.logit_bias)
    assert tower.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)  # exp of the stored log scale
    model = hfm.get_tuner("text-probe")(backbone, 3)
    model.set_text_head(head)
    torch.testing.assert_close(model.predict_proba(images), (tower.logit_scale * cos).softmax(-1))


def test_text_init_head_reproduces_zero_shot_before_training(clip: tuple[Any, TextTower]) -> None:
    backbone, tower = clip
    head = build_text_head(tower, PROMPTS)
    emb = torch.randn(8, backbone.spec.embed_dim)
    model = hfm.get_tuner("text-probe")(backbone, 3)
    model.set_text_head(head)
    zero_shot = head.logits(emb).softmax(-1)
    torch.testing.assert_close(model.predict_proba_embeddings(emb), zero_shot)
    # A fit whose pull is very strong stays at the text head; a weak one moves toward the labels.
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    model.config.l2_grid = (1e6,)
    model.fit_embeddings(emb, y)
    torch.testing.assert_close(model.predict_proba_embeddings(emb), zero_shot, atol=1e-3, rtol=1e-3)
    model.config.l2_grid = (1e-6,)
    model.fit_embeddings(emb, y)
    assert (model.predict_proba_embeddings(emb).argmax(-1) == y).all()


def test_prompts_block_templates_names_and_file(tmp_path: Path) -> None:
    (tmp_path / "prompts.yaml").write_text("templates: ['a photo of a {}']\nnames: {b: [bee, wasp]}\n")
    block = recipes_prompts({"file": "prompts.yaml", "descriptions": {"a": ["an ant"]}}, tmp_path)
    assert class_prompts(block, ["a", "b"]) == {
        "a": ["an ant", "a photo of a a"],
        "b": ["a photo of a bee", "a photo of a wasp"],
    }


def recipes_prompts(data: dict[str, Any], base: Path) -> PromptsBlock:
    from hfm.zeroshot.prompts import resolve_file

    return resolve_file(PromptsBlock.model_validate(data), base, "recipe.yaml")


# -- bad input ---------------------------------------------------------------------------------------------
def test_a_class_without_prompts_is_a_one_line_error() -> None:
    block = PromptsBlock(descriptions={"benign": ["benign"]})
    with pytest.raises(ConfigError, match=r"^class 'malignant' has no prompt: add prompts") as err:
        class_prompts(block, ["benign", "malignant"])
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="data does not have"):
        class_prompts(PromptsBlock(descriptions={"typo": ["x"]}), ["benign"])
    with pytest.raises(ValueError, match=r"exactly one '\{\}'"):
        PromptsBlock(templates=["no slot"])


def test_a_prompt_longer_than_the_context_is_a_one_line_error(clip: tuple[Any, TextTower]) -> None:
    _, tower = clip
    long = " ".join(["lesion"] * (tower.context_length + 5))
    with pytest.raises(
        ConfigError, match=rf"tokens, longer than the text tower's context of {tower.context_length}"
    ):
        build_text_head(tower, {"a": ["fine"], "b": [long]})


def _recipe(**over: Any) -> dict[str, Any]:
    data = recipes._read_yaml(SMOKE)
    data.update(over)
    return data


def test_a_backbone_without_text_tower_asked_for_k0_is_a_one_line_error(tmp_path: Path) -> None:
    recipe = recipes.parse(_recipe(backbone={"name": "radiology/rad-dino", "twin": True}))
    with pytest.raises(ConfigError, match="radiology/rad-dino has no text tower") as err:
        recipes.check_presets(recipe, "recipe.yaml")
    assert "\n" not in str(err.value)
    # Without the catalog's word for it (a folder), the loader says the same when it finds no text tower.
    from hfm.zeroshot.text import NoTextTowerError

    backbone = hfm.load_backbone("radiology/rad-dino", twin=True)
    with pytest.raises(NoTextTowerError, match="has no text tower"):
        load_text_tower(backbone)


def test_k0_and_label_free_presets_go_together() -> None:
    with pytest.raises(ConfigError, match="k = 0 runs only presets that need no label"):
        recipes.check_presets(recipes.parse(_recipe(presets=["probe/logreg"])), "r")
    with pytest.raises(ConfigError, match="predict without labels: add 0 to shots"):
        recipes.check_presets(recipes.parse(_recipe(shots=[1, 2])), "r")
    with pytest.raises(ConfigError, match="add a prompts block"):
        recipes.check_presets(recipes.parse(_recipe(prompts=None)), "r")
    with pytest.raises(ConfigError, match="has no text head: use tuner text-probe"):
        recipes.check_presets(
            recipes.parse(_recipe(presets=[{"name": "zs", "tuner": "probe", "method": "zero-shot"}])), "r"
        )


def test_cli_reports_a_class_without_prompts_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hfm.cli import main

    path = tmp_path / "r.yaml"
    path.write_text(json.dumps(_recipe(prompts={"descriptions": {"blob": ["a blob"]}})))
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "class 'horizontal stripes' has no prompt" in err
    assert not list((tmp_path / "out").glob("*/k*/seed*"))  # no run started


# -- a whole sweep -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("zs-sweep")
    mp = pytest.MonkeyPatch()
    mp.setenv("HFM_CACHE", str(out / "cache"))
    try:
        result = run(SMOKE, out=out / "run", progress=False, verbose=False)
    finally:
        mp.undo()
    assert result.ok, result.failed
    return out / "run"


def test_k0_rows_in_summary_and_plot(sweep: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    summary = json.loads((sweep / "summary.json").read_text())
    ks = {(r["preset"], r["k"]) for r in summary["rows"]}
    assert ks == {
        ("zero-shot/text", 0),
        ("probe/text-init", 1),
        ("probe/text-init", 2),
        ("probe/logreg", 1),
        ("probe/logreg", 2),
    }
    with (sweep / "summary.csv").open() as handle:
        assert ("zero-shot/text", "0") in {(r["preset"], r["k"]) for r in csv.DictReader(handle)}
    assert "| zero-shot/text | 0 |" in (sweep / "summary.md").read_text()
    run_record = json.loads((sweep / "zero-shot/text/k0/seed0/metrics.json").read_text())
    assert run_record["n_train"] == 0 and run_record["method"] == "zero-shot"
    assert run_record["fit"]["text_head"]["prompts"]["blob"][0] == "a round blob on a plain background"

    from matplotlib.figure import Figure

    from hfm.report import plot_label_efficiency

    drawn: list[Figure] = []
    original = Figure.savefig
    monkeypatch.setattr(
        Figure, "savefig", lambda self, *a, **k: (drawn.append(self), original(self, *a, **k))
    )
    plot_label_efficiency(summary, sweep / "again.png")
    ax = drawn[0].axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "0" and labels[1:] == ["1", "2"]
    assert ax.get_xticks()[0] == pytest.approx(0.5)  # one log2 step left of k = 1
    zero_line = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(zero_line) == 1  # the zero-shot level across the plot


def test_zero_shot_adapter_predicts_and_its_card_lists_the_prompts(sweep: Path) -> None:
    from hfm.hub.cards import render_card
    from hfm.runner import read_predictions

    folder = sweep / "zero-shot/text/k0/seed0"
    config = json.loads((folder / "adapter/hfm_config.json").read_text())
    assert config["tuner"] == "text-probe" and config["method"]["name"] == "zero-shot"
    prompts = config["text_head"]["prompts"]
    card = str(render_card(sweep, preset="zero-shot/text", k=0, seed=0))
    assert "A zero-shot `text-probe` adapter" in card
    for name, texts in prompts.items():
        for text in texts:
            assert f'"{text}"' in card, name
    assert config["text_head"]["fingerprint"] in card
    # The saved adapter (prompts + base model) predicts test exactly as the run did, from images.
    from hfm.data import load_data

    recipe = recipes.load(SMOKE)
    splits = load_data(recipe.data)
    adapter = hfm.load_adapter(folder / "adapter")
    images = torch.stack([adapter.backbone.transform(splits.test.image(i)) for i in range(len(splits.test))])
    _, _, proba = read_predictions(folder / "predictions.csv")
    np.testing.assert_allclose(adapter.predict_proba(images).numpy(), proba, atol=1e-5)


def test_medsiglip_text_tower_loads_with_siglip_model_and_its_bias(tmp_path: Path, monkeypatch) -> None:
    """The MedSigLIP twin is a whole SigLIP checkpoint: the image backbone reads its vision tower, the text tower
    the rest; SigLIP's bias joins the logit scale, each applied once."""
    import transformers

    monkeypatch.setenv("HFM_CACHE", str(tmp_path))
    backbone = hfm.load_backbone("multimodal/medsiglip", twin=True)
    tower = load_text_tower(backbone)
    assert isinstance(tower.module, transformers.SiglipModel) and tower.library == "transformers"
    assert tower.logit_scale == pytest.approx(10.0) and tower.logit_bias == pytest.approx(-10.0)
    ids = tower.tokenize(["a chest x-ray"])
    assert ids.shape == (1, tower.context_length)  # SigLIP reads text padded to its whole context
    head = build_text_head(tower, {"normal": ["a normal chest x-ray"], "pneumonia": ["pneumonia", "lung"]})
    images = torch.rand(2, 3, backbone.spec.input_size, backbone.spec.input_size)
    with torch.no_grad():
        cos = F.normalize(backbone(images), dim=-1) @ head.weight.T
        torch.testing.assert_close(head.logits(backbone(images)), 10.0 * cos - 10.0)


def test_zero_shot_adapter_publishes_with_its_card(sweep: Path, hub_server) -> None:  # noqa: F811
    from hfm.hub.push import push

    folder = sweep / "zero-shot/text/k0/seed0/adapter"
    push(folder, "lab/zero-shot")
    files = hub_server.files("lab/zero-shot")
    card = files["README.md"].decode()
    assert "A zero-shot `text-probe` adapter" in card and '"a round blob on a plain background"' in card
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    remote, local = hfm.load_adapter("lab/zero-shot"), hfm.load_adapter(folder)
    torch.testing.assert_close(remote.predict_proba(images), local.predict_proba(images), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("entry", "name"),
    [("multimodal/biomedclip", "hf-hub:acme/clip"), ("multimodal/medsiglip", "acme/siglip")],
)
def test_text_tower_of_a_real_model_from_a_prepopulated_cache(entry: str, name: str) -> None:
    """Not a twin: the image snapshot and (BiomedCLIP) its text repo come from the Hugging Face cache, offline."""
    import os

    from hfm.backbones.catalog import get_spec
    from hfm.backbones.twins import write_twin

    write_twin(get_spec(entry), Path(os.environ["HF_HUB_CACHE"]), repo_id=name.removeprefix("hf-hub:"))
    backbone = hfm.load_backbone(name)
    assert not backbone.is_twin
    tower = load_text_tower(backbone)
    head = build_text_head(tower, {"a": ["a benign lesion"], "b": ["a malignant lesion"]})
    assert head.weight.shape == (2, backbone.spec.embed_dim)
