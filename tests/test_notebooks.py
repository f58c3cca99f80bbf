"""The notebooks under ``notebooks/``: committed without outputs, and executed top to bottom, offline.

Notebooks are one of the three ways hfm is used, so CI runs them, not just lints them: each one executes with
nbclient in a fresh kernel of *this* interpreter (the ``python3`` kernel spec resolves ``python`` to
``sys.executable``), in a temporary working folder, with the Hub offline and temporary caches (``conftest.py``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
EXPECTED = {"01_quickstart.ipynb", "02_compare_backbones.ipynb", "03_publish_and_reload.ipynb"}

SHARED_DATA = Path(os.environ.get("HFM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# The budget: each notebook within 3 minutes on 2 CPU cores.
BUDGET_S = 180.0


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_the_three_notebooks_exist() -> None:
    assert {p.name for p in NOTEBOOKS} >= EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} carry outputs or execution counts; strip them "
        "(`jupyter nbconvert --clear-output --inplace notebooks/*.ipynb`)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_first_cell_holds_tagged_parameters(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    first_code = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert "parameters" in first_code.metadata.get("tags", []), (
        f"{path.name}: tag the first code cell 'parameters'"
    )
    assert "TWIN" in first_code.source, f"{path.name}: the parameters cell should offer the twin/real switch"


def _client(nb: nbformat.NotebookNode, cwd: Path, timeout: int) -> NotebookClient:
    return NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(cwd)}},
        allow_errors=False,
    )


@pytest.fixture
def notebook_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The kernel inherits this environment: Hub offline (conftest), no Hub configured, real data when present."""
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))  # ignore a token saved by `hf auth login`
    if SHARED_DATA.is_dir():
        monkeypatch.setenv("HFM_SHARED_DATA", str(SHARED_DATA))
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_kernel_runs_this_interpreter(notebook_env: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import os, sys\nprint(sys.executable)\nprint(os.getcwd())")]
    _client(nb, notebook_env, timeout=60).execute()
    executable, cwd = nb.cells[0].outputs[0]["text"].split()
    assert Path(executable).resolve() == Path(sys.executable).resolve()
    assert Path(cwd).resolve() == notebook_env.resolve()


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes_offline(path: Path, notebook_env: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    _client(nb, notebook_env, timeout=int(BUDGET_S)).execute()
    elapsed = time.perf_counter() - start
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "error"
    ]
    assert not errors
    images = sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if "image/png" in out.get("data", {})
    )
    assert images >= 1, f"{path.name} displayed no inline plot"
    assert elapsed < BUDGET_S, f"{path.name} took {elapsed:.0f} s (budget {BUDGET_S:.0f} s on 2 cores)"
    sys.stderr.write(f"\n{path.name}: executed in {elapsed:.1f} s\n")
