"""The server's side: Flower's FedAvg / FedProx over the sites' adapters, driven in process or by a SuperLink.

:func:`make_strategy` returns Flower's own strategy (``flwr.serverapp.strategy.FedAvg`` or ``FedProx``: the
weighted mean of the sites' trainable parameters, weighted by their labelled examples), with two additions: a site
that fails in a round is dropped from that round with a :class:`SiteDroppedWarning` (training goes on with the
others), and a round with fewer than ``min_sites`` updates keeps the previous global adapter.

:class:`LocalGrid` is a Flower ``Grid`` that delivers each message to the site's ``ClientApp`` in this process,
one site after another in node order. It is hfm's default simulation engine: Flower's own (``flwr.simulation``)
needs Ray, which is heavy for two CPU cores and does not fix the order of replies, while this grid runs the very
same ``ClientApp`` and strategy deterministically, and logs every message for inspection.
:func:`federate_flower` runs them through Flower's engine instead (``federation.engine: flower``, Ray installed;
replies are put in node order before averaging). Across machines the same strategy runs under a SuperLink (see
:mod:`hfm.federated.apps`).
"""

from __future__ import annotations

import contextlib
import logging
import random
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flwr.app import ArrayRecord, Message
    from flwr.clientapp import ClientApp
    from flwr.serverapp.strategy import Strategy

    from hfm.federated.recipe import FederationBlock


class SiteDroppedWarning(UserWarning):
    """A site failed in a round and was left out of that round's aggregate."""


def make_strategy(federation: FederationBlock, n_sites: int) -> Strategy:
    """Flower's FedAvg or FedProx over all ``n_sites`` sites, dropping failed sites with a warning."""
    from flwr.serverapp.strategy import FedAvg, FedProx

    base: type[FedAvg] = FedProx if federation.strategy == "fedprox" else FedAvg
    kwargs: dict[str, Any] = {
        "fraction_train": 1.0,
        "fraction_evaluate": 1.0,
        "min_train_nodes": n_sites,
        "min_evaluate_nodes": n_sites,
        "min_available_nodes": n_sites,
    }
    if base is FedProx:
        kwargs["proximal_mu"] = federation.proximal_mu
    min_sites = federation.min_sites

    class HfmStrategy(base):  # type: ignore[valid-type,misc]
        def aggregate_train(
            self, server_round: int, replies: Iterable[Message]
        ) -> tuple[ArrayRecord | None, Any]:
            replies = list(replies)
            ok = [r for r in replies if not r.has_error()]
            for reply in replies:
                if reply.has_error():
                    warnings.warn(
                        f"round {server_round}: site (node {reply.metadata.src_node_id}) failed and is left out "
                        f"of this round: {reply.error.reason}",
                        SiteDroppedWarning,
                        stacklevel=2,
                    )
            if len(ok) < min_sites:
                warnings.warn(
                    f"round {server_round}: only {len(ok)} of {len(replies)} sites answered (min_sites "
                    f"{min_sites}); the global adapter stays as it was",
                    SiteDroppedWarning,
                    stacklevel=2,
                )
                return None, None
            return super().aggregate_train(server_round, ok)  # type: ignore[no-any-return]

    HfmStrategy.__name__ = HfmStrategy.__qualname__ = base.__name__
    return HfmStrategy(**kwargs)


