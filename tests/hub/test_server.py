"""The local Hub answers huggingface_hub, timm and peft the way the Hub does (for the routes they use)."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
import timm
import torch
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

from hub.server import HubServer, git_blob_oid


def test_create_whoami_and_private_flag(hub_server: HubServer) -> None:
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    assert api.whoami()["name"] == "tester"
    api.create_repo("lab/a", private=True)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("lab/a")
    assert err.value.response.status_code == 409
    api.create_repo("lab/a", exist_ok=True)
    assert api.model_info("lab/a").private is True
    # a private repo is invisible without a token
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub_server.url, token=False).model_info("lab/a")


def test_resolve_head_and_get_headers(hub_server: HubServer, tmp_path: Path) -> None:
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    api.create_repo("lab/b")
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="dir/x.txt", repo_id="lab/b")
    sha = api.model_info("lab/b").sha
    head = httpx2.head(f"{hub_server.url}/lab/b/resolve/main/dir/x.txt")
    assert head.headers["ETag"] == f'"{git_blob_oid(b"hello")}"'
    assert head.headers["X-Repo-Commit"] == sha and head.headers["Content-Length"] == "5"
    assert httpx2.get(f"{hub_server.url}/lab/b/resolve/{sha}/dir/x.txt").content == b"hello"
    assert httpx2.head(f"{hub_server.url}/lab/b/resolve/main/nope").headers["X-Error-Code"] == "EntryNotFound"
    path = hf_hub_download("lab/b", "dir/x.txt", endpoint=hub_server.url, cache_dir=tmp_path)
    assert Path(path).read_bytes() == b"hello"
    top = [e.path for e in api.list_repo_tree("lab/b")]
    assert top == [".gitattributes", "dir"]
    assert [e.path for e in api.list_repo_tree("lab/b", recursive=True)][-1] == "dir/x.txt"


def test_fault_injection_counts_down(hub_server: HubServer) -> None:
    hub_server.fail("info", times=1, status=502)
    api = HfApi(endpoint=hub_server.url, token=hub_server.token)
    api.create_repo("lab/c")
    with pytest.raises(HfHubHTTPError) as err:
        api.model_info("lab/c")
    assert err.value.response.status_code == 502
    assert api.model_info("lab/c").id == "lab/c"


def test_timm_push_to_hf_hub(hub_server: HubServer, tmp_path: Path) -> None:
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=2,
                              embed_dim=64, num_heads=2, num_classes=3)  # fmt: skip
    timm.models.push_to_hf_hub(model, "lab/timm-vit", private=True, safe_serialization=True)
    files = hub_server.files("lab/timm-vit")
    assert {"config.json", "model.safetensors", "README.md"} <= set(files)
    assert hub_server.repo("lab/timm-vit").private
    again = timm.create_model("hf-hub:lab/timm-vit", pretrained=True)
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(again.eval()(x), model.eval()(x))


def test_peft_push_to_hub(hub_server: HubServer) -> None:
    import copy

    import peft

    base = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    fresh = copy.deepcopy(base)
    model = peft.get_peft_model(base, peft.LoraConfig(r=2, target_modules=["0"], init_lora_weights=False))
    model.push_to_hub("lab/peft-lora", private=True)
    files = hub_server.files("lab/peft-lora")
    assert {"adapter_config.json", "adapter_model.safetensors"} <= set(files)
    loaded = peft.PeftModel.from_pretrained(fresh, "lab/peft-lora")
    x = torch.rand(2, 8)
    torch.testing.assert_close(loaded(x), model(x))
