"""A submission's first PREPAREs leave with the write of its row under Paxos Commit
(core/node/prepares_ahead.py): in the Ready's send_now beside that write, the own
participant's, classic 2PC's and one to a peer the turn sends something else after
the write still after it; a coordinator that crashes before the
write knows nothing of the workflow once restarted, refuses a late vote for it, and
the participants' in-doubt queries and recovery end the round ABORTED, nothing run."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Accept,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
)
from fedorch.core.node import Message, Node, Submit
from fedorch.core.node.records import PrepareMsg, Timing, VoteMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness

NAMES = ["d0", "d1", "d2"]
WF = "d0.w1"
NOW = 100.0
SPEC = spec_pb2.WorkflowSpec(name="w1", steps=[
    spec_pb2.StepSpec(id=s, capability="a") for s in ("s0", "s1", "s2")])
PLACEMENT = {"s0": "d0", "s1": "d1", "s2": "d2"}


class Federation(Harness):
    classic = False

    def __init__(self) -> None:
        super().__init__(NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 2},
                    timing=Timing(classic=self.classic), peers=NAMES,
                    rng=random.Random(NAMES.index(name)), disk=self.disks[name],
                    now=self.now)


class Classic(Federation):
    classic = True


def _prepares(outgoing) -> dict[str, PrepareMsg]:
    return {o.to: o.msg for o in outgoing if type(o.msg) is PrepareMsg}


def test_the_first_prepares_to_peers_leave_with_the_submissions_write():
    f = Federation()
    node = f.nodes["d0"]
    node.step(f.now, Submit(WF, SPEC, placement=PLACEMENT))
    ready = node.ready()
    points = [w.point for w in ready.writes]
    assert "workflow row" in points and "round record" in points
    assert set(_prepares(ready.send_now)) == {"d1", "d2"}  # with the write
    # Its own participant's YES would be a hold here of a workflow a crash may lose.
    assert set(_prepares(ready.send_after_write)) == {"d0"}
    # The client hears of the workflow only once its row is durable.
    assert (WF, WorkflowState.NEGOTIATING) in ready.status_changes
    assert not ready.status_now
    node.advance(ready)
    for o in ready.send_now + ready.send_after_write:
        f.net.append(("d0", o.to, o.msg))
    f.deliver()
    assert f.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    assert {n for n, _ in f.started} == {"d0", "d1", "d2"}


def test_a_prepare_goes_ahead_only_to_a_peer_with_nothing_else_after_the_write():
    f = Federation()
    d1 = f.nodes["d1"]
    d1.step(f.now, Submit("d1.w2", SPEC, placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    r1 = d1.ready()
    d1.advance(r1)
    [to_d0] = [o.msg for o in r1.send_now + r1.send_after_write
               if o.to == "d0" and type(o.msg) is PrepareMsg]
    node = f.nodes["d0"]
    # One turn: d0 votes on d1's workflow (its YES waits for its reservation's write)
    # and takes a submission of its own.
    node.step(f.now, Message("d1", to_d0))
    node.step(f.now, Submit(WF, SPEC, placement=PLACEMENT))
    ready = node.ready()
    assert any(o.to == "d1" and type(o.msg) is VoteMsg for o in ready.send_after_write)
    # d1's PREPARE rides with that vote after the write, one envelope; d2, to which
    # the turn sends nothing else, has its PREPARE now.
    assert set(_prepares(ready.send_now)) == {"d2"}
    assert set(_prepares(ready.send_after_write)) == {"d0", "d1"}
    node.advance(ready)
    assert node.ready().empty()
    # Its stats say so: two marked to go with the write, one sent with it.
    assert node.stats["submission's PREPARE marked to go with its write"] == 2
    assert node.stats["submission's PREPARE sent with its write"] == 1


def test_classic_2pc_keeps_its_prepares_after_the_write():
    f = Classic()
    node = f.nodes["d0"]
    node.step(f.now, Submit(WF, SPEC, placement=PLACEMENT))
    ready = node.ready()
    assert not _prepares(ready.send_now)
    assert set(_prepares(ready.send_after_write)) == {"d0", "d1", "d2"}


def test_a_later_rounds_prepares_wait_for_its_round_record():
    f = Federation()
    f.step("d0", Submit(WF, SPEC, placement=PLACEMENT))
    # d2's NO redoes the round: round 2's PREPAREs follow its record.
    f.deliver(keep=lambda src, dst, msg: type(msg) is VoteMsg and src == "d2")
    [(src, dst, vote)] = [m for m in f.net if type(m[2]) is VoteMsg]
    f.net = []
    f.step("d0", Message("d2", VoteMsg(vote.key, "d2", False, "no")))
    later = [r for r in f.readies["d0"] if any(
        type(o.msg) is PrepareMsg and o.msg.tx.round == 2
        for o in r.send_now + r.send_after_write)]
    assert later
    assert not any(type(o.msg) is PrepareMsg for r in later for o in r.send_now)


def _crashed_before_the_write(f: Federation) -> dict[str, PrepareMsg]:
    """d0 takes the submission and hands its Ready's send_now to the network, then
    crashes before its write: restarted from a disk without the workflow."""
    node = f.nodes["d0"]
    node.step(f.now, Submit(WF, SPEC, placement=PLACEMENT))
    ready = node.ready()
    sent = _prepares(ready.send_now)
    for o in ready.send_now:
        f.net.append(("d0", o.to, o.msg))
    f.restore("d0")  # nothing of the Ready was written
    assert WF not in f.disks["d0"].rows and WF not in f.nodes["d0"].coordinators
    return sent


def test_a_crash_before_the_write_ends_the_round_aborted_everywhere():
    f = Federation()
    sent = _crashed_before_the_write(f)
    assert set(sent) == {"d1", "d2"}
    key = sent["d1"].tx.key
    f.deliver(keep=lambda src, dst, msg: type(msg) is VoteMsg)  # held: d0 is back
    votes = [(src, msg) for src, _, msg in f.net]
    assert {src for src, v in votes if v.yes} == {"d1", "d2"}  # both hold a YES
    f.net = []
    # A late vote for the lost round: refused, nothing made of it.
    with pytest.raises(RemoteProtocolError):
        f.step("d0", Message("d1", votes[0][1]))
    assert WF not in f.disks["d0"].rows and WF not in f.nodes["d0"].coordinators
    # The leases pass: the participants ask d0, then the acceptors, and recover.
    f.run_until(NOW + 120.0)
    for name in ("d1", "d2"):
        learned = f.disks[name].learned.get(key)
        assert learned is not None and not learned.commit, name
        assert not f.nodes[name].participant.holds() and not f.disks[name].holds
    assert not f.started  # nothing ran anywhere
    assert WF not in f.disks["d0"].rows  # the client was never told of it
    queries = [m for n in ("d1", "d2") for _, m in f.sent_by(n, DecisionQuery)]
    assert queries  # asked in doubt
    # d0 knows nothing of the round: the ABORT is a recovery ballot's, chosen by the
    # acceptors (no ballot 0 was ever sent, so none holds a value of the round).
    assert [m for n in ("d1", "d2") for _, m in f.sent_by(n, PaxosPrepare)]
    assert not any(m.ballot.n == 0 for n in NAMES for _, m in f.sent_by(n, Accept))
    answers = [m for _, m in f.sent_by("d0", DecisionAnswer)]
    assert answers and all(a.value is None or not a.value.commit for a in answers)
