"""Every shipped preset and recipe validates; bad recipes fail with the file, the field and what is allowed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from hfm import recipes
from hfm.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PRESET_FILES = sorted((ROOT / "adapters").rglob("*.yaml"))
# Federated (recipes/federated, hfm federate) and pretraining (recipes/pretrain, hfm pretrain) recipes have their
# own schemas and tests (tests/federated, tests/pretrain).
RECIPE_FILES = sorted(
    p for p in (ROOT / "recipes").rglob("*.yaml") if not {"federated", "pretrain"} & set(p.parts)
)


def _write(tmp_path: Path, data: dict, name: str = "r.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _minimal(**changes: object) -> dict:
    data = {
        "backbone": {"name": "radiology/rad-dino", "twin": True},
        "data": {"type": "synthetic", "n_classes": 2},
        "presets": ["probe/logreg"],
        "shots": [1, 2],
        "seeds": [0],
    }
    data.update(changes)
    return data


def test_shipped_files_exist() -> None:
    assert len(PRESET_FILES) >= 7
    assert (ROOT / "recipes" / "quickstart.yaml") in RECIPE_FILES


@pytest.mark.parametrize("path", PRESET_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_preset_loads_and_fits_its_tuner(path: Path) -> None:
    name = path.relative_to(ROOT / "adapters").with_suffix("").as_posix()
    preset = recipes.load_preset(name)
    assert preset.name == name
    # The folder names the tuner (``text-probe`` is a probe), or the method of a method preset.
    folder = name.split("/")[0]
    assert folder in (preset.tuner, preset.method.name) or preset.tuner.endswith(f"-{folder}")
    from hfm.tuners import get_tuner

    get_tuner(preset.tuner).config_cls.from_params(preset.tuner, preset.params)


@pytest.mark.parametrize("path", RECIPE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_recipe_validates(path: Path) -> None:
    recipe = recipes.load(path)
    assert recipe.name == path.stem or recipe.name
    recipes.check_backbone(recipe.backbone, str(path))
    recipes.check_presets(recipe, str(path))
    if "shared" not in str(recipe.data.get("root", recipe.data.get("path", ""))):
        recipes.check_data_paths(recipe, str(path))


@pytest.mark.parametrize(
    "folder", sorted({p.parent for p in RECIPE_FILES}), ids=lambda p: str(p.relative_to(ROOT))
)
def test_every_recipe_folder_has_a_readme(folder: Path) -> None:
    assert (folder / "README.md").is_file()


def test_real_recipes_follow_the_naming_scheme() -> None:
    real = [p for p in RECIPE_FILES if p.parent.parent.parent == ROOT / "recipes" and "smoke" not in p.parts]
    modalities = {p.parent.parent.name for p in real}
    assert {"radiology", "pathology", "ophthalmology", "multimodal"} <= modalities
    for path in real:
        backbone, preset = path.stem.split("__")
        assert backbone and preset


def test_minimal_recipe_and_defaults(tmp_path: Path) -> None:
    recipe = recipes.load(_write(tmp_path, _minimal(shots=["all", 4, 1])))
    assert recipe.name == "r"
    assert recipe.shots == [1, 4, "all"]  # sorted, "all" last
    assert recipe.primary_metric == "balanced_accuracy"
    assert recipe.output_dir() == Path("runs") / "r"
    assert [p.name for p in recipe.resolved_presets] == ["probe/logreg"]
    assert (
        recipe.data["type"] == "synthetic" and recipe.data["n_classes"] == 2
    )  # defaults filled by the data schema
    assert "n_per_class" in recipe.data


def test_backbone_string_shorthand_and_single_values(tmp_path: Path) -> None:
    recipe = recipes.load(
        _write(tmp_path, _minimal(backbone="pathology/uni", presets="probe/logreg", shots=4, seeds=3))
    )
    assert recipe.backbone.name == "pathology/uni" and not recipe.backbone.twin
    assert recipe.shots == [4] and recipe.seeds == [3]


@pytest.mark.parametrize(
    ("changes", "field", "hint"),
    [
        ({"shotz": [1]}, "shotz", "allowed keys: name, description, backbone"),
        (
            {"backbone": {"name": "x/y", "twins": True}},
            "backbone.twins",
            "allowed keys: name, revision, twin",
        ),
        ({"shots": [-1]}, "shots", "non-negative integers or 'all' (0: zero-shot)"),
        ({"shots": ["some"]}, "shots", ""),
        ({"seeds": [1, 1]}, "seeds", "distinct"),
        ({"metrics": ["acc"]}, "metrics", "use accuracy, balanced_accuracy"),
        ({"primary_metric": "auroc", "metrics": ["accuracy"]}, "(top level)", "primary_metric"),
        ({"presets": ["lora/nope"]}, "presets.0", "lora/r8-attn"),
        ({"data": {"type": "npz"}}, "data", "path"),
        ({"data": {"type": "weird"}}, "data", "'type' must be one of"),
        ({"data": {"type": "synthetic", "n_clases": 3}}, "data.n_clases", "unknown key"),
        ({"presets": [{"name": "mine", "tuner": "lorax"}]}, "presets.0", "unknown tuner 'lorax'"),
        ({"hub": {"repo_id": "no slash"}}, "hub.repo_id", "pattern"),
        ({"group_key": "patient"}, "(top level)", "groups are named in the data block only"),
        (
            {"presets": [{"name": "m", "tuner": "lora", "method": {"nam": "x"}}]},
            "presets.0.method.nam",
            "name",
        ),
    ],
)
def test_bad_recipes_name_file_and_field(tmp_path: Path, changes: dict, field: str, hint: str) -> None:
    path = _write(tmp_path, _minimal(**changes), name="bad.yaml")
    with pytest.raises(ConfigError) as info:
        recipes.load(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {field}"), message
    assert hint in message


def test_missing_field_and_bad_yaml(tmp_path: Path) -> None:
    data = _minimal()
    del data["shots"]
    with pytest.raises(ConfigError, match=r"r\.yaml: shots: required field is missing"):
        recipes.load(_write(tmp_path, data))
    broken = tmp_path / "broken.yaml"
    broken.write_text("backbone: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml: line \d+"):
        recipes.load(broken)
    with pytest.raises(ConfigError, match="file not found"):
        recipes.load(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="a recipe is a mapping"):
        recipes.load(tmp_path / "list.yaml")


def test_bad_preset_params_fail_validation(tmp_path: Path) -> None:
    inline = {"name": "lora/huge", "tuner": "lora", "params": {"rank": 8}}
    path = _write(tmp_path, _minimal(presets=[inline]))
    recipe = recipes.load(path)
    with pytest.raises(
        ConfigError, match=r"presets\.0 \(lora/huge\): params: .*'rank'.*allowed are r, alpha"
    ):
        recipes.check_presets(recipe, str(path))


def test_preset_method_block(tmp_path: Path) -> None:
    """A preset names its method (default supervised); an unknown method or bad parameter is one line."""
    shorthand = {"name": "lora/sup", "tuner": "lora", "method": "supervised"}
    recipe = recipes.load(_write(tmp_path, _minimal(presets=["lora/r8-attn", shorthand])))
    assert [p.method.name for p in recipe.resolved_presets] == ["supervised", "supervised"]
    recipes.check_presets(recipe, "r.yaml")
    unknown = {"name": "m/x", "tuner": "lora", "method": {"name": "fixmatchh"}}
    path = _write(tmp_path, _minimal(presets=[unknown]))
    with pytest.raises(
        ConfigError, match=r"presets\.0 \(m/x\): method: unknown method 'fixmatchh': use one of"
    ):
        recipes.check_presets(recipes.load(path), str(path))
    bad = {"name": "m/y", "tuner": "lora", "method": {"name": "supervised", "params": {"mu": 7}}}
    path = _write(tmp_path, _minimal(presets=[bad]))
    with pytest.raises(ConfigError, match=r"method: method 'supervised' has no parameter 'mu'"):
        recipes.check_presets(recipes.load(path), str(path))


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path: Path) -> None:
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    (tmp_path / "a" / "data.npz").write_bytes(b"")
    recipe = recipes.load(_write(sub, _minimal(data={"type": "npz", "path": "../data.npz"})))
    assert recipe.data["path"] == str((tmp_path / "a" / "data.npz").resolve())
    missing = recipes.load(
        _write(sub, _minimal(data={"type": "folder", "root": "../../shared/data/busi"}), "m.yaml")
    )
    with pytest.raises(ConfigError, match=r"data\.root: .*busi does not exist \(the real data sets"):
        recipes.check_data_paths(missing, "m.yaml")


def test_presets_resolve_from_cwd_adapters_and_yaml_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "adapters" / "lora"
    local.mkdir(parents=True)
    (local / "r4.yaml").write_text("tuner: lora\nparams: {r: 4}\n", encoding="utf-8")
    (tmp_path / "mine.yaml").write_text("tuner: probe\nparams: {l2: 0.01}\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert recipes.load_preset("lora/r4").params == {"r": 4}
    assert "lora/r4" in recipes.list_presets() and "probe/logreg" in recipes.list_presets()
    recipe = recipes.load(_write(tmp_path, _minimal(presets=["mine.yaml", "lora/r4", "vpt/deep-10"])))
    assert [p.tuner for p in recipe.resolved_presets] == ["probe", "lora", "vpt"]


def test_presets_found_from_the_installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside a checkout, the copy under hfm/_data/adapters answers."""
    assert (recipes.PACKAGE_ADAPTERS / "probe" / "logreg.yaml").is_file()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recipes, "REPO_ADAPTERS", tmp_path / "nowhere")
    assert recipes.load_preset("vpt/shallow-10").params["num_tokens"] == 10