@dataclass
class Sent:
    """One message as it crossed the (simulated) wire: its direction, type, node and content."""

    direction: str  # "to-site" or "to-server"
    message_type: str
    node_id: int
    arrays: dict[str, tuple[int, ...]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    configs: dict[str, Any] = field(default_factory=dict)
    nbytes: int = 0
    record_kinds: tuple[str, ...] = ()


def _describe(msg: Message, direction: str, node_id: int) -> Sent:
    sent = Sent(direction=direction, message_type=msg.metadata.message_type, node_id=node_id)
    if msg.has_error():
        return sent
    from flwr.app import ArrayRecord, MetricRecord

    content = msg.content
    kinds = []
    for key, record in content.items():
        kinds.append(type(record).__name__)
        if isinstance(record, ArrayRecord):
            for name, array in record.items():
                sent.arrays[name] = tuple(array.shape)
                sent.nbytes += int(array.numpy().nbytes)
        elif isinstance(record, MetricRecord):
            sent.metrics.update(dict(record))
        else:
            sent.configs.update({f"{key}.{k}": v for k, v in dict(record).items()})
    sent.record_kinds = tuple(kinds)
    return sent


@contextlib.contextmanager
def _task_identity(run_id: int) -> Iterator[None]:
    """Flower messages need a run id outside a SuperLink; set it for the duration of a simulated run."""
    from flwr.common.constant import SUPERLINK_NODE_ID
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = run_id, SUPERLINK_NODE_ID, run_id
    try:
        yield
    finally:
        TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def _grid_base() -> type:
    from flwr.serverapp import Grid

    return Grid


class LocalGrid(_grid_base()):  # type: ignore[misc]
    """A Flower ``Grid`` over ``ClientApp`` instances in this process (see the module docstring).

    Args:
        app: The sites' ``ClientApp``.
        n_sites: Number of sites; their node ids are ``1..n_sites``.
        run_id: The Flower run id recorded in messages.
    """

    def __init__(
        self,
        app: ClientApp,
        n_sites: int,
        run_id: int = 1,
        node_configs: dict[int, dict[str, Any]] | None = None,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        from flwr.supercore.run import Run

        self.app = app
        self.node_configs = node_configs or {}
        self.run_config = run_config or {}
        self.node_ids = list(range(1, n_sites + 1))
        self.log: list[Sent] = []
        self._run = Run.create_empty(run_id)
        self._states: dict[int, Any] = {}

    def set_run(self, run: Any) -> None:
        self._run = run

    @property
    def run(self) -> Any:
        return self._run

    def create_message(
        self, content: Any, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        from flwr.app import Message

        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> list[int]:
        return list(self.node_ids)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:  # pragma: no cover - unused
        raise NotImplementedError("LocalGrid answers in send_and_receive")

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:  # pragma: no cover - unused
        raise NotImplementedError("LocalGrid answers in send_and_receive")

    def _context(self, node_id: int) -> Any:
        from flwr.app import Context, RecordDict

        state = self._states.setdefault(node_id, RecordDict())
        return Context(
            run_id=self._run.run_id,
            node_id=node_id,
            node_config=dict(self.node_configs.get(node_id, {})),
            state=state,
            run_config=dict(self.run_config),
        )

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        """Run each site's ``ClientApp`` on its message, in node order; a raising site answers with an error."""
        from flwr.app import Error, Message

        replies = []
        for msg in sorted(messages, key=lambda m: m.metadata.dst_node_id):
            node = msg.metadata.dst_node_id
            msg.metadata.__dict__["_message_id"] = uuid.uuid4().hex
            self.log.append(_describe(msg, "to-site", node))
            try:
                reply = self.app(msg, self._context(node))
            except Exception as err:  # a failing site must not stop the federation
                reply = Message(Error(code=1, reason=f"{type(err).__name__}: {err}"), reply_to=msg)
            reply.metadata.__dict__["_src_node_id"] = node
            self.log.append(_describe(reply, "to-server", node))
            replies.append(reply)
        return replies


@dataclass
class FederationResult:
    """The outcome of a federated run.

    Attributes:
        arrays: The final global adapter's trainable parameters (``None`` if no round aggregated).
        train_metrics: Per round, the aggregated site training metrics (mean loss).
        eval_metrics: Per round, the weighted mean of the sites' test metrics (the pooled test accuracy).
        log: Every message that crossed the wire.
        server_metrics: Per round (0: the initial adapter), what ``evaluate_fn`` returned.
    """

    arrays: ArrayRecord | None
    train_metrics: dict[int, dict[str, float]]
    eval_metrics: dict[int, dict[str, float]]
    log: list[Sent]
    server_metrics: dict[int, dict[str, float]] = field(default_factory=dict)


def start(
    strategy: Strategy,
    grid: Any,
    initial: ArrayRecord,
    rounds: int,
    *,
    quiet: bool = True,
    evaluate_fn: Callable[[int, ArrayRecord], Any] | None = None,
) -> Any:
    """Run Flower's strategy loop on ``grid`` (Flower's log quietened to warnings when ``quiet``).

    ``evaluate_fn`` is Flower's server-side evaluation of the global adapter (before the first round and after
    each); hfm passes one only in simulation, where the pooled test split of all sites is at hand.
    """
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if quiet:
        flwr_logger.setLevel(logging.WARNING)
    try:
        return strategy.start(grid=grid, initial_arrays=initial, num_rounds=rounds, evaluate_fn=evaluate_fn)
    finally:
        flwr_logger.setLevel(level)


def federate(
    app: ClientApp,
    n_sites: int,
    initial: ArrayRecord,
    federation: FederationBlock,
    *,
    seed: int = 0,
    quiet: bool = True,
    evaluate_fn: Callable[[int, ArrayRecord], Any] | None = None,
) -> FederationResult:
    """Run ``federation.rounds`` rounds of the strategy over ``n_sites`` in-process sites.

    Deterministic under ``seed``: the sites run in node order and Flower's node sampling is seeded.
    ``evaluate_fn``: see :func:`start`.
    """
    strategy = make_strategy(federation, n_sites)
    grid = LocalGrid(app, n_sites, run_id=seed + 1)
    state = random.getstate()
    random.seed(seed)
    try:
        with _task_identity(seed + 1):
            result = start(strategy, grid, initial, federation.rounds, quiet=quiet, evaluate_fn=evaluate_fn)
    finally:
        random.setstate(state)
    return _outcome(result, grid.log)


def _outcome(result: Any, log: list[Sent]) -> FederationResult:
    """hfm's record of Flower's ``Result`` (and the wire log of the grid it ran on)."""
    return FederationResult(
        arrays=result.arrays if result.arrays is not None and len(result.arrays) else None,
        train_metrics={int(r): dict(m) for r, m in result.train_metrics_clientapp.items()},
        eval_metrics={int(r): dict(m) for r, m in result.evaluate_metrics_clientapp.items()},
        log=log,
        server_metrics={int(r): dict(m) for r, m in result.evaluate_metrics_serverapp.items()},
    )


class _LoggingGrid(_grid_base()):  # type: ignore[misc]
    """Flower's own grid of a simulation, logging what crosses the wire and ordering replies by node.

    Flower's engine answers in the order the sites finish; sorting the replies by node id makes the order of the
    weighted sum independent of that race (with two sites the sum is then exactly the local engine's; with more,
    the node ids are random per run, so sums may differ in the last bits). Logged node numbers are 1..n in
    node-id order.
    """

    def __init__(self, grid: Any) -> None:
        self.grid = grid
        self.log: list[Sent] = []

    def set_run(self, run: Any) -> None:
        self.grid.set_run(run)

    @property
    def run(self) -> Any:
        return self.grid.run

    def create_message(
        self, content: Any, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)  # type: ignore[no-any-return]

    def get_node_ids(self) -> list[int]:
        return sorted(self.grid.get_node_ids())

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)  # type: ignore[no-any-return]

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)  # type: ignore[no-any-return]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        """Flower's send and receive; the messages and replies are logged, the replies sorted by node id."""
        messages = list(messages)
        number = {node: i + 1 for i, node in enumerate(self.get_node_ids())}
        for msg in messages:
            self.log.append(_describe(msg, "to-site", number.get(msg.metadata.dst_node_id, 0)))
        replies = sorted(
            self.grid.send_and_receive(messages, timeout=timeout), key=lambda m: m.metadata.src_node_id
        )
        for reply in replies:
            self.log.append(_describe(reply, "to-server", number.get(reply.metadata.src_node_id, 0)))
        return replies


def flower_engine_available() -> bool:
    """Whether Flower's simulation engine can run here (it needs Ray: ``hfm-hub[federated-ray]``)."""
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def require_flower_engine() -> None:
    """A one-line :class:`~hfm.federated.FederatedError` when Flower's simulation engine cannot run here."""
    from hfm.federated import FederatedError

    if not flower_engine_available():
        raise FederatedError(
            "federation.engine: flower needs Ray: pip install 'hfm-hub[federated-ray]' (or use engine: local)"
        )


def federate_flower(
    app: ClientApp,
    n_sites: int,
    initial: ArrayRecord,
    federation: FederationBlock,
    *,
    quiet: bool = True,
    evaluate_fn: Callable[[int, ArrayRecord], Any] | None = None,
    num_cpus: int | None = None,
) -> FederationResult:
    """Run the same strategy and ``ClientApp`` through Flower's simulation engine (Ray), one SuperNode per site.

    The ``ClientApp`` of site ``i`` runs in a Ray worker process (1 CPU each; at most ``num_cpus``, by default
    the machine's CPU count, run at once), is shipped there with every message (so it must pickle; a study's
    trainers do) and finds its site from the node's ``partition-id``. The server side (strategy,
    ``evaluate_fn``) runs in this process. Flower's and Ray's usage telemetry is switched off unless set.
    """
    import os

    from flwr.serverapp import ServerApp
    from flwr.simulation import run_simulation

    require_flower_engine()
    os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    out: dict[str, Any] = {}
    server_app = ServerApp()

    @server_app.main()
    def _serve(grid: Any, context: Any) -> None:
        logged = _LoggingGrid(grid)
        out["log"] = logged.log
        out["result"] = strategy_start(logged)

    def strategy_start(grid: Any) -> Any:
        strategy = make_strategy(federation, n_sites)
        return start(strategy, grid, initial, federation.rounds, quiet=quiet, evaluate_fn=evaluate_fn)

    cpus = max(1, min(n_sites, num_cpus or os.cpu_count() or 1))
    backend = {
        "init_args": {"num_cpus": cpus, "num_gpus": 0, "include_dashboard": False},
        "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
    }
    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if quiet:
        flwr_logger.setLevel(logging.WARNING)
    try:
        run_simulation(server_app, app, n_sites, backend_config=backend)  # type: ignore[arg-type]
    finally:
        flwr_logger.setLevel(level)
    if "result" not in out:
        raise RuntimeError("Flower's simulation engine ended without a result (see the log above)")
    return _outcome(out["result"], out["log"])
