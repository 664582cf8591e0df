"""Self-fencing inside the Node (agent/core/node/self_fencing.py), Nodes driven by hand:
d0 coordinates one workflow, s1 runs on d1 and s2 on d2 (neither ends unless a test
says so); d3 takes no part. Coordinator takeover is off; the membership view comes in
as `MemberState` inputs, every member ALIVE at first."""

from __future__ import annotations

import random

from fedorch.core.node import MemberState, MemberViews, Message, Node, StepEnded, Submit
from fedorch.core.node.records import AckMsg, ResultMsg, Timing
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness

NAMES = ["d0", "d1", "d2", "d3"]
WF = "d0.w"
LEASE_S = 5.0
TIMING = Timing(max_rounds=1, step_lease_s=LEASE_S)
S1 = (WF, "s1", 1)


class Federation(Harness):
    def __init__(self, timing: Timing = TIMING) -> None:
        self.timing = timing
        super().__init__(NAMES)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 4},
                    timing=self.timing, peers=NAMES, rng=random.Random(NAMES.index(name)),
                    disk=self.disks[name], now=self.now)

    def first_inputs(self, name: str) -> list[MemberState]:
        return [MemberState(m, "ALIVE") for m in NAMES if m != name]


def running(timing: Timing = TIMING, *, retries: int = 0,
            idempotent: bool = False) -> Federation:
    """Committed at t=0: s1 runs at d1, s2 at d2."""
    fed = Federation(timing)
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a", retries=retries, idempotent=idempotent),
        spec_pb2.StepSpec(id="s2", capability="a")])
    fed.step("d0", Submit(WF, spec, placement={"s1": "d1", "s2": "d2"}))
    fed.deliver()
    assert S1 in fed.running["d1"] and (WF, "s2", 1) in fed.running["d2"]
    return fed


def view(fed: Federation, at: float, observer: str, **states: str) -> None:
    fed.now = at
    fed.step(observer, MemberViews(tuple(MemberState(d, s) for d, s in states.items())))


def s1_at(fed: Federation, name: str = "d1") -> tuple:
    return fed.disks[name].results.get(WF, {}).get("s1")


def test_a_cut_off_participant_stops_its_step_at_its_lease_and_not_before() -> None:
    fed = running()
    fed.silent |= {"d0", "d2"}  # d1 hears nobody of the workflow; d3 stays up
    view(fed, 2.0, "d1", d0="SUSPECT", d2="SUSPECT")  # last heard ALIVE at 2 s
    view(fed, 4.0, "d1", d0="DEAD", d2="DEAD")
    assert fed.nodes["d1"].get_timer() == 2.0 + LEASE_S
    fed.run_until(2.0 + LEASE_S - 0.01)
    assert S1 in fed.running["d1"] and not fed.stopped
    assert s1_at(fed) is None

    fed.run_until(2.0 + LEASE_S)
    assert fed.stopped == [("d1", S1)]
    attempt, state, _, error = s1_at(fed)
    assert (attempt, state) == (1, StepState.FAILED)
    assert error.startswith("fenced: lost contact with d0, d2 for 5 s"), error
    assert fed.nodes["d1"].stats["step self-fenced"] == 1
    # Written in the Ready that tells it: the result leaves only after the write.
    ready = next(r for r in fed.readies["d1"] if r.stop_steps)
    assert ready.stop_steps == (S1,)
    assert any(op.table == "results" for w in ready.writes for op in w.ops)
    told = [o.to for o in ready.send_after_write if isinstance(o.msg, ResultMsg)]
    assert told == ["d0"] and not any(isinstance(o.msg, ResultMsg) for o in ready.send_now)
    # Nothing is left due: the timer does not fire again for it.
    assert fed.nodes["d1"].get_timer() != 2.0 + LEASE_S


def test_the_fenced_result_reaches_the_coordinator_when_contact_returns() -> None:
    fed = running()
    fed.silent |= {"d0", "d2"}
    view(fed, 1.0, "d1", d0="DEAD", d2="DEAD")
    fed.run_until(1.0 + LEASE_S)
    assert fed.stopped == [("d1", S1)]
    fed.silent -= {"d0", "d2"}
    fed.run_until(20.0)  # resent until acknowledged
    step = fed.nodes["d0"].progress[WF].steps["s1"] if WF in fed.nodes["d0"].progress \
        else None
    known = fed.disks["d0"].results[WF]["s1"]
    assert known[1] is StepState.FAILED and known[3].startswith("fenced:"), known
    assert step is None or step.state is StepState.FAILED
    assert not [p for p in fed.nodes["d1"].pending if p[0] == "result"]


def test_one_that_keeps_hearing_from_a_single_other_participant_does_not_fence() -> None:
    fed = running()
    fed.silent.add("d0")
    view(fed, 1.0, "d1", d0="DEAD")  # d2 stays ALIVE in d1's view
    fed.run_until(10 * LEASE_S)
    assert S1 in fed.running["d1"] and not fed.stopped
    assert fed.nodes["d1"].stats["step self-fenced"] == 0


def test_messages_from_a_participant_keep_it_running_until_they_stop() -> None:
    """Both contacts DEAD in d1's view, yet d2's messages still arrive: each is contact,
    and the lease counts from the last one."""
    fed = running()
    fed.silent.add("d0")
    view(fed, 1.0, "d1", d0="DEAD", d2="DEAD")
    last = 1.0
    for at in (4.0, 8.0, 12.0):
        fed.run_until(at)
        fed.step("d1", Message("d2", AckMsg(("nothing", WF, "d2"))))
        last = at
        assert S1 in fed.running["d1"], at
    fed.run_until(last + LEASE_S - 0.01)
    assert not fed.stopped
    fed.run_until(last + LEASE_S)
    assert fed.stopped == [("d1", S1)]


