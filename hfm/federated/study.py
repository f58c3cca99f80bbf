"""``hfm federate RECIPE``: the federated adapter against each site alone and against pooling all labels.

For every k and seed, every site draws its own k per class from its own train split (hfm's draw), and three
adapters are trained from the same initial weights, with the same number of local steps:

* **federated**: the sites train together through Flower's strategy (FedAvg or FedProx); only adapter weights
  and scalar metrics cross the wire;
* **local-only**: each site trains alone on its own draw (what a hospital can do without a federation);
* **centralised**: one model on the union of the sites' draws (the upper bound: what pooling the labels gives).

Each is tested on every site's test split and on their union (pooled). The study folder holds the published
adapter of each run (the federated one, saved like any other, its ``hfm_config.json`` recording the sites, rounds
and strategy), ``comparison.md|json`` (means over seeds and the paired differences with t intervals),
``rounds.png`` (pooled test accuracy over rounds) and the usual ``summary.*`` of the federated runs.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from hfm._fs import move_into_place
from hfm.data.episodes import Episode, draw, episode, group_name
from hfm.errors import ConfigError
from hfm.federated.client import LocalTrainer, concat, make_client_app
from hfm.federated.recipe import FederatedRecipe, check_paths, load, to_yaml
from hfm.federated.sites import Site, by_column, simulate, where_site
from hfm.federated.wire import HEAD, load_state, to_record, trainable_state
from hfm.metrics import evaluate, score

KINDS = ("federated", "local-only", "centralised")


@dataclass
class StudyResult:
    """What :func:`run` did: the study folder, the comparison and the federated run folders."""

    out_dir: Path
    comparison: dict[str, Any]
    runs: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def build_sites(recipe: FederatedRecipe) -> list[Site]:
    """The sites: each its own source (or the rows of one column value), one site per value of a column of one
    source, or one source split into simulated sites.

    Raises:
        ConfigError: Fewer sites than ``federation.min_sites``, or sites naming different classes.
    """
    from hfm.data.load import load_data

    if recipe.partition is not None:
        assert recipe.data is not None
        part = recipe.partition
        sites = by_column(load_data(recipe.data), recipe.data, part.by, part.values)
        if recipe.federation.min_sites > len(sites):
            raise ConfigError(
                f"federation.min_sites {recipe.federation.min_sites} exceeds the {len(sites)} sites of "
                f"partition by {part.by!r}"
            )
        return sites
    if recipe.sites is not None:
        sites = []
        for s in recipe.sites:
            splits = load_data(s.data)
            if s.where:
                splits = where_site(splits, s.data, s.where, s.name)
            sites.append(Site(name=s.name, splits=splits))
        classes = sites[0].splits.classes
        for site in sites[1:]:
            if site.splits.classes != classes:
                raise ConfigError(
                    f"site {site.name!r} has classes {site.splits.classes}, site {sites[0].name!r} has {classes}: "
                    "every site must name the same classes in the same order"
                )
        return sites
    assert recipe.data is not None and recipe.split is not None
    split = recipe.split
    return simulate(load_data(recipe.data), split.sites, split.scheme, alpha=split.alpha, seed=split.seed)


def new_model(recipe: FederatedRecipe, backbone: Any, n_classes: int, seed: int) -> Any:
    """The preset's tuner on ``backbone``; the same seed gives the same initial adapter at every site."""
    from hfm.tuners import get_tuner

    preset = recipe.resolved_preset
    tuner = get_tuner(preset.tuner)
    torch.manual_seed(seed)
    own = backbone if tuner.uses_embeddings else copy.deepcopy(backbone)
    return tuner(own, n_classes, **preset.params)


def site_episode(site: Site, k: int, seed: int) -> Episode:
    """The site's own draw: k per class from its train split by hfm's draw (leak-free, nested across k).

    A label-skewed site may lack a class altogether or hold fewer than k of one: it contributes what it has
    (``allow_fewer``), and a class it never saw is left out of its draw.
    """
    splits = site.splits
    present = set(splits.train.labels.tolist())
    if len(present) == splits.num_classes:
        return draw(splits, k, seed, allow_fewer=True).episode
    return episode(
        splits.train,
        k,
        seed,
        group_key=group_name(splits),
        exclude_groups=splits.heldout_groups() if splits.train.groups is not None else None,
        allow_fewer=True,
        fingerprint=splits.fingerprint,
    )


