"""The node engine's collector (runtime/node_engine/metrics.py): what it reads from the
engine's parts, as the Prometheus endpoint shows it."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from fedorch.core.node import early_results as early
from fedorch.runtime.metrics import AgentMetrics
from fedorch.runtime.node_engine.metrics import NodeEngineCollector, bind_reserved_slots
from fedorch.runtime.node_engine.write_behind import HeldDurable, WriteFault
from prometheus_client import CollectorRegistry, generate_latest

from tests.unit.core.node.test_early_results import d1_voted_yes_not_committed
from tests.unit.runtime.node_engine.test_write_behind import FlakyDisk, group


def engine(fault: WriteFault) -> SimpleNamespace:
    return SimpleNamespace(
        driver=SimpleNamespace(turns=3, inputs=11, refused={"Message": 2}),
        store=SimpleNamespace(stats=SimpleNamespace(transactions=2, groups=5, ops=9, rows=7,
                                                    bytes=640, cpu_s=0.75,
                                                    encode_cpu_s=0.25)),
        transport=SimpleNamespace(envelopes=4, sent={"b": 5}, dropped={"c": 1}),
        boundary=SimpleNamespace(posted=6),
        executors=SimpleNamespace(started=1),
        node=SimpleNamespace(stats=Counter({"step self-fenced": 2,
                                            "step not started: fenced": 1,
                                            "decision record collected": 4,
                                            "retention: workflow forgotten": 5,
                                            "in-doubt query": 8,
                                            "in doubt past the round's life": 2,
                                            "in-doubt query answered ABORT from our NO":
                                                3,
                                            "takeover": 6,
                                            "takeover claim withdrawn": 3,
                                            "takeover withdrawn claim taken up again"
                                            " on a member's grant": 1}),
                             early_results=()),
        audit=SimpleNamespace(appended=7, lost=1, transactions=2, written_records=3),
        write_behind=fault,
        agent=SimpleNamespace(trust=SimpleNamespace(
            verify_counts=Counter({"hit": 12, "miss": 3, "uncached": 40}))))


def scrape(fault: WriteFault) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(NodeEngineCollector(engine(fault)))
    out = {}
    for line in generate_latest(registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_a_full_disk_shows_while_it_lasts_and_is_counted_after():
    disk, fault = FlakyDisk(), WriteFault()
    durable = HeldDurable(disk, fault)
    assert scrape(fault)["fedorch_node_store_failing"] == 0
    disk.full = True
    durable.write([group("t1")])
    durable.write([group("t2")])
    assert not durable.retry()
    during = scrape(fault)
    assert during["fedorch_node_store_failing"] == 1
    assert during["fedorch_node_store_write_faults_total"] == 1
    assert during["fedorch_node_store_failed_writes_total"] == 2  # t1, then one retry
    assert during['fedorch_node_store_kept_writes{what="groups"}'] == 2
    assert during['fedorch_node_store_kept_writes{what="rows"}'] == 2
    disk.full = False
    assert durable.retry()
    after = scrape(fault)
    assert after["fedorch_node_store_failing"] == 0
    assert after["fedorch_node_store_write_faults_total"] == 1
    assert after['fedorch_node_store_kept_writes{what="groups"}'] == 0


def test_the_engine_counters_are_read_at_scrape_time():
    got = scrape(WriteFault())
    assert got["fedorch_node_driver_turns_total"] == 3
    assert got["fedorch_node_driver_inputs_total"] == 11
    assert got["fedorch_node_store_groups_total"] == 5
    # node.db's ops, the rows they came to (once per transaction each), their bytes
    assert got["fedorch_node_store_rows_total"] == 9
    assert got["fedorch_node_store_combined_rows_total"] == 7
    assert got["fedorch_node_store_bytes_total"] == 640
    assert got['fedorch_node_messages_total{outcome="sent"}'] == 5
    assert got['fedorch_node_messages_total{outcome="posted"}'] == 6
    assert got['fedorch_node_inputs_refused_total{input="Message"}'] == 2
    assert got['fedorch_node_audit_records_total{outcome="appended"}'] == 7
    assert got['fedorch_signature_verifies_total{result="hit"}'] == 12
    assert got['fedorch_signature_verifies_total{result="miss"}'] == 3
    assert got['fedorch_signature_verifies_total{result="uncached"}'] == 40
    assert got['fedorch_node_audit_records_total{outcome="lost"}'] == 1
    assert got["fedorch_node_audit_transactions_total"] == 2
    assert got["fedorch_node_audit_stored_records_total"] == 3
    assert got['fedorch_node_steps_self_fenced_total{outcome="stopped"}'] == 2
    assert got['fedorch_node_steps_self_fenced_total{outcome="not_started"}'] == 1
    assert got['fedorch_node_takeover_claims_total{outcome="won"}'] == 6
    assert got['fedorch_node_takeover_claims_total{outcome="withdrawn"}'] == 3
    assert got['fedorch_node_takeover_claims_total{outcome="taken_up_again"}'] == 1
    assert got["fedorch_in_doubt_past_life_total"] == 2
    assert got["fedorch_in_doubt_answers_from_no_total"] == 3
    # node.db's commit thread: encoding the rows apart from SQLite's own work
    assert got['fedorch_node_store_cpu_seconds_total{part="encode"}'] == 0.25
    assert got['fedorch_node_store_cpu_seconds_total{part="sqlite"}'] == 0.5


def test_the_results_held_until_their_commit_are_counted_from_the_nodes_own_counts():
    """The held results' counts (core/node/early_results.py) on the endpoint, read from
    a real Node at scrape time: a result held before its COMMIT shows as held now, then,
    the COMMIT learned, as judged again and taken; one dropped, under its reason."""
    fed, late = d1_voted_yes_not_committed()
    node = fed.nodes["d1"]
    e = engine(WriteFault())
    e.node = node
    registry = CollectorRegistry()
    registry.register(NodeEngineCollector(e))

    def sample(name, **labels):
        return registry.get_sample_value(name, labels)

    assert sample("fedorch_node_early_results") == 0
    fed.end("d0", "s1")  # s1's result reaches d1 before its COMMIT: held
    assert sample("fedorch_node_early_results") == 1
    assert sample("fedorch_node_early_results_held_total") == 1
    assert sample("fedorch_node_early_results_judged_total", outcome="taken") == 0
    fed.net = late  # the COMMIT learned: judged again and taken
    fed.deliver()
    assert sample("fedorch_node_early_results") == 0
    assert sample("fedorch_node_early_results_judged_total", outcome="taken") == 1
    assert sample("fedorch_node_early_results_judged_total", outcome="refused") == 0
    node.stats[early.DROPPED["cap"]] += 2  # as the bounds count them
    for reason, n in (("abort", 0), ("cap", 2), ("forgotten", 0), ("ended", 0)):
        assert sample("fedorch_node_early_results_dropped_total", reason=reason) == n


def test_the_counters_the_older_engine_served_keep_their_names():
    """A dashboard of the older engine's counters reads the node engine's, same names."""
    got = scrape(WriteFault())
    assert got["fedorch_decision_records_collected_total"] == 4
    assert got['fedorch_compacted_total{kind="workflows"}'] == 5
    assert got["fedorch_in_doubt_queries_total"] == 8


def test_the_agents_reserved_slots_read_the_nodes_facts():
    metrics = AgentMetrics()
    used = {"a": 2}
    participant = SimpleNamespace(in_use=lambda: dict(used))
    bind_reserved_slots(metrics, participant, ["a", "b"])

    def sample(name, **labels):
        return metrics.registry.get_sample_value(name, labels)

    assert sample("fedorch_reserved_slots", capability="a") == 2
    assert sample("fedorch_reserved_slots", capability="b") == 0
    used["a"] = 0  # read at scrape time: released shows at once
    assert sample("fedorch_reserved_slots", capability="a") == 0
