"""A real Flower deployment on localhost: one SuperLink, one SuperNode per site, ``flwr run`` of hfm's app folder.

These are the commands the README documents (Flower 1.42: one HTTP port per SuperLink, ``--port`` for each
SuperNode's runtime API, the SuperLink connection named in ``$FLWR_HOME/config.toml``), run as separate
processes with the server and each site loading only what they are meant to.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import SYNTHETIC

EXECUTABLES = ("flower-superlink", "flower-supernode", "flwr")
RECIPE = {
    "name": "fed-deploy",
    "backbone": {
        "name": "pathology/uni",
        "twin": True,
    },  # the twin that loads fastest: each message is a process
    "data": SYNTHETIC,
    "split": {"scheme": "iid", "sites": 2},
    "preset": "probe/logreg",
    "shots": [2],
    "seeds": [0],
    "federation": {"rounds": 1, "local_steps": 5},  # each message starts a ClientApp process: keep it short
}
CLASSES = "blob,horizontal stripes,checkerboard"  # the synthetic source's class names, in order


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(port: int, seconds: float = 30) -> None:
    """Wait until something listens on ``port`` (the SuperLink), so the SuperNodes connect at once."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on port {port} after {seconds} s")


def _app_folder(root: Path, recipe: Path, out: Path) -> Path:
    """The Flower app folder of the README: a pyproject.toml pointing at hfm's apps."""
    app = root / "my-federation"
    app.mkdir()
    (app / "pyproject.toml").write_text(
        f"""[project]
name = "my-federation"
version = "1.0.0"
dependencies = ["hfm-hub[federated]"]

[tool.flwr.app]
publisher = "my-lab"

[tool.flwr.app.components]
serverapp = "hfm.federated.apps:server_app"
clientapp = "hfm.federated.apps:client_app"

[tool.flwr.app.config]
recipe = "{recipe}"
classes = "{CLASSES}"
k = 2
seed = 0
out = "{out}"
"""
    )
    return app


@pytest.mark.slow
@pytest.mark.skipif(
    any(shutil.which(e) is None for e in EXECUTABLES), reason="Flower's executables are not installed"
)
def test_a_superlink_and_two_supernodes_run_the_hfm_app(tmp_path: Path) -> None:
    recipe = tmp_path / "fed.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    out = tmp_path / "adapter"
    app = _app_folder(tmp_path, recipe, out)
    home = tmp_path / "flwr-home"
    home.mkdir()
    link = _free_port()
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "local"\n\n[superlink.local]\naddress = "127.0.0.1:{link}"\ninsecure = true\n'
    )
    repo = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH", "")) if p),
        "OMP_NUM_THREADS": "1",
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    commands = {
        "superlink": [
            "flower-superlink", "--insecure", "--port", str(link), "--disable-runtime-dependency-installation",
        ],
        **{
            f"site-{i}": [
                "flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}", "--port", str(_free_port()),
                "--node-config", f"recipe='{recipe}' site='site-{i}'",
            ]
            for i in (1, 2)
        },
    }  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, command in commands.items():
            with (logs / f"{name}.log").open("wb") as log:
                procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
            if name == "superlink":
                _wait_for(link)
        run = subprocess.run(
            ["flwr", "run", str(app), "local", "--stream"],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        deadline = time.monotonic() + 60  # --stream may return as the run ends; the adapter is saved last
        while not (out / "hfm_config.json").is_file() and time.monotonic() < deadline:
            time.sleep(1)
        detail = run.stdout[-3000:] + run.stderr[-2000:] + (logs / "superlink.log").read_text()[-3000:]
        assert (out / "hfm_config.json").is_file(), detail
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    import hfm

    config = json.loads((out / "hfm_config.json").read_text())
    fed = config["federation"]
    assert fed["engine"] == "flwr (SuperLink)"
    assert fed["aggregated_rounds"] == [1]
    assert [r["round"] for r in fed["round_metrics"]] == [1]
    assert fed["sites"] == [{"site": "site-1"}, {"site": "site-2"}]
    assert all(r["train_loss"] > 0 for r in fed["round_metrics"])
    adapter = hfm.load_adapter(out)
    assert adapter.num_classes == 3
