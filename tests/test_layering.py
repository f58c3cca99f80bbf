"""Dependencies run one way and every concept has one home: checked on the source, so a regression fails here."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

import hfm

PACKAGE = Path(hfm.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at top level or inside functions (``from a import b`` gives ``a.b`` too)."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in _tree(path).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    return names


def test_the_hub_package_does_not_import_backbones() -> None:
    """``hfm/hub`` is the network layer under the backbones; its errors come from :mod:`hfm.errors`."""
    for path in sorted((PACKAGE / "hub").glob("*.py")):
        wrong = sorted(m for m in _imported(path) if m.startswith("hfm.backbones"))
        assert not wrong, f"{path.name} imports {wrong}"


def test_training_does_not_import_a_tuner_module() -> None:
    wrong = sorted(m for m in _imported(PACKAGE / "train.py") if m.startswith("hfm.tuners."))
    assert wrong in ([], ["hfm.tuners.base", "hfm.tuners.base.AdaptedModel"]), wrong


@pytest.mark.parametrize(
    "name",
    [
        "CONFIG_NAME",
        "score",
        "resolve_precision",
        "autocast",
        "process_info",
        "gather_rows",
        "is_subset",
        "as_dataset",
        "offline",
        "is_offline",
        "hub_cache_dir",
        "cache_dir",
        "TUNER_NAMES",
    ],
)
def test_a_concept_is_defined_in_one_module_at_most(name: str) -> None:
    owners = [str(p.relative_to(PACKAGE)) for p in MODULES if name in _top_level_names(p)]
    assert len(owners) <= 1, f"{name} is defined in {owners}"


def test_one_torch_dataset_over_a_subset() -> None:
    datasets = Counter()
    for path in MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(b, ast.Subscript) and getattr(b.value, "id", "") == "Dataset")
                or getattr(b, "id", "") == "Dataset"
                for b in node.bases
            ):
                datasets[f"{path.relative_to(PACKAGE)}:{node.name}"] += 1
    # One dataset yields labelled images, (image, label, index); the two others yield only unlabelled *views*
    # (no label): weak/strong pairs for semi-supervised methods, multi-crop views for pretraining.
    assert sorted(datasets) == [
        "data/dataset.py:ImageDataset",
        "methods/views.py:PoolViews",
        "pretrain/views.py:MultiCropDataset",
    ]


def test_precision_and_process_helpers_live_outside_embeddings() -> None:
    names = _top_level_names(PACKAGE / "embeddings.py")
    assert not names & {
        "resolve_precision",
        "autocast",
        "launched_on_cpu",
        "process_info",
        "shard",
        "gather_rows",
    }


def test_only_optional_extras_are_imported_behind_an_import_error_guard() -> None:
    """Packages hfm depends on are imported plainly; a guard would hide a broken install behind a fallback."""
    allowed = {
        "data/dicom.py",  # pydicom: the [dicom] extra
        "backbones/loaders/clip_loader.py",  # open_clip: the [clip] extra
        "backbones/loaders/common.py",  # dotted class names written in catalog loader kwargs
        "federated/__init__.py",  # flwr: the [federated] extra
        "mil/aggregators.py",  # torchmil: the [mil] extra
        "pretrain/views.py",  # lightly: the [ssl] extra
    }
    guarded = set()
    for path in MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ExceptHandler) and "ImportError" in ast.dump(node.type or ast.Name("")):
                guarded.add(str(path.relative_to(PACKAGE)))
    assert guarded <= allowed, sorted(guarded - allowed)