def make_trainer(recipe: FederatedRecipe, site: Site, backbone: Any, k: int, seed: int) -> LocalTrainer:
    """A site's trainer: its own draw of k per class (hfm's draw) and its own copy of the initial adapter."""
    preset = recipe.resolved_preset
    return LocalTrainer(
        name=site.name,
        model=new_model(recipe, backbone, site.splits.num_classes, seed),
        labelled=site_episode(site, k, seed).subset(site.splits.train),
        test=site.splits.test,
        federation=recipe.federation,
        training={**preset.training, **recipe.training},
        seed=seed,
    )


def site_index(context: Any) -> int:
    """The site a simulated node serves: Flower's ``partition-id`` under its simulation engine (random node
    ids), the node id ``1..n`` on hfm's local grid."""
    if "partition-id" in context.node_config:
        return int(context.node_config["partition-id"])
    return int(context.node_id) - 1


def _alone(trainer: LocalTrainer, initial: dict[str, torch.Tensor], rounds: int) -> dict[str, torch.Tensor]:
    """Train one trainer by itself for as many rounds of local steps as the federation takes."""
    state = initial
    for r in range(1, rounds + 1):
        state = trainer.fit(state, r, 0.0, personal_head=False)[0]
    return state


def _pooled_eval(trainers: list[LocalTrainer]) -> Callable[[int, Any], Any]:
    """Flower ``evaluate_fn`` of the simulation: the global adapter's accuracy and balanced accuracy on the
    union of the sites' test splits, each round (possible only here, where every site's test split is at hand;
    the sites' own evaluation gives the weighted mean of per-site metrics, which for balanced accuracy differs)."""
    from flwr.app import MetricRecord

    labels = torch.as_tensor(np.concatenate([t.test.labels for t in trainers]))
    n_classes = trainers[0].model.num_classes

    def evaluate_fn(server_round: int, arrays: Any) -> Any:
        state = {name: torch.as_tensor(a.numpy()) for name, a in arrays.items()}
        personal = trainers[0].federation.personal_head
        pred = torch.as_tensor(np.concatenate(_predict(trainers, state, personal))).argmax(-1)
        return MetricRecord({m: score(pred, labels, m, n_classes) for m in ("accuracy", "balanced_accuracy")})

    return evaluate_fn


def _predict(
    trainers: list[LocalTrainer], state: dict[str, torch.Tensor], personal_head: bool = False
) -> list[np.ndarray]:
    """Probabilities of ``state`` on every site's test split (only in simulation, where all sites are here);
    with ``personal_head`` each site keeps its own head."""
    out = []
    for trainer in trainers:
        load_state(trainer.model, state, personal_head)
        out.append(trainer.predict_test().numpy())
    return out


def _scores(
    recipe: FederatedRecipe, sites: list[Site], probas: list[np.ndarray], seed: int
) -> dict[str, Any]:
    """Metrics (with bootstrap intervals) on each site's test split and on their union."""
    classes = sites[0].splits.classes
    out = {}
    for site, proba in zip(sites, probas, strict=True):
        out[site.name] = evaluate(
            site.splits.test.labels, proba, classes,
            metrics=recipe.metrics, n_bootstrap=recipe.bootstrap, seed=seed,
        )  # fmt: skip
    labels = np.concatenate([s.splits.test.labels for s in sites])
    out["pooled"] = evaluate(
        labels,
        np.concatenate(probas),
        classes,
        metrics=recipe.metrics,
        n_bootstrap=recipe.bootstrap,
        seed=seed,
    )
    return out


def _card_sites(
    recipe: FederatedRecipe, sites: list[Site], trainers: list[LocalTrainer]
) -> list[dict[str, Any]]:
    named = recipe.federation.names_in_card or (recipe.sites is None and recipe.partition is None)
    return [
        {
            "site": site.name if named else f"site-{i + 1}",
            "train": len(site.splits.train),
            "labelled": len(t.labelled),
            "test": len(site.splits.test),
        }
        for i, (site, t) in enumerate(zip(sites, trainers, strict=True))
    ]


