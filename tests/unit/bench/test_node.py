"""`fedorch bench node` (agent/bench/node.py): its workflows end, its counts add up, its
wire refuses what it cannot verify. Numbers are never asserted: they are the machine's."""

from __future__ import annotations

import json
from collections import deque

import pytest
from click.testing import CliRunner
from fedorch.bench.node import run_node_bench
from fedorch.bench.node_wire import CRYPTO, Timers, Wire
from fedorch.cli.bench import bench
from fedorch.core.negotiation.messages import DecisionAck
from fedorch.runtime.node_codec import node_codec


@pytest.mark.parametrize("layout", ["threads", "loop"])
def test_every_workflow_ends_and_the_counts_add_up(tmp_path, layout):
    result = run_node_bench(workflows=12, concurrency=(1, 4), warmup=3,
                            data_dir=str(tmp_path), layout=layout)
    runs = {run["envelope"]: run for run in result["runs"]}
    assert set(runs) == {"message", "turn"}
    for run in runs.values():
        assert run["refused_envelopes"] == 0
        assert [loop["concurrency"] for loop in run["loops"]] == [1, 4]
        for loop in run["loops"]:
            assert loop["ends"] == {"SUCCEEDED": 12}
            w = loop["per_workflow"]
            # Three PREPAREs and three votes at least, one per domain: the two other
            # domains' on the wire, the coordinator's own looped back by its driver.
            assert w["messages_by_type"]["PrepareMsg"] >= 2
            assert w["messages_by_type"]["VoteMsg"] >= 2
            assert w["messages_looped_back"] >= 2
            assert w["envelopes_to_itself"] == 0
            assert sum(w["messages_by_type"].values()) == pytest.approx(w["messages"],
                                                                        abs=0.05)
            assert w["transactions"] > 0 and w["rows_written"] > 0
            assert loop["cpu_ms_per_workflow"] > 0
    # Alone, every message is an envelope of its own; by turn, never more envelopes.
    for loop in runs["message"]["loops"]:
        assert loop["per_workflow"]["envelopes_verified"] == loop["per_workflow"]["messages"]
    for loop in runs["turn"]["loops"]:
        assert loop["per_workflow"]["envelopes_verified"] <= loop["per_workflow"]["messages"]
    assert list(tmp_path.iterdir()) == []  # the SQLite files went with their directory


class _Inbox:
    def __init__(self) -> None:
        self.posted: deque = deque()

    def post(self, event) -> None:
        self.posted.append(event)


class _Receiver:
    name = "c2"

    def __init__(self) -> None:
        self.timers = Timers()
        self.driver_loop = _Inbox()


@pytest.mark.parametrize("crypto", sorted(CRYPTO))
def test_the_wire_posts_only_what_verifies_from_its_sender_to_its_receiver(crypto):
    wire = Wire(node_codec(), "message", crypto)
    receiver = _Receiver()
    msg = DecisionAck(("c1.w", 1), "c1")
    data = b"c1>c2\n" + node_codec().encode(msg)
    good = wire.keys.sign("c1", data)

    wire.receive("c1", receiver, data, good)
    assert [e.msg for e in receiver.driver_loop.posted] == [msg]
    assert receiver.driver_loop.posted[0].src == "c1"

    assert data.endswith(b"c1")  # the ack's sender, last in its encoding
    tampered = data[:-1] + b"3"
    assert tampered != data
    wire.receive("c1", receiver, tampered, good)                 # bytes changed
    wire.receive("c3", receiver, data, good)                     # someone else's name
    wire.receive("c1", receiver, b"c1>c3\n" + data[6:],
                 wire.keys.sign("c1", b"c1>c3\n" + data[6:]))     # meant for another
    assert len(receiver.driver_loop.posted) == 1
    assert wire.refused == 3


def test_the_cli_prints_one_json_object(tmp_path):
    out = CliRunner().invoke(bench, ["node", "--json", "--workflows", "5", "--concurrency",
                                     "2", "--envelope", "turn", "--crypto", "libsodium",
                                     "--layout", "loop", "--data-dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert [(r["envelope"], r["crypto"], r["layout"]) for r in result["runs"]] == [
        ("turn", "libsodium", "loop")]
    assert result["runs"][0]["peak"]["ends"] == {"SUCCEEDED": 5}
