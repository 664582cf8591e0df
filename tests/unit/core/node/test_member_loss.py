"""Membership's DEAD and LEFT acting on a Node's negotiations (core/node/member_loss.py),
Nodes driven by hand, coordinator takeover off: d0 coordinates a workflow with s1 on
d1 and s2 on d2; d3 takes no part. The view comes in as `MemberState` inputs."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.messages import ABORT, DecisionQuery, PaxosPrepare
from fedorch.core.node import MemberState, MemberViews, Message, Node, Submit
from fedorch.core.node.records import PrepareMsg, Timing, VoteMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness

NAMES = ["d0", "d1", "d2", "d3"]
WF = "d0.w"
KEY = (WF, 1)
LEASE_S = 8.0
TIMING = Timing(lease_s=LEASE_S, max_rounds=1)
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[
    spec_pb2.StepSpec(id="s1", capability="a"), spec_pb2.StepSpec(id="s2", capability="a")])
PLACED = {"s1": "d1", "s2": "d2"}
# A participant's ballot waits its turn: rank × stagger_s (1 s) + up to backoff_s
# (0.5 s); d1 and d2 are the first two. Then a ballot's two phases, here instant.
TURNS_S = 1 * TIMING.stagger_s + TIMING.backoff_s


class Federation(Harness):
    """Four Nodes, each with its disk; `deliver` hands messages on, except to or from
    the `silent` (crashed). `learned_at`: when each Node first learned each decision."""

    def __init__(self, timing: Timing = TIMING) -> None:
        self.timing = timing
        self.learned_at: dict[tuple[str, tuple], float] = {}
        super().__init__(NAMES)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 4},
                    timing=self.timing, peers=NAMES, rng=random.Random(NAMES.index(name)),
                    disk=self.disks[name], now=self.now)

    def note(self, name: str, what: str, facts: list) -> None:
        if what == "learned":
            self.learned_at.setdefault((name, facts[0]), self.now)


def in_doubt() -> Federation:
    """d0 sends its PREPAREs and crashes: d1 and d2 voted YES, and nobody decided."""
    fed = Federation()
    fed.step("d0", Submit(WF, SPEC, placement=PLACED))
    fed.silent.add("d0")
    for src, dst, msg in [m for m in fed.net if isinstance(m[2], PrepareMsg)]:
        fed.step(dst, Message(src, msg))
    fed.net.clear()  # the votes go to the dead coordinator
    for n in ("d1", "d2"):
        assert fed.nodes[n].participant.status(KEY) == "prepared"
        assert fed.nodes[n].termination.in_doubt() == [KEY]
    return fed


def tell(fed: Federation, state: str, *observers: str, member: str = "d0") -> None:
    for n in observers:
        fed.step(n, MemberState(member, state))


def test_a_prepared_participant_whose_coordinator_is_dead_recovers_at_once() -> None:
    fed = in_doubt()
    fed.now = 1.0
    tell(fed, "DEAD", "d1", "d2")
    # Asked at once, every acceptor (its dead coordinator first), long before the lease.
    asked = fed.sent_by("d1", DecisionQuery)
    assert asked and {to for to, _ in asked} >= {"d0", "d2"}
    assert all(fed.nodes[n].stats["in doubt, coordinator gone: recovery at once"] == 1
               for n in ("d1", "d2"))
    fed.deliver()
    fed.run_until(LEASE_S)
    for n in ("d1", "d2"):
        at = fed.learned_at.get((n, KEY))
        assert at is not None and at <= 1.0 + TURNS_S, (n, at)
        assert fed.disks[n].learned[KEY] == ABORT
        assert KEY not in fed.disks[n].holds  # released: the reservation is free again
    assert fed.sent_by("d1", PaxosPrepare) or fed.sent_by("d2", PaxosPrepare)


def test_without_membership_the_same_doubt_waits_its_lease() -> None:
    """The control: the run above with no view told recovers only after the lease."""
    fed = in_doubt()
    fed.run_until(3 * LEASE_S)
    for n in ("d1", "d2"):
        at = fed.learned_at.get((n, KEY))
        assert at is not None and at >= LEASE_S, (n, at)


@pytest.mark.parametrize("state", ["SUSPECT", "ALIVE", ""])
def test_suspicion_is_not_death_nothing_moves_before_the_lease(state: str) -> None:
    fed = in_doubt()
    fed.now = 1.0
    tell(fed, state, "d1", "d2")
    assert not fed.net
    for n in ("d1", "d2"):
        assert fed.nodes[n].get_timer() >= LEASE_S
    fed.run_until(LEASE_S - 0.01)
    assert not fed.sent_by("d1", DecisionQuery) and not fed.sent_by("d2", DecisionQuery)
    assert not fed.learned_at


def test_left_acts_as_dead() -> None:
    fed = in_doubt()
    fed.now = 1.0
    tell(fed, "LEFT", "d1", "d2")
    fed.deliver()
    fed.run_until(LEASE_S)
    assert fed.learned_at.get(("d1", KEY), LEASE_S) <= 1.0 + TURNS_S


def test_a_restored_participant_learns_the_view_again_then_recovers() -> None:
    fed = in_doubt()
    fed.now = 1.0
    tell(fed, "DEAD", "d2")  # d2's view; d1 restarts before its membership says anything
    fed.net.clear()  # d2's questions are lost
    fed.now = 2.0
    d1 = fed.restore("d1")
    assert d1.members == {} and d1.termination.in_doubt() == [KEY]
    # A fresh Node knows nothing until told: its restored lease counts from the restore.
    assert d1.get_timer() >= 2.0 + LEASE_S or d1.get_timer() is None
    fed.step("d1", MemberViews((MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
                                MemberState("d3", "ALIVE"))))
    assert fed.nodes["d1"].get_timer() <= 2.0 + TURNS_S
    assert any(to == "d2" for to, _ in fed.sent_by("d1", DecisionQuery))
    fed.deliver()
    fed.run_until(LEASE_S)
    assert fed.learned_at.get(("d1", KEY), LEASE_S) <= 2.0 + TURNS_S


def test_a_yes_voted_when_the_view_already_says_dead_is_due_at_once() -> None:
    """The PREPARE arrives after its coordinator's death (it was delayed): the YES is
    tracked with the coordinator already DEAD, and its questions go at the next tick."""
    fed = Federation()
    fed.step("d0", Submit(WF, SPEC, placement=PLACED))
    prepares = [m for m in fed.net if isinstance(m[2], PrepareMsg)]
    fed.net.clear()
    fed.silent.add("d0")
    fed.now = 2.0
    tell(fed, "DEAD", "d1", "d2")
    assert not fed.net  # nothing in doubt yet
    for src, dst, msg in prepares:
        fed.step(dst, Message(src, msg))
    assert fed.nodes["d1"].participant.status(KEY) == "prepared"
    assert fed.nodes["d1"].get_timer() == 2.0  # due now, asked from its timer
    fed.net.clear()  # the votes go to the dead coordinator
    fed.run_until(LEASE_S)
    assert fed.learned_at.get(("d1", KEY), LEASE_S) <= 2.0 + TURNS_S
    assert fed.learned_at.get(("d2", KEY), LEASE_S) <= 2.0 + TURNS_S


# ---- the coordinator's side --------------------------------------------------------


def preparing(max_rounds: int = 1) -> Federation:
    """d0 has sent its PREPAREs; d1 has voted YES, d2 not yet."""
    fed = Federation(Timing(lease_s=LEASE_S, max_rounds=max_rounds))
    fed.step("d0", Submit(WF, SPEC, placement=PLACED))
    prepares = [m for m in fed.net if isinstance(m[2], PrepareMsg)]
    fed.net.clear()
    for src, dst, msg in prepares:
        if dst == "d1":
            fed.step(dst, Message(src, msg))
    votes = [m for m in fed.net if isinstance(m[2], VoteMsg)]
    fed.net.clear()
    for src, dst, msg in votes:
        fed.step(dst, Message(src, msg))
    assert fed.nodes["d0"].coordinators[WF].phase.value == "PREPARING"
    return fed


def test_a_silent_participant_declared_dead_aborts_the_round_at_once_naming_it() -> None:
    fed = preparing()
    fed.silent.add("d2")
    fed.now = 0.5  # the prepare timeout (2 s) is far off
    fed.step("d0", MemberState("d2", "DEAD"))
    row = fed.disks["d0"].rows[WF]
    assert row.state is WorkflowState.ABORTED
    assert "d2 is DEAD" in row.reason
    assert fed.disks["d0"].records.get(KEY, ABORT) == ABORT  # the ABORT, not a COMMIT
    assert fed.nodes["d0"].stats["round aborted: a silent participant gone"] == 1
    fed.deliver()  # d1, which voted YES, hears the ABORT and releases
    assert fed.disks["d1"].learned[KEY] == ABORT and KEY not in fed.disks["d1"].holds


def test_the_next_round_places_the_lost_participants_steps_elsewhere() -> None:
    fed = preparing(max_rounds=2)
    fed.silent.add("d2")
    fed.now = 0.5
    fed.step("d0", MemberState("d2", "DEAD"))
    core = fed.nodes["d0"].coordinators[WF]
    assert core.round == 2 and "d2" not in core.placement.values()
    fed.deliver()
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING  # committed in round 2
    assert fed.disks["d0"].committed[WF] == 2


def test_a_participant_dead_after_its_yes_does_not_abort_the_round() -> None:
    """Its YES is on its disk and stands: the round waits for the others' votes, and
    commits only with every YES."""
    fed = preparing()
    fed.step("d0", MemberState("d1", "DEAD"))  # d1 voted YES already
    assert fed.nodes["d0"].coordinators[WF].phase.value == "PREPARING"
    assert not fed.nodes["d0"].stats["round aborted: a silent participant gone"]
    fed.step("d0", MemberState("d3", "DEAD"))  # not asked at all
    assert fed.nodes["d0"].coordinators[WF].phase.value == "PREPARING"
    fed.step("d0", MemberState("d2", "SUSPECT"))  # suspicion: nothing
    assert fed.nodes["d0"].coordinators[WF].phase.value == "PREPARING"


def test_a_participant_dead_then_alive_again_is_still_asked_in_new_rounds() -> None:
    fed = Federation(Timing(lease_s=LEASE_S, max_rounds=1))
    fed.step("d0", MemberState("d2", "DEAD"))
    placer = fed.nodes["d0"].placer(SPEC, PLACED)
    chosen = placer({})
    assert "d2" not in chosen.assignment.values()  # the hint is not taken: d2 is gone
    fed.step("d0", MemberState("d2", "ALIVE"))
    assert fed.nodes["d0"].placer(SPEC, PLACED)({}).assignment == PLACED


def test_only_a_member_newly_gone_acts_and_never_the_node_itself() -> None:
    fed = in_doubt()
    fed.now = 1.0
    tell(fed, "DEAD", "d1")
    asked = len(fed.sent_by("d1", DecisionQuery))
    tell(fed, "LEFT", "d1")  # DEAD, then LEFT: no news, nothing asked again
    assert len(fed.sent_by("d1", DecisionQuery)) == asked
    # A driver that tells a Node it is DEAD itself changes nothing it coordinates, not
    # even a round in which its own vote is still to come.
    fed = Federation()
    fed.step("d0", Submit(WF, SPEC, placement={"s1": "d1", "s2": "d0"}))
    fed.step("d0", MemberState("d0", "DEAD"))
    core = fed.nodes["d0"].coordinators[WF]
    assert core.phase.value == "PREPARING" and core.placement["s2"] == "d0"
