"""A participant's acknowledgement of a COMMIT and the results that stand for it
(agent/core/node/commit_acks.py): a participant whose step starts within
`decision_ack_s` sends no DecisionAck, the coordinator counts its start or result as
one and collects its decision record as the acknowledgement did; one whose step waits
acknowledges when the time is up; a COMMIT notice is acknowledged at once; a result
counts for nothing once the coordinator knows the step was placed again."""

from __future__ import annotations

import random

from fedorch.core.negotiation.messages import Decision, DecisionAck
from fedorch.core.node import Message, Node, StepEnded, Submit, Tick
from fedorch.core.node.records import ResultMsg, Timing
from fedorch.core.node.running_starts import HOLD_S
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness
from tests.unit.core.node.federation import sent

NAMES = ["d0", "d1", "d2"]
WF = "d0.w1"
NOW = 100.0


class Federation(Harness):
    """Three Nodes; the COMMIT's certificate checked by the stand-in vote signer."""

    timing = Timing(max_rounds=1)

    def __init__(self) -> None:
        super().__init__(NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 2}, timing=self.timing, peers=NAMES,
                    rng=random.Random(NAMES.index(name)), disk=self.disks[name],
                    now=self.now)


class AtOnce(Federation):
    timing = Timing(max_rounds=1, decision_ack_s=0.0)


# The bench's three-domain workflow: s0 on d0 (its coordinator), s1 on d1 after s0,
# s2 on d2 after s1.
CHAIN = spec_pb2.WorkflowSpec(name="w", steps=[
    spec_pb2.StepSpec(id="s0", capability="a"),
    spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"]),
    spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])
PLACED = {"s0": "d0", "s1": "d1", "s2": "d2"}


def chain(fed: Federation) -> None:
    """d0 coordinates CHAIN, committed everywhere; nothing ends until a test says so."""
    fed.step("d0", Submit(WF, CHAIN, placement=PLACED))
    fed.deliver()


def end_step(fed: Federation, name: str) -> None:
    """`name`'s running attempt of WF ends, successfully; what follows is delivered."""
    (run,) = [r for r in fed.running[name] if r[0] == WF]
    fed.running[name].discard(run)
    fed.step(name, StepEnded(*run, ok=True))
    fed.deliver()


def collected(fed: Federation) -> bool:
    """d0's COMMIT record of the workflow's round is gone (every participant held it)."""
    return not [k for k in fed.disks["d0"].records if k[0] == WF] \
        and not fed.nodes["d0"].coordinators[WF].awaiting_acks()


def acks_from(fed: Federation, name: str) -> list:
    return [msg for to, msg in fed.sent_by(name, DecisionAck) if to == "d0"]


def test_participants_whose_steps_start_in_time_send_no_decision_ack() -> None:
    fed = Federation()
    chain(fed)
    end_step(fed, "d0")  # s1 starts at d1: its start told d0 stands for d1's ack
    end_step(fed, "d1")  # and s2's at d2
    assert acks_from(fed, "d1") == [] and acks_from(fed, "d2") == []
    assert collected(fed)
    assert fed.nodes["d0"].stats["result counted as a DecisionAck"] >= 2
    assert fed.nodes["d1"].commit_acks.owed == {} == fed.nodes["d2"].commit_acks.owed
    end_step(fed, "d2")
    assert fed.disks["d0"].final[WF].name == "SUCCEEDED"


def test_a_start_or_result_collects_the_record_as_the_decision_ack_did() -> None:
    # Acknowledgements sent at once but lost: the reports alone let the record go.
    fed = AtOnce()
    fed.step("d0", Submit(WF, CHAIN, placement=PLACED))
    lost = lambda src, dst, msg: type(msg) is DecisionAck  # noqa: E731
    fed.deliver(keep=lost)
    assert acks_from(fed, "d1") and acks_from(fed, "d2")  # sent, never delivered
    assert not collected(fed)
    for name in ("d0", "d1"):
        (run,) = [r for r in fed.running[name] if r[0] == WF]
        fed.running[name].discard(run)
        fed.step(name, StepEnded(*run, ok=True))
        fed.deliver(keep=lost)
    fed.now += HOLD_S  # s2's start tell, held for its result, goes
    fed.step("d2", Tick())
    fed.deliver(keep=lost)
    assert collected(fed)


def test_a_participant_whose_step_waits_acknowledges_when_the_time_is_up() -> None:
    fed = Federation()
    chain(fed)  # s1 and s2 wait for s0, which does not end
    assert acks_from(fed, "d1") == [] and not collected(fed)
    owed = fed.nodes["d2"].commit_acks.owed[WF]
    assert fed.nodes["d2"].get_timer() <= owed[2] == fed.now + fed.timing.decision_ack_s
    fed.run_until(fed.now + fed.timing.decision_ack_s)
    assert len(acks_from(fed, "d1")) == 1 and len(acks_from(fed, "d2")) == 1
    assert collected(fed)


def test_a_commit_notice_is_acknowledged_at_once() -> None:
    # The coordinator asks (its notice after commit_notice_s): nothing more waits.
    fed = Federation()
    chain(fed)
    key = (WF, fed.disks["d2"].committed[WF])
    value = fed.disks["d2"].learned[key]
    ready = fed.step("d2", Message("d0", Decision(key, value, "d0")))
    assert [to for to, msg in sent(ready) if type(msg) is DecisionAck] == ["d0"]


def test_a_result_counts_for_nothing_once_the_step_was_placed_again() -> None:
    # A step placed again by a re-placement round: its new domain may run the
    # workflow's first-placement steps without holding the round's COMMIT.
    fed = Federation()
    chain(fed)
    d0 = fed.nodes["d0"]
    d0.state.placements[WF] = {"s2": (7, "d1", "d2")}
    start = ResultMsg(WF, "s1", 1, StepState.RUNNING, {}, "", 0)
    fed.step("d0", Message("d1", start))
    assert d0.stats["result counted as a DecisionAck"] == 0
    assert d0.coordinators[WF].awaiting_acks()


def test_the_first_commit_notice_comes_as_much_later_as_the_wait() -> None:
    # Else a participant whose acknowledgement waited its decision_ack_s would be sent
    # the COMMIT while its acknowledgement is on its way.
    fed = Federation()
    chain(fed)  # committed at fed.now, no time passed
    core = fed.nodes["d0"].coordinators[WF]
    assert core.get_timer() == fed.now + 1.0 + fed.timing.decision_ack_s
    fed.run_until(fed.now + 1.0 + fed.timing.decision_ack_s)
    assert [to for to, msg in fed.sent_by("d0", Decision) if to != "d0"] == []