def run_one(
    recipe: FederatedRecipe, sites: list[Site], backbone: Any, k: int, seed: int, folder: Path
) -> dict[str, Any]:
    """One (k, seed): federate, train local-only and centralised adapters, test all three, write the run folder."""
    from hfm.federated.server import federate, federate_flower

    start = time.perf_counter()
    fed = recipe.federation
    trainers = [make_trainer(recipe, site, backbone, k, seed) for site in sites]
    server = new_model(recipe, backbone, sites[0].splits.num_classes, seed)
    personal = fed.personal_head
    initial_full, initial = trainable_state(server), trainable_state(server, personal)
    app = make_client_app(lambda context: trainers[site_index(context)])
    initial_record = to_record(server, initial, personal)
    if fed.engine == "flower":
        result = federate_flower(app, len(sites), initial_record, fed, evaluate_fn=_pooled_eval(trainers))
    else:
        result = federate(app, len(sites), initial_record, fed, seed=seed, evaluate_fn=_pooled_eval(trainers))
    final = (
        initial
        if result.arrays is None
        else {k_: torch.as_tensor(v.numpy()) for k_, v in result.arrays.items()}
    )
    scores: dict[str, dict[str, Any]] = {
        "federated": _scores(recipe, sites, _predict(trainers, final, personal), seed)
    }
    site_states = [dict(trainable_state(t.model)) for t in trainers] if personal else []
    if (
        personal
    ):  # the published adapter: the shared part with the sites' heads averaged (a start for a new site)
        final = {**final, **_mean_head(site_states, [len(t.labelled) for t in trainers])}
    load_state(server, final)

    local_states = [_alone(t, initial_full, fed.rounds) for t in trainers]
    local = [_scores(recipe, sites, _predict(trainers, s), seed) for s in local_states]
    scores["local-only"] = {site.name: local[i][site.name] for i, site in enumerate(sites)}
    central = LocalTrainer(
        name="centralised",
        model=trainers[0].model,
        labelled=concat([t.labelled for t in trainers]),
        test=trainers[0].test,
        federation=fed,
        training=trainers[0].training,
        seed=seed,
    )
    scores["centralised"] = _scores(
        recipe, sites, _predict(trainers, _alone(central, initial_full, fed.rounds)), seed
    )
    primary = recipe.primary_metric
    scores["local-only"]["pooled"] = {  # each metric: the mean over the sites' local adapters
        **{m: _mean([run["pooled"].get(m) for run in local]) for m in recipe.metrics},
        "per_site_adapter": [run["pooled"][primary] for run in local],
    }

    federation = {
        "strategy": fed.strategy,
        "proximal_mu": fed.proximal_mu,
        "rounds": fed.rounds,
        "personal_head": personal,
        "local_steps" if server.uses_embeddings else "local_epochs": (
            fed.local_steps if server.uses_embeddings else fed.local_epochs
        ),
        "sites": _card_sites(recipe, sites, trainers),
        "split": recipe.split.model_dump() if recipe.split is not None else None,
        "partition_by": recipe.partition.by if recipe.partition is not None else None,
        "aggregated_rounds": sorted(result.train_metrics),
        "dropped": sum(1 for s in result.log if s.direction == "to-server" and not s.record_kinds),
        "engine": "flwr" if fed.engine == "local" else "flwr (simulation engine)",
        "update_bytes": max((s.nbytes for s in result.log if s.direction == "to-server"), default=0),
    }
    curve = [
        {
            "round": r,
            **{m: result.eval_metrics.get(r, {}).get(m) for m in ("accuracy", "balanced_accuracy")},
            **{f"pooled_{m}": v for m, v in result.server_metrics[r].items()},
        }
        for r in sorted(result.server_metrics)
    ]
    preset = recipe.resolved_preset
    pooled = scores["federated"]["pooled"]
    record = {
        "preset": preset.name,
        "tuner": preset.tuner,
        "method": "federated",
        "method_params": {"strategy": fed.strategy, "proximal_mu": fed.proximal_mu, "rounds": fed.rounds},
        "k": k,
        "seed": seed,
        "n_train": sum(len(t.labelled) for t in trainers),
        "n_unlabelled": 0,
        "seconds": round(time.perf_counter() - start, 3),
        "split": "test (pooled over sites)",
        "test": pooled,
        "federation": federation,
        "rounds": curve,
        "comparison": scores,
        "wire": [
            {"direction": s.direction, "type": s.message_type, "node": s.node_id, "arrays": list(s.arrays),
             "metrics": sorted(s.metrics), "bytes": s.nbytes}
            for s in result.log
        ],
    }  # fmt: skip
    metadata = {
        "classes": list(sites[0].splits.classes),
        "recipe": json.loads(json.dumps(recipe.model_dump(mode="json"))),
        "recipe_name": recipe.name,
        "preset": preset.name,
        "method": {"name": "supervised", "params": {}, "n_unlabelled": 0},
        "seed": seed,
        "k": k,
        "data": {"source": sites[0].splits.source, "sites": federation["sites"]},
        "federation": federation,
        "metrics": {"test": {key: pooled[key] for key in (*recipe.metrics, "n", "ci") if key in pooled}},
    }
    _write_run(folder, server, metadata, record, sites, trainers, k, seed, site_states)
    return record


