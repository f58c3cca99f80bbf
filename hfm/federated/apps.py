"""Flower apps for real sites: one SuperLink, one SuperNode per hospital, ``flwr run``.

``client_app`` and ``server_app`` are the same code the simulation runs (:func:`hfm.federated.client.make_client_app`,
:func:`hfm.federated.server.make_strategy`), configured from Flower's run and node configs instead of in process:

* each SuperNode names its site: ``--node-config "recipe='/data/fed.yaml' site='hospital-a'"`` (a site name of the
  recipe's ``sites`` list, or ``site-N`` of a simulated split); it reads only its own data block;
* the run config (``[tool.flwr.app.config]`` of the Flower app folder, or ``flwr run --run-config``) names the
  recipe on the server, the class names, k, the seed and the folder the federated adapter is saved to.

The server never loads data: it builds the adapter from the recipe's backbone and preset, runs the strategy, and
saves the result like any other adapter (``hfm.load_adapter`` reads it; ``hfm push`` publishes it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flwr.app import Context
from flwr.serverapp import Grid, ServerApp

from hfm.errors import ConfigError
from hfm.federated.client import LocalTrainer, make_client_app

_TRAINERS: dict[tuple[str, str, int, int], LocalTrainer] = {}


def _k_seed(recipe: Any, run_config: dict[str, Any]) -> tuple[int, int]:
    return int(run_config.get("k", recipe.shots[0])), int(run_config.get("seed", recipe.seeds[0]))


def trainer_for(context: Context) -> LocalTrainer:
    """The trainer of the site this SuperNode serves, built once per process from its node config."""
    from hfm.backbones import load_backbone
    from hfm.federated.recipe import load
    from hfm.federated.study import build_sites, make_trainer

    config = dict(context.node_config)
    if "recipe" not in config or "site" not in config:
        raise ConfigError(
            "a SuperNode needs --node-config \"recipe='PATH' site='NAME'\" (its recipe and site)"
        )
    recipe = load(str(config["recipe"]))
    k, seed = _k_seed(recipe, dict(context.run_config))
    key = (str(config["recipe"]), str(config["site"]), k, seed)
    if key not in _TRAINERS:
        name = str(config["site"])
        if recipe.sites is not None:  # a real site reads its own data block only
            if name not in [s.name for s in recipe.sites]:
                raise ConfigError(
                    f"site {name!r} is not in {config['recipe']}: use one of {[s.name for s in recipe.sites]}"
                )
            recipe.sites = [s for s in recipe.sites if s.name == name]
            site = build_sites(recipe)[0]
        else:
            sites = {s.name: s for s in build_sites(recipe)}
            if name not in sites:
                raise ConfigError(
                    f"site {name!r} is not a simulated site of {config['recipe']}: use one of {list(sites)}"
                )
            site = sites[name]
        backbone = load_backbone(
            recipe.backbone.name, twin=recipe.backbone.twin, policy=recipe.backbone.policy
        )
        _TRAINERS[key] = make_trainer(recipe, site, backbone, k, seed)
    return _TRAINERS[key]


# Plain assignments (no annotation): ``flwr run`` finds the components by reading this file's syntax tree, and
# Flower 1.42 looks only at plain ``name = ...`` assignments ("Unable to find attribute client_app" otherwise).
client_app = make_client_app(trainer_for)

server_app = ServerApp()


@server_app.main()
def serve(grid: Grid, context: Context) -> None:
    """Build the initial adapter, run the recipe's strategy over the connected sites, save the global adapter."""
    from hfm.backbones import load_backbone
    from hfm.federated.recipe import load
    from hfm.federated.server import make_strategy, start
    from hfm.federated.study import new_model
    from hfm.federated.wire import load_state, to_record

    run_config = dict(context.run_config)
    if "recipe" not in run_config or "classes" not in run_config:
        raise ConfigError("the run config needs recipe (a path) and classes (comma-separated class names)")
    recipe = load(str(run_config["recipe"]))
    classes = [c.strip() for c in str(run_config["classes"]).split(",") if c.strip()]
    k, seed = _k_seed(recipe, run_config)
    if recipe.federation.personal_head:
        raise ConfigError(
            f"{run_config['recipe']}: federation.personal_head runs in simulation (hfm federate) only for now: "
            "a SuperNode does not yet save its own head; drop it for a real deployment"
        )
    if not recipe.n_sites:
        raise ConfigError(
            f"{run_config['recipe']}: the server reads no data, so partition.values must list the sites' values"
        )
    backbone = load_backbone(recipe.backbone.name, twin=recipe.backbone.twin, policy=recipe.backbone.policy)
    model = new_model(recipe, backbone, len(classes), seed)
    strategy = make_strategy(recipe.federation, recipe.n_sites)
    result = start(strategy, grid, to_record(model), recipe.federation.rounds, quiet=False)
    if result.arrays is not None and len(result.arrays):
        import torch

        load_state(model, {name: torch.as_tensor(a.numpy()) for name, a in result.arrays.items()})
    out = Path(str(run_config.get("out", recipe.output_dir() / "adapter")))
    fed = recipe.federation
    model.save(
        out,
        metadata={
            "classes": classes,
            "recipe_name": recipe.name,
            "preset": recipe.resolved_preset.name,
            "k": k,
            "seed": seed,
            "federation": {
                "strategy": fed.strategy,
                "proximal_mu": fed.proximal_mu,
                "rounds": fed.rounds,
                "sites": [{"site": f"site-{i + 1}"} for i in range(recipe.n_sites)],
                "aggregated_rounds": sorted(int(r) for r in result.train_metrics_clientapp),
                "round_metrics": [
                    {"round": int(r), **dict(m), **dict(result.evaluate_metrics_clientapp.get(r, {}))}
                    for r, m in sorted(result.train_metrics_clientapp.items())
                ],
                "engine": "flwr (SuperLink)",
            },
        },
    )
