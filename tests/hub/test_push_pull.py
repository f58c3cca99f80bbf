"""Push to a local Hub, pull back, predict: identical predictions, private by default, nothing leaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hfm
from hfm.cli import main
from hfm.errors import HubError
from hfm.hub.pull import download_adapter, pull
from hfm.hub.push import push
from hub.conftest import go_offline, make_adapter, tree_digest
from hub.server import HubServer


def _images() -> torch.Tensor:
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("tuner", ["probe", "lora", "vpt"])
def test_push_pull_predict_roundtrip(tuner: str, adapters: dict[str, Path], hub_server: HubServer) -> None:
    local = hfm.load_adapter(adapters[tuner]).eval()
    result = push(adapters[tuner], f"lab/{tuner}-adapter")
    assert result.created and result.commit == hub_server.repo(f"lab/{tuner}-adapter").branches["main"]
    remote = hfm.load_adapter(f"lab/{tuner}-adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            remote.predict_proba(_images()), local.predict_proba(_images()), rtol=0, atol=0
        )
    assert type(remote).__name__ == type(local).__name__


def test_one_private_commit_with_card_and_no_token(adapters: dict[str, Path], hub_server: HubServer) -> None:
    result = push(adapters["lora"], "lab/lora-private")
    repo = hub_server.repo("lab/lora-private")
    assert repo.private is True
    assert len(hub_server.commit_payloads) == 1  # one commit
    files = hub_server.files("lab/lora-private")
    assert {
        "README.md",
        "hfm_config.json",
        "adapter_config.json",
        "adapter_model.safetensors",
        "head.safetensors",
    } <= set(files)
    assert "README.md" not in [p for p, _ in result.files if p != "README.md"]
    assert not any(name.endswith((".bin", ".pt", ".pkl", ".png")) for name in files)
    for name, content in files.items():
        assert hub_server.token.encode() not in content, name
        assert b"/home/someone" not in content, name  # absolute local paths are redacted
    assert "recipe smoke, k=4, seeds 0" in repo.commits[result.commit]["message"]  # type: ignore[index]
    assert "hfm: lora adapter (lora/default)" in repo.commits[result.commit]["message"]  # type: ignore[index]
    # the local folder still has its path, only the upload was redacted
    assert "/home/someone" in (adapters["lora"] / "hfm_config.json").read_text()


def test_public_flag_and_branch(adapters: dict[str, Path], hub_server: HubServer) -> None:
    push(adapters["probe"], "lab/probe-public", public=True, revision="exp1")
    repo = hub_server.repo("lab/probe-public")
    assert repo.private is False
    assert "hfm_config.json" in hub_server.files("lab/probe-public", revision="exp1")
    assert "hfm_config.json" not in hub_server.files("lab/probe-public", revision="main")
    assert download_adapter("lab/probe-public", revision="exp1").joinpath("hfm_config.json").is_file()


def test_sweep_push_holds_plot_metrics_and_episodes(sweep: Path, hub_server: HubServer) -> None:
    result = push(sweep, "lab/sweep")
    files = set(hub_server.files("lab/sweep"))
    assert {"label_efficiency.png", "recipe.yaml", "summary.json", "environment.json", "README.md"} <= files
    assert {
        f"runs/probe/default/k4/seed{s}/{n}" for s in (0, 1) for n in ("metrics.json", "episode.json")
    } <= files
    assert not any(f.endswith("predictions.csv") for f in files)  # per-image ids stay local
    assert b"[local path]/data.npz" in hub_server.files("lab/sweep")["recipe.yaml"]
    assert result.redactions["recipe.yaml"] == 1


def test_recipe_hub_block_gives_repo_and_visibility(tmp_path: Path, hub_server: HubServer) -> None:
    import shutil

    import yaml

    from .conftest import make_sweep

    root = make_sweep(tmp_path / "sweep")
    recipe = yaml.safe_load((root / "recipe.yaml").read_text())
    with pytest.raises(HubError, match="--repo ORG/NAME or set hub.repo_id"):
        push(root)
    recipe["hub"] = {"repo_id": "lab/from-recipe", "private": False}
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    result = push(root)
    assert result.repo_id == "lab/from-recipe"
    assert hub_server.repo("lab/from-recipe").private is False
    shutil.rmtree(root)


def test_dry_run_lists_files_and_sends_nothing(
    sweep: Path, hub_server: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    result = push(sweep, "lab/dry", dry_run=True)
    assert hub_server.requests == []
    sizes = dict(result.files)
    assert (
        sizes["hfm_config.json"] > 0
        and sizes["label_efficiency.png"] == (sweep / "label_efficiency.png").stat().st_size
    )
    assert main(["push", str(sweep), "--repo", "lab/dry", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for path, size in result.files:
        assert f"{size:>12,d}  {path}" in out
    assert "dry run: nothing sent to lab/dry (private, branch main)" in out
    assert hub_server.requests == []


def test_commit_500_is_retried(adapters: dict[str, Path], hub_server: HubServer) -> None:
    hub_server.fail("commit", times=2, status=500)
    result = push(adapters["probe"], "lab/flaky", backoff=0.01)
    assert hub_server.count("POST", "/commit/") == 3
    assert hub_server.repo("lab/flaky").branches["main"] == result.commit
    assert len(hub_server.repo("lab/flaky").commits) == 2  # initial commit + exactly one push


def test_connection_reset_is_retried(adapters: dict[str, Path], hub_server: HubServer) -> None:
    hub_server.fail("commit", times=1, status=0)
    push(adapters["probe"], "lab/reset", backoff=0.01)
    assert "hfm_config.json" in hub_server.files("lab/reset")


def test_persistent_failure_one_line_and_no_local_loss(
    adapters: dict[str, Path],
    hub_server: HubServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waits: list[float] = []
    monkeypatch.setattr("hfm.hub._net._sleep", waits.append)
    before = tree_digest(adapters["lora"])
    hub_server.fail("commit", times=100, status=503)
    with pytest.raises(HubError) as err:
        push(adapters["lora"], "lab/down", attempts=3, backoff=0.01)
    message = str(err.value)
    assert "\n" not in message and "HTTP 503" in message
    assert "was created on the Hub but no files were committed" in message and "unchanged" in message
    assert tree_digest(adapters["lora"]) == before
    assert hub_server.count("POST", "/commit/") == 3
    assert waits == [0.01, 0.02]  # exponential back-off between the three tries
    assert main(["push", str(adapters["lora"]), "--repo", "lab/down"]) == 2
    assert waits[2:] == [1.0, 2.0, 4.0, 8.0]  # the CLI's default: five tries
    err_line = capsys.readouterr().err.strip()
    assert err_line.startswith("hfm: error: push to lab/down failed") and "\n" not in err_line
    assert "nothing reached the Hub" in err_line  # the repo existed already this time
    assert hub_server.token not in err_line


def test_no_derivatives_base_refuses_without_ack(tmp_path: Path, hub_server: HubServer) -> None:
    uni = make_adapter(tmp_path / "uni", "probe", "pathology/uni")
    with pytest.raises(HubError, match="cc-by-nc-nd-4.0.*--license-ack"):
        push(uni, "lab/uni-probe")
    assert hub_server.requests == []
    assert main(["push", str(uni), "--repo", "lab/uni-probe"]) == 2
    push(uni, "lab/uni-probe", license_ack=True)
    card = hub_server.files("lab/uni-probe")["README.md"].decode()
    assert (
        "license: cc-by-nc-nd-4.0" in card
        and "**License acknowledged:**" in card
        and "**Non-commercial:**" in card
    )


def test_missing_token(
    adapters: dict[str, Path], hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(Path(hub_server.root) / "no-token"))
    with pytest.raises(HubError, match="no Hub token"):
        push(adapters["probe"], "lab/x")


def test_token_inside_a_file_refuses(
    tmp_path: Path, adapters: dict[str, Path], hub_server: HubServer
) -> None:
    import shutil

    folder = tmp_path / "a"
    shutil.copytree(adapters["probe"], folder)
    config = json.loads((folder / "hfm_config.json").read_text())
    config["note"] = f"token {hub_server.token}"
    (folder / "hfm_config.json").write_text(json.dumps(config))
    with pytest.raises(HubError, match="contains your Hub token") as err:
        push(folder, "lab/leak")
    assert hub_server.token not in str(err.value)
    assert hub_server.count("POST", "/commit/") == 0


def test_pull_offline_from_cache(
    adapters: dict[str, Path], hub_server: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    push(adapters["probe"], "lab/cached")
    online = pull("lab/cached")
    n_requests = len(hub_server.requests)
    go_offline(monkeypatch)
    assert pull("lab/cached") == online
    assert len(hub_server.requests) == n_requests  # nothing asked of the server
    with torch.no_grad():
        torch.testing.assert_close(
            hfm.load_adapter("lab/cached").eval().predict_proba(_images()),
            hfm.load_adapter(adapters["probe"]).eval().predict_proba(_images()),
        )
    with pytest.raises(HubError, match="not in the local cache"):
        pull("lab/never-pushed")


def test_endpoint_read_at_call_time(
    adapters: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mirror named in HF_ENDPOINT after huggingface_hub was imported is used (constants left alone)."""
    mirror = HubServer(tmp_path / "mirror").start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", mirror.url)
        monkeypatch.setenv("HF_TOKEN", mirror.token)
        monkeypatch.setenv("HF_HUB_OFFLINE", "0")
        monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
        push(adapters["vpt"], "lab/mirrored")
        assert "hfm_config.json" in mirror.files("lab/mirrored")
        assert (pull("lab/mirrored") / "weights.safetensors").is_file()
    finally:
        mirror.stop()


