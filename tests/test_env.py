"""Offline mode and cache folders are decided in one place, read at call time."""

from __future__ import annotations

from pathlib import Path

import pytest

from hfm import env
from hfm.backbones.twins import twin_cache_dir
from hfm.embeddings import cache_root


@pytest.mark.parametrize("variable", env.OFFLINE_VARIABLES)
def test_any_offline_variable_makes_hfm_offline(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    for name in env.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not env.offline()
    monkeypatch.setenv(variable, "yes")
    assert env.offline() and env.offline_variable() == variable
    monkeypatch.setenv(variable, "0")
    assert not env.offline()


def test_every_hfm_cache_follows_one_rule(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HFM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert twin_cache_dir() == tmp_path / "xdg" / "hfm" / "twins"
    assert cache_root() == tmp_path / "xdg" / "hfm" / "embeddings"
    assert env.hfm_cache_dir("datasets") == tmp_path / "xdg" / "hfm" / "datasets"
    monkeypatch.setenv("HFM_CACHE", str(tmp_path / "mine"))
    assert twin_cache_dir() == tmp_path / "mine" / "twins"
    assert cache_root() == tmp_path / "mine" / "embeddings"


def test_hub_cache_follows_huggingface_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert env.hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.delenv("HF_HOME")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert env.hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert env.hub_cache_dir() == tmp_path / "hub"
