"""Shared fixtures. Tests never touch the network: the Hub is offline and its caches are temporary."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Set before anything imports huggingface_hub (it reads these at import time).
_SESSION_HOME = Path(tempfile.mkdtemp(prefix="hfm-tests-hf-home-"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = str(_SESSION_HOME)
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ.setdefault("HFM_CACHE", str(_SESSION_HOME / "hfm-cache"))
os.environ.pop("HF_TOKEN", None)
# Twins are tiny: one thread each is fastest and keeps the suite steady on a 2-core, possibly busy, machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

SHARED_DATA = Path(os.environ.get("HFM_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test: Hub offline, Hugging Face and hfm caches in a fresh temporary folder, no token."""
    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setenv("HFM_CACHE", str(home / "hfm"))
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture
def shared_data() -> Path:
    """The real medical image sets beside the checkout; skips the test cleanly when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set HFM_SHARED_DATA)")
    return SHARED_DATA
