"""resolve_snapshot: cache hits offline, fast failures offline or unreachable, Hub refusals in one line."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from hfm.errors import BackboneAccessError, BackboneNotCachedError
from hfm.hub import download
from hfm.hub.download import endpoint_reachable, resolve_snapshot
from hfm.policy import LoadPolicy


def test_cached_snapshot_resolves_offline(cached_timm_repo: tuple[str, Path]) -> None:
    repo, snapshot = cached_timm_repo
    resolved = resolve_snapshot(repo)
    assert resolved.path == snapshot and resolved.commit == snapshot.name


def test_offline_and_not_cached_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(BackboneNotCachedError) as info:
        resolve_snapshot("acme/not-cached", name="acme/not-cached")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "HF_HUB_OFFLINE" in message and "hfm backbones download acme/not-cached" in message
    assert "HF_ENDPOINT" in message and "\n" not in message


def test_unreachable_endpoint_fails_fast(monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    start = time.monotonic()
    with pytest.raises(BackboneNotCachedError, match="unreachable"):
        resolve_snapshot("acme/not-cached")
    assert time.monotonic() - start < 5


def test_unreachable_endpoint_still_uses_the_cache(
    monkeypatch: pytest.MonkeyPatch, closed_port: int, cached_timm_repo: tuple[str, Path]
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    assert resolve_snapshot(cached_timm_repo[0]).path == cached_timm_repo[1]


def test_endpoint_reachable_sees_a_listening_port(closed_port: int) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert endpoint_reachable(f"http://127.0.0.1:{server.getsockname()[1]}")
    assert not endpoint_reachable(f"http://127.0.0.1:{closed_port}")


def _online(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """Pretend the Hub is reachable and make the download raise ``error``."""
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(download, "endpoint_reachable", lambda *a, **k: True)

    def fail(*args: object, **kwargs: object) -> str:
        raise error

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fail)


@pytest.mark.parametrize("variable", ["HFM_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_every_offline_switch_stops_backbone_downloads(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """One decision for all of hfm: HFM_OFFLINE (which also stops MedMNIST downloads) stops the Hub too."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    _online(monkeypatch, AssertionError("unused"))

    def cache_only(*args: object, local_files_only: bool = False, **kwargs: object) -> str:
        assert local_files_only, "the network was used although hfm is offline"
        raise LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cache_only)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(BackboneNotCachedError, match=f"{variable} is set"):
        resolve_snapshot("acme/not-cached")


def _http_error(cls: type[Exception], status: int) -> Exception:
    """A huggingface_hub HTTP error without a live response (its HTTP library differs across versions)."""
    err = cls.__new__(cls)
    Exception.__init__(err, f"{status} Client Error: refused")
    return err


def test_gated_without_token_says_how_to_get_access(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import GatedRepoError

    _online(monkeypatch, _http_error(GatedRepoError, 401))
    monkeypatch.setattr(download, "_has_token", lambda token: False)
    with pytest.raises(BackboneAccessError, match="is gated: accept its terms") as info:
        resolve_snapshot("MahmoodLab/UNI", name="pathology/uni")
    assert "HF_TOKEN" in str(info.value)


def test_gated_with_token_but_no_access(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import GatedRepoError

    _online(monkeypatch, _http_error(GatedRepoError, 403))
    with pytest.raises(BackboneAccessError, match="no access yet: request access"):
        resolve_snapshot("MahmoodLab/UNI", token="hf_fake", name="pathology/uni")


def test_missing_repo_and_revision(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    _online(monkeypatch, _http_error(RepositoryNotFoundError, 404))
    with pytest.raises(BackboneAccessError, match="not found"):
        resolve_snapshot("acme/nope")
    _online(monkeypatch, _http_error(RevisionNotFoundError, 404))
    with pytest.raises(BackboneAccessError, match="revision 'v9' of acme/nope does not exist"):
        resolve_snapshot("acme/nope", policy=LoadPolicy(revision="v9"))


def test_download_fetches_only_configs_and_safetensors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    seen: dict[str, object] = {}
    folder = tmp_path / "models--acme--m" / "snapshots" / ("a" * 40)
    folder.mkdir(parents=True)

    def fake(repo_id: str, **kwargs: object) -> str:
        seen.update(kwargs, repo_id=repo_id)
        return str(folder)

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(download, "endpoint_reachable", lambda *a, **k: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    snapshot = resolve_snapshot("acme/m", policy=LoadPolicy(revision="main"))
    assert snapshot.commit == "a" * 40
    patterns = seen["allow_patterns"]
    assert isinstance(patterns, list) and "*.safetensors" in patterns
    assert not any(p.endswith((".bin", ".pt", ".pth", ".py")) for p in patterns)
    assert seen["revision"] == "main"