def _mean(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def _mean_head(states: list[dict[str, torch.Tensor]], weights: list[int]) -> dict[str, torch.Tensor]:
    """The sites' heads averaged, weighted by their labelled examples (only the simulation holds them all)."""
    total = float(sum(weights))
    return {
        name: sum((w / total) * state[name] for state, w in zip(states, weights, strict=True))  # type: ignore[misc]
        for name in states[0]
        if name.startswith(HEAD)
    }


def _write_run(
    folder: Path, server: Any, metadata: dict[str, Any], record: dict[str, Any],
    sites: list[Site], trainers: list[LocalTrainer], k: int, seed: int,
    site_states: list[dict[str, torch.Tensor]] | None = None,
) -> None:  # fmt: skip
    """The run folder; with per-site heads, each site's own adapter (shared part + its head) under
    ``sites/<name>/adapter``."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    try:
        server.save(tmp / "adapter", metadata=metadata)
        (tmp / "metrics.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        for site in sites:  # each site's own draw, kept beside the run (in simulation only)
            site_episode(site, k, seed).save(tmp / "sites" / site.name / "episode.json")
        for site, state in zip(sites, site_states or [], strict=False):
            load_state(server, state)
            server.save(tmp / "sites" / site.name / "adapter", metadata={**metadata, "site": site.name})
        move_into_place(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _t_interval(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and 95% t interval of paired differences (``None`` bounds with fewer than 2 seeds)."""
    from scipy import stats

    finite = [v for v in values if v is not None and not math.isnan(v)]
    if not finite:
        return None, None, None
    mean = float(np.mean(finite))
    if len(finite) < 2:
        return mean, None, None
    half = float(stats.t.ppf(0.975, len(finite) - 1) * np.std(finite, ddof=1) / math.sqrt(len(finite)))
    return mean, mean - half, mean + half


def compare(records: Iterable[dict[str, Any]], primary: str) -> dict[str, Any]:
    """Per k and test set: mean of each kind over seeds, and the paired differences federated - other."""
    by_k: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_k.setdefault(int(record["k"]), []).append(record)
    rows = []
    for k, runs in sorted(by_k.items()):
        tests = list(runs[0]["comparison"]["federated"])
        for test in tests:
            row: dict[str, Any] = {"k": k, "test": test, "seeds": len(runs)}
            values = {kind: [r["comparison"][kind][test][primary] for r in runs] for kind in KINDS}
            for kind in KINDS:
                row[kind] = _t_interval(values[kind])[0]
            for other in ("local-only", "centralised"):
                diffs = [
                    None if a is None or b is None else a - b
                    for a, b in zip(values["federated"], values[other], strict=True)
                ]
                mean, low, high = _t_interval(diffs)  # type: ignore[arg-type]
                row[f"federated - {other}"] = {"mean": mean, "ci95": [low, high]}
            rows.append(row)
    return {"metric": primary, "rows": rows}


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def to_markdown(comparison: dict[str, Any]) -> str:
    """The comparison as a Markdown table (what ``comparison.md`` holds)."""
    lines = [
        f"Test {comparison['metric']}, mean over seeds; differences are paired by seed, with 95% t intervals.\n",
        "| k | test | federated | local-only | centralised | fed − local [95% CI] | fed − central [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in comparison["rows"]:
        diffs = []
        for other in ("local-only", "centralised"):
            d = row[f"federated - {other}"]
            low, high = d["ci95"]
            diffs.append(f"{_fmt(d['mean'])} [{_fmt(low)}, {_fmt(high)}]")
        lines.append(
            f"| {row['k']} | {row['test']} | {_fmt(row['federated'])} | {_fmt(row['local-only'])} | "
            f"{_fmt(row['centralised'])} | {diffs[0]} | {diffs[1]} |"
        )
    return "\n".join(lines) + "\n"


def plot_rounds(records: list[dict[str, Any]], path: Path, primary: str, title: str = "") -> Path:
    """The global adapter's pooled test ``primary`` metric over rounds (round 0: the initial adapter; mean over
    seeds, one line per k), with the local-only and centralised ones as dashed and dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    by_k: dict[int, list[dict[str, Any]]] = {}
    for record in records:
        by_k.setdefault(int(record["k"]), []).append(record)
    for k, runs in sorted(by_k.items()):
        rounds = [p["round"] for p in runs[0]["rounds"]]
        acc = np.mean([[p[f"pooled_{primary}"] for p in r["rounds"]] for r in runs], axis=0)
        (line,) = ax.plot(rounds, acc, marker="o", ms=3, label=f"federated, k={k}")
        for kind, style in (("local-only", "--"), ("centralised", ":")):
            values = [r["comparison"][kind]["pooled"].get(primary) for r in runs]
            values = [v for v in values if v is not None]
            if values:
                ax.axhline(
                    float(np.mean(values)), ls=style, color=line.get_color(), lw=1, label=f"{kind}, k={k}"
                )
    ax.set_xlabel("round")
    ax.set_ylabel(f"pooled test {primary.replace('_', ' ')}")
    ax.set_title(title or "federated adapter over rounds")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(
    recipe: FederatedRecipe | str | Path,
    *,
    out: str | Path | None = None,
    shots: list[int] | None = None,
    seeds: list[int] | None = None,
    twin: bool | None = None,
    progress: bool = True,
    verbose: bool = True,
) -> StudyResult:
    """Run a federated recipe (see the module docstring); overrides as for ``hfm run``."""
    start = time.perf_counter()
    loaded = recipe if isinstance(recipe, FederatedRecipe) else load(recipe)
    loaded = loaded.model_copy(deep=True)
    if out is not None:
        loaded.output = str(out)
    if shots is not None:
        loaded.shots = sorted(shots)
    if seeds is not None:
        loaded.seeds = list(seeds)
    if twin is not None:
        loaded.backbone.twin = twin
    check_paths(loaded, f"recipe {loaded.name!r}")
    if loaded.federation.engine == "flower":
        from hfm.federated.server import require_flower_engine

        require_flower_engine()  # before any data is read or any folder written
    from hfm.backbones import load_backbone

    sites = build_sites(loaded)
    backbone = load_backbone(loaded.backbone.name, twin=loaded.backbone.twin, policy=loaded.backbone.policy)
    out_dir = loaded.output_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "recipe.yaml").write_text(to_yaml(loaded), encoding="utf-8")
    preset = loaded.resolved_preset
    records, folders = [], []
    todo = [(k, s) for k in loaded.shots for s in loaded.seeds]
    for k, seed in tqdm(todo, desc=f"federate {loaded.name}", unit="run", disable=not progress):
        folder = out_dir / preset.name / f"k{k}" / f"seed{seed}"
        records.append(run_one(loaded, sites, backbone, k, seed, folder))
        folders.append(folder)
    comparison = compare(records, loaded.primary_metric)
    (out_dir / "comparison.json").write_text(json.dumps(comparison, indent=1) + "\n", encoding="utf-8")
    table = to_markdown(comparison)
    (out_dir / "comparison.md").write_text(f"# {loaded.name}\n\n{table}", encoding="utf-8")
    plot_rounds(records, out_dir / "rounds.png", loaded.primary_metric, title=loaded.name or "")
    from hfm.report import write_summary

    write_summary(
        out_dir, records, loaded.metrics, loaded.primary_metric, title=loaded.name or "",
        extra={"recipe_name": loaded.name, "backbone": backbone.describe(), "federation": records[0]["federation"]},
    )  # fmt: skip
    seconds = time.perf_counter() - start
    if verbose:
        print(table, end="")
        print(f"{len(records)} federated run(s) in {seconds:.1f} s; results in {out_dir}")
    return StudyResult(out_dir=out_dir, comparison=comparison, runs=folders, seconds=seconds)
