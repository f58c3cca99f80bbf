"""Run-parallel sweeps (:mod:`hfm.parallel`): the mode choice, the claim queue, training alone inside a launch,
and whole sweeps on two CPU processes (torchrun, gloo) or two workers of one process, against one process.

The slow tests launch this file as the entry point (``python tests/test_parallel.py LOG -- hfm run ...``): it
registers ``test-counted``, a supervised method that appends one line per run it trains to LOG (so "every run
exactly once" is counted, not inferred) and, when ``HFM_TEST_CRASH`` names a marker file that does not exist yet,
kills the process of rank 1 in its first run (a crashed process); with ``HFM_TEST_WORKERS=2`` a run waits
until two workers have each started one, so the test sees both at work whatever the machine's load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from hfm.errors import ConfigError
from hfm.parallel import ClaimQueue, choose_mode
from hfm.sweep import RunKey, grid

BACKBONE = "pathology/kaiko-vitb16"
ROOT = Path(__file__).resolve().parents[1]


def _register() -> None:
    from hfm.methods import register_method
    from hfm.methods.supervised import Supervised

    class Counted(Supervised):
        def fit(self, model, ctx):  # type: ignore[no-untyped-def]
            crash = os.environ.get("HFM_TEST_CRASH")
            if crash and os.environ.get("RANK") == "1" and not Path(crash).exists():
                Path(crash).write_text("crashed")
                os._exit(3)
            log = Path(os.environ["HFM_TEST_LOG"])
            with log.open("a", encoding="utf-8") as handle:
                handle.write(f"{model.tuner_name} k{len(ctx.draw.indices)} seed{ctx.seed} pid{os.getpid()}\n")
            workers = int(os.environ.get("HFM_TEST_WORKERS", "1"))
            for _ in range(600):  # hold the first runs until every worker trains one (at most a minute)
                if len({line.split()[3] for line in log.read_text().splitlines()}) >= workers:
                    break
                time.sleep(0.1)
            return super().fit(model, ctx)

    register_method("test-counted")(Counted)


# -- the mode ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("parallel", "world", "per_device", "runs", "mode"),
    [
        ("auto", 1, 1, 8, "single"),
        ("auto", 2, 1, 8, "runs"),
        ("auto", 2, 1, 1, "data"),  # one run left: all processes train it together
        ("auto", 1, 2, 8, "runs"),  # two workers of one process
        ("auto", 1, 2, 1, "single"),
        ("data", 2, 1, 8, "data"),
        ("data", 1, 1, 8, "single"),
        ("runs", 2, 1, 1, "runs"),
        ("runs", 1, 1, 8, "single"),
    ],
)
def test_choose_mode(parallel: str, world: int, per_device: int, runs: int, mode: str) -> None:
    assert choose_mode(parallel, world=world, runs_per_device=per_device, runs=runs) == mode


def test_choose_mode_mistakes() -> None:
    with pytest.raises(ConfigError, match="parallel must be one of auto, runs, data"):
        choose_mode("fast", world=2, runs_per_device=1, runs=2)
    with pytest.raises(ConfigError, match="drop --parallel data"):
        choose_mode("data", world=2, runs_per_device=2, runs=2)
    with pytest.raises(ConfigError, match="at least 1"):
        choose_mode("auto", world=2, runs_per_device=0, runs=2)


# -- the queue --------------------------------------------------------------------------------------------------
def test_queue_hands_each_run_out_once(tmp_path: Path) -> None:
    runs = grid(["probe/logreg", "lora/r8-attn"], [1, 2, 4, "all"], list(range(6)))
    taken: dict[str, list[RunKey]] = {}

    def worker(who: str) -> None:
        queue = ClaimQueue(tmp_path, "tok", runs)  # each worker its own queue object, as in its own process
        mine = taken.setdefault(who, [])
        while (key := queue.claim(who)) is not None:
            mine.append(key)
            queue.finish(key, who, None if key.seed else "boom")

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [key for keys in taken.values() for key in keys]
    assert sorted(claimed, key=runs.index) == runs  # every run exactly once
    queue = ClaimQueue(tmp_path, "tok", runs)
    outcomes = queue.outcomes()
    assert set(outcomes) == set(runs)
    assert all((outcomes[key]["error"] == "boom") == (key.seed == 0) for key in runs)
    for who, keys in taken.items():
        assert queue.claimed_by(who) == keys
    assert ClaimQueue(tmp_path, "other", runs).claim("w9") == runs[0]  # another invocation starts afresh


# -- one run alone inside a launch -----------------------------------------------------------------------------
def test_fit_alone_ignores_the_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside ``run_alone`` neither extraction nor training touch the process group the launcher announced."""
    from test_distributed import _toy

    import hfm
    from hfm.devices import process_info, run_alone
    from hfm.embeddings import extract
    from hfm.train import TrainConfig, fit

    torch.manual_seed(0)
    model = hfm.get_tuner("lora")(hfm.load_backbone(BACKBONE, twin=True), 3)
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(name, value)
    with run_alone("cpu"):
        assert process_info() == (0, 1, torch.device("cpu"))
        emb = extract(model.backbone, _toy(), batch_size=4, progress=False, cache=False)
        result = fit(model, _toy(), _toy(5), TrainConfig(max_steps=2, batch_size=4, progress=False))
    assert emb.shape[0] == 9
    assert result.steps == 2
    assert not isinstance(model, torch.nn.parallel.DistributedDataParallel)


