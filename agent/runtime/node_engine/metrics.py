"""The node engine's counters on the agent's Prometheus endpoint, read at scrape time.

The engine's parts count in plain attributes (no metric call on the hot path); this
collector reads them when the endpoint is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fedorch.core.node import early_results as early
from fedorch.core.node import no_votes
from fedorch.core.node.start_asks import CONFIRMED, DROPPED, HELD
from fedorch.core.node.takeover_claims import TAKEN_UP_AGAIN, WITHDRAWN
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["NodeEngineCollector", "bind_reserved_slots"]


def bind_reserved_slots(metrics: Any, participant: Any, capabilities: Any) -> None:
    """`fedorch_reserved_slots{capability}`, read from the Node's
    participant at scrape time (votes are counted by observed.py, once each)."""
    for cap in capabilities:
        metrics.reserved_slots.labels(cap).set_function(
            lambda cap=cap: participant.in_use().get(cap, 0))


class NodeEngineCollector(Collector):
    def __init__(self, engine: Any) -> None:
        """`engine`: the NodeAgent (typed loosely: it imports this module)."""
        self.engine = engine

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        e = self.engine
        turns = CounterMetricFamily("fedorch_node_driver_turns",
                                    "Turns of the node engine's driver")
        turns.add_metric([], e.driver.turns)
        yield turns
        inputs = CounterMetricFamily("fedorch_node_driver_inputs",
                                     "Inputs the node engine's driver stepped: the Node's steps")
        inputs.add_metric([], e.driver.inputs)
        yield inputs
        stats = e.store.stats
        tx = CounterMetricFamily("fedorch_node_store_transactions",
                                 "Transactions committed to node.db (one per turn with writes)")
        tx.add_metric([], stats.transactions)
        yield tx
        groups = CounterMetricFamily(
            "fedorch_node_store_groups",
            "Write groups committed to node.db; groups / transactions is how many writes one"
            " fsync served (group commit)")
        groups.add_metric([], stats.groups)
        yield groups
        ops = CounterMetricFamily("fedorch_node_store_rows", "Row writes to node.db")
        ops.add_metric([], stats.ops)
        yield ops
        # What those writes came to: each row written or deleted once per transaction
        # (a turn's ops on one row combined), and the bytes of the rows written.
        combined = CounterMetricFamily("fedorch_node_store_combined_rows",
                                       "Rows written or deleted in node.db, once per"
                                       " transaction each")
        combined.add_metric([], stats.rows)
        yield combined
        written = CounterMetricFamily("fedorch_node_store_bytes",
                                      "Bytes of the keys and values written to node.db")
        written.add_metric([], stats.bytes)
        yield written
        # The commit thread's CPU in node.db's writes (encoding the rows, SQLite, the
        # commit), apart from the event loop's: what a workflow costs in that thread.
        cpu = CounterMetricFamily("fedorch_node_store_cpu_seconds",
                                  "CPU seconds of node.db's writes in the commit thread",
                                  labels=["part"])
        cpu.add_metric(["encode"], stats.encode_cpu_s)
        cpu.add_metric(["sqlite"], stats.cpu_s - stats.encode_cpu_s)
        yield cpu
        t = e.transport
        envelopes = CounterMetricFamily("fedorch_node_envelopes",
                                        "NodeTurn envelopes sent (one per peer and turn, or"
                                        " fewer under load)")
        envelopes.add_metric([], t.envelopes)
        yield envelopes
        msgs = CounterMetricFamily(
            "fedorch_node_messages",
            "Node messages: sent to a peer that took them, dropped (peer unreachable or"
            " refusing: the Node resends), posted from peers after the boundary's checks",
            labels=["outcome"])
        msgs.add_metric(["sent"], sum(t.sent.values()))
        msgs.add_metric(["dropped"], sum(t.dropped.values()))
        msgs.add_metric(["posted"], e.boundary.posted)
        yield msgs
        refused = CounterMetricFamily("fedorch_node_inputs_refused",
                                      "Inputs the Node itself refused (RemoteProtocolError)",
                                      labels=["input"])
        for kind, n in e.driver.refused.items():
            refused.add_metric([kind], n)
        yield refused
        steps = CounterMetricFamily("fedorch_node_steps_started",
                                    "Step attempts the node engine started")
        steps.add_metric([], e.executors.started)
        yield steps
        stats = e.node.stats
        yield _outcomes(
            "fedorch_node_steps_self_fenced",
            "Step attempts this domain's Node stopped, or never started, cut off from their"
            " workflow past the step lease (self-fencing)", stats,
            (("stopped", "step self-fenced"), ("not_started", "step not started: fenced")))
        yield _outcomes(
            "fedorch_node_step_starts_asked",
            "Step attempts held here, out of touch with their coordinator, until it said"
            " where the step is (core/node/start_asks.py): held and asked, then started"
            " (confirmed) or never run here (dropped)", stats,
            (("held", HELD), ("confirmed", CONFIRMED), ("dropped", DROPPED)))
        yield _outcomes(
            "fedorch_node_takeover_claims",
            "This domain's coordinator takeover claims: won (it acts in the epoch),"
            " withdrawn (an outsider denied by the coordinator it claimed past), taken up"
            " again (a member's grant came after the withdrawal)", stats,
            (("won", "takeover"), ("withdrawn", WITHDRAWN), ("taken_up_again", TAKEN_UP_AGAIN)))
        audit = CounterMetricFamily(
            "fedorch_node_audit_records",
            "The node engine's audited acts: appended to agent.db, or lost with a write"
            " agent.db refused", labels=["outcome"])
        audit.add_metric(["appended"], e.audit.appended)
        audit.add_metric(["lost"], e.audit.lost)
        yield audit
        stored = CounterMetricFamily(
            "fedorch_node_audit_stored_records",
            "The records of agent.db's audit log the appended acts took (one per"
            " workflow and batch)")
        stored.add_metric([], e.audit.written_records)
        yield stored
        audit_tx = CounterMetricFamily("fedorch_node_audit_transactions",
                                       "agent.db transactions of the node engine's audit"
                                       " records (at most one per turn and batch window)")
        audit_tx.add_metric([], e.audit.transactions)
        yield audit_tx
        verifies = CounterMetricFamily(
            "fedorch_signature_verifies",
            "Signatures the trust store verified: answered from its cache (hit), checked"
            " and remembered (miss), checked and not remembered (uncached: live"
            " envelopes, each new by its nonce)", labels=["result"])
        counts = e.agent.trust.verify_counts
        for result in ("hit", "miss", "uncached"):
            verifies.add_metric([result], counts[result])
        yield verifies
        yield from _write_fault_metrics(e.write_behind)
        yield from _early_result_metrics(e.node)
        yield from _shared_metrics(e.node.stats)


def _early_result_metrics(node: Any) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """Step results that reached this Node before it learned their workflow's COMMIT
    (core/node/early_results.py): held in memory, judged again once it is learned.
    Never acknowledged while held, so a drop costs only the sender's resend."""
    stats = node.stats
    now = GaugeMetricFamily("fedorch_node_early_results",
                            "Step results held now until their workflow's COMMIT is"
                            " learned here")
    now.add_metric([], len(node.early_results))
    yield now
    held = CounterMetricFamily("fedorch_node_early_results_held",
                               "Step results held until their workflow's COMMIT (a resend"
                               " of one held counted again)")
    held.add_metric([], stats[early.HELD])
    yield held
    judged = CounterMetricFamily(
        "fedorch_node_early_results_judged",
        "Held step results judged again once their workflow was committed here: taken"
        " (acknowledged and used), or refused (left to the sender's resend)",
        labels=["outcome"])
    judged.add_metric(["taken"], stats[early.TAKEN])
    judged.add_metric(["refused"], stats[early.REFUSED])
    yield judged
    dropped = CounterMetricFamily(
        "fedorch_node_early_results_dropped",
        "Held step results dropped unacknowledged (the sender resends them): the round"
        " aborted, the bounds reached (cap), the workflow's stake here over (forgotten),"
        " the workflow ended here", labels=["reason"])
    for reason, name in early.DROPPED.items():
        dropped.add_metric([reason], stats[name])
    yield dropped