def test_suspect_alone_does_not_fence() -> None:
    fed = running()
    fed.silent |= {"d0", "d2"}
    view(fed, 1.0, "d1", d0="SUSPECT", d2="SUSPECT")
    assert fed.nodes["d1"].get_timer() is None or fed.nodes["d1"].get_timer() > 100
    fed.run_until(10 * LEASE_S)
    assert S1 in fed.running["d1"] and not fed.stopped
    # One of them DEAD, the other still SUSPECT: still in contact.
    view(fed, 60.0, "d1", d0="DEAD")
    fed.run_until(60.0 + 10 * LEASE_S)
    assert S1 in fed.running["d1"] and not fed.stopped


def test_a_contact_back_alive_before_the_lease_cancels_the_fence() -> None:
    fed = running()
    fed.silent |= {"d0", "d2"}
    view(fed, 1.0, "d1", d0="DEAD", d2="DEAD")
    view(fed, 1.0 + LEASE_S - 1.0, "d1", d2="ALIVE")
    fed.run_until(10 * LEASE_S)
    assert S1 in fed.running["d1"] and not fed.stopped


def test_an_attempt_due_while_cut_off_past_the_lease_is_never_started() -> None:
    """s1 fails with a retry left at a moment its lease is over (its end and the timer
    in one turn): the retry is not started, and the step ends fenced."""
    fed = running(retries=1)
    fed.silent |= {"d0", "d2"}
    view(fed, 1.0, "d1", d0="DEAD", d2="DEAD")
    fed.now = 1.0 + LEASE_S + 1.0
    ready = fed.step("d1", StepEnded(*S1, ok=False, error="exit 1"))
    assert not ready.start_steps
    attempt, state, _, error = s1_at(fed)
    assert (attempt, state) == (2, StepState.FAILED) and error.startswith("fenced:"), error
    assert (WF, "s1", 2) not in fed.disks["d1"].runs
    assert fed.nodes["d1"].stats["step not started: fenced"] == 1


def test_an_attempt_never_started_is_noted_with_its_failed_result() -> None:
    """The retry refused its start is noted (`step_fenced`) in the write group of its
    FAILED result, so an observer that counts started attempts (the simulator's
    checker) knows the FAILED of an attempt that never ran for the domain's own word
    (takeover soak seed 88000784: named as an attempt that never ran)."""
    fed = running(retries=1)
    fed.silent |= {"d0", "d2"}
    view(fed, 1.0, "d1", d0="DEAD", d2="DEAD")
    fed.now = 1.0 + LEASE_S + 1.0
    ready = fed.step("d1", StepEnded(*S1, ok=False, error="exit 1"))
    (group,) = [w for w in ready.writes if ("step_fenced", (WF, "s1", 2)) in w.notes]
    assert any(op.table == "results" and op.key == (WF, "s1")
               and op.value[:2] == (2, StepState.FAILED) for op in group.ops)


def test_the_coordinator_never_fences_its_own_steps() -> None:
    fed = Federation()
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s0", capability="a"), spec_pb2.StepSpec(id="s1", capability="a")])
    fed.step("d0", Submit(WF, spec, placement={"s0": "d0", "s1": "d1"}))
    fed.deliver()
    assert (WF, "s0", 1) in fed.running["d0"]
    # s1 ends at d1 first: a step of a DEAD participant that is not terminal would be
    # failed by the coordinator's loss verdict (domain_loss.py), ending the workflow.
    fed.step("d1", StepEnded(WF, "s1", 1, ok=True))
    fed.deliver()
    fed.silent.add("d1")
    view(fed, 1.0, "d0", d1="DEAD", d2="DEAD", d3="DEAD")
    fed.run_until(10 * LEASE_S)
    assert (WF, "s0", 1) in fed.running["d0"]
    assert ("d0", (WF, "s0", 1)) not in fed.stopped


def test_off_without_a_step_lease() -> None:
    fed = running(Timing(max_rounds=1))
    fed.silent |= {"d0", "d2"}
    view(fed, 1.0, "d1", d0="DEAD", d2="DEAD")
    fed.run_until(10 * LEASE_S)
    assert S1 in fed.running["d1"] and not fed.stopped
    assert fed.nodes["d1"].fencing is None


def test_a_restored_participant_counts_the_lease_from_its_new_start() -> None:
    """A restart forgets the moments heard (memory only); the interrupted attempt's
    retry starts anew, once its coordinator confirmed the placement
    (restart_check.py), and gets a lease from that start."""
    fed = running(retries=1, idempotent=True)
    fed.now = 3.0
    fed.restore("d1")
    assert fed.running["d1"] == set()  # asked first
    fed.deliver()
    assert (WF, "s1", 2) in fed.running["d1"]
    fed.silent |= {"d0", "d2"}
    view(fed, 3.0, "d1", d0="DEAD", d2="DEAD")  # a restored Node is told its view anew
    fed.run_until(3.0 + LEASE_S - 0.01)
    assert not fed.stopped
    fed.run_until(3.0 + LEASE_S)
    assert fed.stopped == [("d1", (WF, "s1", 2))]
