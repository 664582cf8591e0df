"""Prometheus metrics of one agent, in a registry of its own.

A registry per agent (not the process-global default) keeps several agents in
one test process from colliding, and lets `metrics_listen` serve exactly this
agent's numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class AgentMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.rejected_messages = Counter(
            "fedorch_rejected_messages", "Peer messages refused at the input boundary",
            ["reason"], registry=r)
        self.client_refusals = Counter(
            "fedorch_client_refusals",
            "Client calls refused: not authenticated, not allowed, or a submission whose "
            "signed spec does not hold", ["method", "code"], registry=r)
        self.rpc_errors = Counter(
            "fedorch_peer_rpc_errors", "Outgoing peer RPCs that failed", ["method", "code"],
            registry=r)
        self.peer_bytes = Counter(
            "fedorch_peer_bytes", "Envelope bytes of peer RPCs sent and received, by RPC",
            ["rpc", "direction"], registry=r)
        self.members = Gauge(
            "fedorch_members", "Members by state as this agent sees them", ["state"],
            registry=r)
        self.votes = Counter(
            "fedorch_votes", "Votes this domain cast at PREPARE", ["vote"], registry=r)
        self.decisions = Counter(
            "fedorch_decisions", "Round decisions this agent made as coordinator",
            ["outcome"], registry=r)
        self.end_notices_owed = Gauge(
            "fedorch_end_notices_owed",
            "End notices of workflows coordinated here not yet acknowledged (on disk, sent"
            " again after a restart)", registry=r)
        self.workflows = Counter(
            "fedorch_workflows_finished", "Workflows coordinated here, by final state",
            ["state"], registry=r)
        self.steps = Counter(
            "fedorch_step_attempts", "Step attempts run here, by result", ["result"],
            registry=r)
        self.task_errors = Counter(
            "fedorch_task_errors", "Exceptions that ended one of the agent's tasks, by kind"
            " of task (each is logged with its traceback)", ["task"], registry=r)
        self.loop_wakeups = Counter(
            "fedorch_loop_wakeups", "Times a background loop woke, by loop: at a deadline"
            " one of its cores reported, or on an event (none while nothing is due)",
            ["loop"], registry=r)
        self.reserved_slots = Gauge(
            "fedorch_reserved_slots", "Capability slots held by reservations", ["capability"],
            registry=r)

    def watch_store(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        """Expose the store's (writes, group commits, statements): writes per commit is
        how many writers one fsync served."""
        self.registry.register(_StoreCollector(counts))


class _StoreCollector(Collector):
    def __init__(self, counts: Callable[[], tuple[int, int, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        writes, commits, statements = self._counts()
        yield CounterMetricFamily("fedorch_store_writes", "Durable writes to the store",
                                  value=writes)
        yield CounterMetricFamily(
            "fedorch_store_commits", "SQLite transactions (fsyncs) that committed them; "
            "writes / commits is the group-commit size", value=commits)
        yield CounterMetricFamily(
            "fedorch_store_statements", "SQL statements in those writes (transaction"
            " control not counted)", value=statements)