def test_duplicate_preset_names_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _minimal(presets=["probe/logreg", "probe/logreg"]))
    with pytest.raises(ConfigError, match="appears twice"):
        recipes.load(path)


def test_overrides(tmp_path: Path) -> None:
    recipe = recipes.load(_write(tmp_path, _minimal(presets=["probe/logreg", "lora/r8-attn"])))
    changed = recipes.with_overrides(
        recipe, out=tmp_path / "o", shots=[8, "all"], seeds=[5], presets=["lora/r8-attn"], twin=False
    )
    assert changed.shots == [8, "all"] and changed.seeds == [5]
    assert [p.name for p in changed.resolved_presets] == ["lora/r8-attn"]
    assert changed.output_dir() == tmp_path / "o" and not changed.backbone.twin
    added = recipes.with_overrides(recipe, presets=["bitfit/default"])
    assert added.resolved_presets[0].tuner == "bitfit"
    with pytest.raises(ConfigError, match="shots"):
        recipes.with_overrides(recipe, shots=[-1])


def test_resolved_yaml_round_trips(tmp_path: Path) -> None:
    recipe = recipes.load(_write(tmp_path, _minimal(presets=["probe/logreg", "lora/r8-attn"])))
    again = tmp_path / "again" / "recipe.yaml"
    again.parent.mkdir()
    again.write_text(recipes.to_yaml(recipe), encoding="utf-8")
    reloaded = recipes.load(again)
    assert reloaded.resolved_presets == recipe.resolved_presets
    assert reloaded.data == recipe.data


def test_check_describes_the_sweep(tmp_path: Path) -> None:
    line = recipes.check(_write(tmp_path, _minimal(presets=["probe/logreg", "lora/r8-attn"], seeds=[0, 1])))
    assert "radiology/rad-dino (twin)" in line and "8 runs" in line
    with pytest.raises(ConfigError, match=r"backbone\.name: unknown backbone 'rad-dinno'"):
        recipes.check(_write(tmp_path, _minimal(backbone="rad-dinno"), "b.yaml"))


def test_copied_recipe_outside_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(ROOT / "recipes" / "quickstart.yaml", tmp_path / "q.yaml")
    monkeypatch.chdir(tmp_path)
    assert recipes.load(tmp_path / "q.yaml").resolved_presets
