"""Fixtures for backbone tests: a Hub cache pre-populated with twins under real-looking repo ids."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from hfm.backbones.catalog import get_spec
from hfm.backbones.twins import write_twin


def hub_cache() -> Path:
    """The Hugging Face Hub cache of the current test (set per test by the top-level conftest)."""
    return Path(os.environ["HF_HUB_CACHE"])


@pytest.fixture
def cached_timm_repo() -> tuple[str, Path]:
    """A timm model (UNI's twin) cached as ``acme/path-vit`` in the Hub cache: ``(repo_id, snapshot)``."""
    repo = "acme/path-vit"
    return repo, write_twin(get_spec("pathology/uni"), hub_cache(), repo_id=repo)


@pytest.fixture
def cached_transformers_repo() -> tuple[str, Path]:
    """A transformers DINOv2 model (RAD-DINO's twin) cached as ``acme/chest-dino``: ``(repo_id, snapshot)``."""
    repo = "acme/chest-dino"
    return repo, write_twin(get_spec("radiology/rad-dino"), hub_cache(), repo_id=repo)


@pytest.fixture
def closed_port() -> int:
    """A local TCP port nothing listens on (a Hub endpoint that refuses connections)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