def _shared_metrics(stats: Any) -> Iterator[CounterMetricFamily]:
    """The counters the older engine served under the same names, from the Node's stats:
    a dashboard made for it reads them still."""
    collected = CounterMetricFamily(
        "fedorch_decision_records_collected",
        "COMMIT certificates dropped from the coordinator's log once every participant"
        " acknowledged them")
    collected.add_metric([], stats["decision record collected"])
    yield collected
    compacted = CounterMetricFamily(
        "fedorch_compacted",
        "Records removed by retention (docs/retention.md), by kind: on the node engine,"
        " workflows (core/node/retention.py forgets each one's rows in one write group)",
        labels=["kind"])
    compacted.add_metric(["workflows"], stats["retention: workflow forgotten"])
    yield compacted
    queries = CounterMetricFamily(
        "fedorch_in_doubt_queries", "Decision queries made for in-doubt reservations"
        " (on the node engine, one per query sent: the coordinator, and whoever else"
        " Termination asks)")
    queries.add_metric([], stats["in-doubt query"])
    yield queries
    from_no = CounterMetricFamily(
        "fedorch_in_doubt_answers_from_no",
        "Decision queries of a peer in doubt this domain answered ABORT from its own NO"
        " in a classic 2PC round (core/node/no_votes.py: the NO is on record as the"
        " round's ABORT)")
    from_no.add_metric([], stats[no_votes.ANSWERED])
    yield from_no
    past_life = CounterMetricFamily(
        "fedorch_in_doubt_past_life",
        "Rounds this domain stays in doubt about for good, its reservation held: a"
        " majority of their acceptors answered that the round is past its life"
        " (docs/retention.md); counted once each, as coordinator or participant")
    past_life.add_metric([], stats["in doubt past the round's life"])
    yield past_life