# -- whole sweeps ----------------------------------------------------------------------------------------------
def _recipe(tmp_path: Path) -> Path:
    import yaml

    counted = {"method": "test-counted"}
    recipe = {
        "name": "scale",
        "backbone": {"name": BACKBONE, "twin": True},
        "data": {"type": "synthetic", "n_classes": 2, "n_per_class": 6, "seed": 0},
        "presets": [
            {"name": "probe/c", "tuner": "probe", "params": {"class_weight": "balanced"}, **counted},
            {"name": "lora/c", "tuner": "lora", "params": {"r": 4}, "training": {"lr": 5e-4}, **counted},
        ],
        "shots": [2],
        "seeds": [0, 1, 2],
        "training": {"max_steps": 2, "batch_size": 2},
        "bootstrap": 20,
    }
    path = tmp_path / "scale.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def _hfm(
    tmp_path: Path, log: Path, args: list[str], *, procs: int = 1, crash: Path | None = None, workers: int = 1
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HFM_TEST_LOG=str(log))
    env["HFM_TEST_WORKERS"] = str(workers)
    env.pop("HFM_TEST_CRASH", None)
    if crash is not None:
        env["HFM_TEST_CRASH"] = str(crash)
    launch = [sys.executable]
    if procs > 1:
        launch += ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
    cmd = [*launch, __file__, "run", str(_recipe(tmp_path)), "--no-progress", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)


def _predictions(out: Path) -> dict[str, np.ndarray]:
    from hfm.runner import read_predictions

    return {
        str(p.parent.relative_to(out)): read_predictions(p)[2] for p in sorted(out.rglob("predictions.csv"))
    }


def _lines(log: Path) -> list[str]:
    return [" ".join(line.split()[:3]) for line in log.read_text().splitlines()]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The reference: the sweep in one process."""
    import hfm

    hfm.load_backbone(BACKBONE, twin=True)  # write the twin once, before processes race for it
    tmp = tmp_path_factory.mktemp("single")
    proc = _hfm(tmp, tmp / "log", ["--out", str(tmp / "out")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "out", _lines(tmp / "log")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["torchrun", "runs-per-device"])
def test_run_parallel_sweep_matches_one_process(tmp_path: Path, single, how: str) -> None:
    """Two workers (two launched processes, or two workers of one process): each run trained exactly once, by
    one worker alone; the same predictions as one process; one summary."""
    ref_out, ref_lines = single
    out = tmp_path / "out"
    if how == "torchrun":
        proc = _hfm(tmp_path, tmp_path / "log", ["--out", str(out)], procs=2, workers=2)
    else:
        proc = _hfm(tmp_path, tmp_path / "log", ["--out", str(out), "--runs-per-device", "2"], workers=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(_lines(tmp_path / "log")) == sorted(ref_lines)  # every run once, none twice
    assert len(ref_lines) == 6
    assert len({line.split()[3] for line in (tmp_path / "log").read_text().splitlines()}) == 2  # two workers
    expected, got = _predictions(ref_out), _predictions(out)
    assert sorted(got) == sorted(expected) and len(got) == 6
    for run, proba in expected.items():
        np.testing.assert_array_equal(got[run], proba)
    assert proc.stdout.count("run(s) done") == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parallel"] == "runs" and summary["runs"] == 6
    records = [json.loads(p.read_text()) for p in out.rglob("metrics.json")]
    assert {r["parallel"] for r in records} == {"runs"}
    assert not (out / ".queue").exists()
    assert not [p for p in out.rglob(".*") if ".tmp-" in p.name]


@pytest.mark.slow
def test_killed_process_runs_resume(tmp_path: Path, single) -> None:
    """Rank 1 dies in its first run: the launch fails, finished runs stay; ``--resume`` trains only the rest,
    and the sweep ends with the predictions of one process."""
    ref_out, ref_lines = single
    out, log = tmp_path / "out", tmp_path / "log"
    crashed = _hfm(tmp_path, log, ["--out", str(out)], procs=2, crash=tmp_path / "crashed")
    assert crashed.returncode != 0
    assert (tmp_path / "crashed").exists()
    first = _lines(log) if log.exists() else []
    done_first = {str(p.parent.relative_to(out)) for p in out.rglob("metrics.json")}
    assert len(done_first) < 6
    resumed = _hfm(tmp_path, log, ["--out", str(out), "--resume"], procs=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    lines = _lines(log)
    assert len(lines) - len(first) == 6 - len(done_first)  # only the unfinished runs trained again
    assert sorted(set(lines)) == sorted(ref_lines)
    expected, got = _predictions(ref_out), _predictions(out)
    assert sorted(got) == sorted(expected)
    for run, proba in expected.items():
        np.testing.assert_array_equal(got[run], proba)
    assert resumed.stdout.count("run(s) done") == 1
    assert json.loads((out / "summary.json").read_text())["runs"] == 6


if __name__ == "__main__":
    _register()
    from hfm.cli import main

    sys.exit(main(sys.argv[1:]))
elif __name__ == "__mp_main__":  # an extra worker process spawned by --runs-per-device
    _register()