def test_cli_pull_and_errors(
    adapters: dict[str, Path], hub_server: HubServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["push", str(adapters["probe"]), "--repo", "lab/cli"]) == 0
    assert "pushed to lab/cli: created private repository, commit" in capsys.readouterr().out
    assert main(["pull", "lab/cli"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert (folder / "hfm_config.json").is_file() and (folder / "README.md").is_file()
    assert main(["pull", "lab/missing"]) == 2
    assert "lab/missing not found" in capsys.readouterr().err
    assert main(["pull", "lab/cli", "--revision", "nope"]) == 2
    assert "no revision 'nope'" in capsys.readouterr().err
    assert main(["push", str(adapters["probe"]), "--repo", "not a repo"]) == 2


@pytest.mark.slow
def test_runner_sweep_push_pull_predict(tmp_path: Path, hub_server: HubServer) -> None:
    """End to end: a real (tiny) sweep from the runner, pushed, pulled and reloaded to the same predictions."""
    recipe = {
        "name": "hub-e2e",
        "backbone": {"name": "pathology/hibou-b", "twin": True},
        "data": {"type": "synthetic", "n_classes": 3, "n_per_class": 6, "n_val_per_class": 3,
                 "n_test_per_class": 4, "size": 32},
        "presets": ["probe/logreg", "lora/r8-attn"],
        "shots": [1],
        "seeds": [0, 1],
        "bootstrap": 0,
        "training": {"max_steps": 2, "epochs": 1},
    }  # fmt: skip
    out = tmp_path / "sweep"
    result = hfm.run(recipe, out=out, progress=False, verbose=False)
    assert result.ok, result.failed
    pushed = push(out, "lab/e2e", preset="lora/r8-attn")
    files = hub_server.files("lab/e2e")
    assert {"adapter_model.safetensors", "label_efficiency.png", "README.md", "summary.json"} <= set(files)
    assert "k=1, seeds 0,1" in pushed.commit_message and "recipe hub-e2e" in pushed.commit_message
    card = files["README.md"].decode()
    assert "library_name: peft" in card and "| lora/r8-attn | 1 |" in card and "| probe/logreg | 1 |" in card
    local = hfm.load_adapter(out / "lora/r8-attn/k1/seed0/adapter").eval()
    remote = hfm.load_adapter("lab/e2e").eval()
    with torch.no_grad():
        torch.testing.assert_close(
            remote.predict_proba(_images()), local.predict_proba(_images()), rtol=0, atol=0
        )


def test_cli_readme_commands(
    adapters: dict[str, Path], hub_server: HubServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands of the README's "Share your adapter" section, as written there."""
    from PIL import Image

    folder = str(adapters["lora"])
    assert main(["card", folder, "--repo", "my-lab/crc-lora"]) == 0
    assert main(["push", folder, "--repo", "my-lab/crc-lora", "--dry-run"]) == 0
    assert main(["push", folder, "--repo", "my-lab/crc-lora"]) == 0
    assert main(["push", folder, "--repo", "my-lab/crc-lora", "--revision", "v2", "--public"]) == 0
    assert hub_server.repo("my-lab/crc-lora").private  # an existing repository keeps its visibility
    assert main(["pull", "my-lab/crc-lora", "--revision", "v2"]) == 0
    image = tmp_path / "patch.png"
    Image.new("RGB", (40, 40), (200, 80, 120)).save(image)
    capsys.readouterr()
    assert main(["predict", "my-lab/crc-lora", str(image), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["predicted"] in ("tumor", "stroma", "normal")


def test_top_level_push_and_pull_are_the_functions() -> None:
    import hfm.hub.pull  # noqa: F401 - what hfm.load_adapter does for a repo id
    import hfm.hub.push  # noqa: F401

    assert hfm.push is push and hfm.pull is pull