def _write_fault_metrics(fault: Any) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """node.db's storage faults (write_behind.py): an alert on `failing` says the agent
    takes no new work; `kept`/`held` say how close it is to stopping."""
    faults = CounterMetricFamily(
        "fedorch_node_store_write_faults",
        "Times writes to node.db began to fail (disk full, I/O error, read-only)")
    faults.add_metric([], fault.faults)
    yield faults
    failed = CounterMetricFamily("fedorch_node_store_failed_writes",
                                 "Failed transactions on node.db, retries included")
    failed.add_metric([], fault.failed_writes)
    yield failed
    failing = GaugeMetricFamily(
        "fedorch_node_store_failing",
        "1 while node.db cannot be written: no new work is taken, reads are served")
    failing.add_metric([], 1 if fault.active else 0)
    yield failing
    kept = GaugeMetricFamily("fedorch_node_store_kept_writes",
                             "Write groups kept in memory until node.db is writable",
                             labels=["what"])
    kept.add_metric(["groups"], len(fault.pending))
    kept.add_metric(["rows"], fault.pending_ops)
    kept.add_metric(["held_effects"], len(fault.held))
    yield kept


def _outcomes(name: str, doc: str, stats: Any, outcomes: tuple[tuple[str, str], ...]
              ) -> CounterMetricFamily:
    """A counter by `outcome`, each one a Node stat (its label, the stat's name)."""
    family = CounterMetricFamily(name, doc, labels=["outcome"])
    for outcome, stat in outcomes:
        family.add_metric([outcome], stats[stat])
    return family
