"""The sweep layout: one definition of run folders, names and the order of k, read back by every consumer."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfm import sweep
from hfm.hub.folders import inspect_folder


def test_grid_order_names_and_folders(tmp_path: Path) -> None:
    runs = sweep.grid(["probe/logreg", "lora/r8-attn"], ["all", 8, 1], [1, 0])
    assert [r.name for r in runs[:4]] == [
        "probe/logreg/k1/seed1",
        "probe/logreg/k1/seed0",
        "probe/logreg/k8/seed1",
        "probe/logreg/k8/seed0",
    ]
    assert runs[5].name == "probe/logreg/kall/seed0" and runs[6].preset == "lora/r8-attn"
    key = runs[2]
    assert key.folder(tmp_path) == tmp_path / "probe" / "logreg" / "k8" / "seed1"
    assert key.folder(tmp_path) == sweep.run_dir(tmp_path, "probe/logreg", 8, 1)
    assert key.checkpoint_dir(tmp_path) == tmp_path / ".checkpoints" / "probe" / "logreg" / "k8" / "seed1"
    assert key.failure_file(tmp_path).name == "probe__logreg__k8__seed1.txt"


@pytest.mark.parametrize("k", [1, 16, "all"])
def test_run_paths_round_trip(tmp_path: Path, k: int | str) -> None:
    key = sweep.RunKey("vpt/shallow-10", k, 3)  # type: ignore[arg-type]
    relative = key.folder(tmp_path).relative_to(tmp_path).as_posix()
    assert sweep.parse_run_path(relative) == key
    assert sweep.parse_run_path("vpt/shallow-10/k1") is None


def test_k_order_is_numeric_with_all_last() -> None:
    assert sweep.sort_shots([16, "all", 2, 1]) == [1, 2, 16, "all"]
    assert sorted(["16", "2", "all"], key=sweep.k_order) == ["2", "16", "all"]


def test_hub_folders_read_the_layout_the_sweep_writes(sweep_folder: Path) -> None:
    pub = inspect_folder(sweep_folder)
    assert pub.kind == "sweep" and pub.k == 4  # the largest k, read back through hfm.sweep
    assert {(r.preset, r.k, r.seed) for r in pub.runs} == {
        (k.preset, k.k, k.seed) for k in sweep.grid(["probe/default"], [1, 4], [0, 1])
    }


@pytest.fixture
def sweep_folder(tmp_path: Path) -> Path:
    from hub.conftest import make_sweep

    return make_sweep(tmp_path / "sweep")


def test_a_sampler_adds_a_folder_and_the_default_keeps_todays() -> None:
    from hfm.sweep import DEFAULT_SAMPLER, RunKey, grid, parse_run_path

    out = Path("OUT")
    assert RunKey("lora/r8", 4, 1).folder(out) == out / "lora" / "r8" / "k4" / "seed1"
    key = RunKey("lora/r8", 4, 1, "typiclust")
    assert key.folder(out) == out / "lora" / "r8" / "k4" / "typiclust" / "seed1"
    assert key.name == "lora/r8/k4/typiclust/seed1"
    assert key.failure_file(out).name == "lora__r8__k4__typiclust__seed1.txt"
    assert RunKey("lora/r8", 4, 1).failure_file(out).name == "lora__r8__k4__seed1.txt"
    assert parse_run_path("lora/r8/k4/typiclust/seed1") == key
    assert parse_run_path("lora/r8/k4/seed1") == RunKey("lora/r8", 4, 1, DEFAULT_SAMPLER)
    runs = grid(["p"], [2, 1], [0, 1], samplers=["random", "typiclust"])
    assert [(r.k, r.sampler, r.seed) for r in runs[:4]] == [
        (1, "random", 0),
        (1, "random", 1),
        (1, "typiclust", 0),
        (1, "typiclust", 1),
    ]
