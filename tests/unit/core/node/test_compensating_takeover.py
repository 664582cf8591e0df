"""Sagas after a coordinator takeover (core/node/compensating.py, takeover.py): the
successor that ends a workflow FAILED drives its compensations as the original does,
each attempt run once; a returning old coordinator drives none, and its tells are
refused where the later epoch is known.

d0 coordinates and runs nothing; s0 (d1) and s1 (d2, after s0) have a compensate
block; s2 (d2, after s1) fails. d0 dies while s2 runs; d1, the lowest participant,
takes over. The tests of a `Bounded` federation take messages through the authority
table, as the drivers do; those that place the steps otherwise say so."""

from __future__ import annotations

import pytest
from fedorch.core.node import MemberState, Message, Node, StepEnded, Submit
from fedorch.core.node.authority import Refused, check
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.inputs import CompensationEnded
from fedorch.core.node.ready import Ready
from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    CompensatedMsg,
    CompensateMsg,
    FinalMsg,
    ResultMsg,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_compensating import end_oldest, hold_attempts
from tests.unit.core.node.test_takeover import NAMES, WF
from tests.unit.core.node.test_takeover import Federation as TakeoverFederation


class Sagas(TakeoverFederation):
    """The takeover tests' four Nodes (takeover on); every attempt (a step's or a
    compensation's) is kept running until the test ends it."""

    steps_end_at_once = False

    def __init__(self) -> None:
        self.queue: dict[str, list[tuple]] = {n: [] for n in NAMES}
        self.compensations: list[tuple[str, tuple]] = []  # (domain, start entry)
        super().__init__()

    def flush(self, name: str) -> Ready:
        return hold_attempts(self, name, super().flush(name))

    def end(self, name: str, ok: bool, error: str = "") -> tuple:
        return end_oldest(self, name, ok, error)

    def kill(self, name: str) -> None:
        """`name` dies: silent from now on, and DEAD in every other view."""
        self.silent.add(name)
        self.queue[name] = []
        for n in NAMES:
            if n != name:
                self.step(n, MemberState(name, "DEAD"))

    def restart(self, name: str) -> Node:
        self.silent.discard(name)
        self.queue[name] = []
        self.net = [m for m in self.net if name not in (m[0], m[1])]
        return self.restore(name)


def spec() -> spec_pb2.WorkflowSpec:
    comp = spec_pb2.Compensation(params_json='{"undo": true}')
    return spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s0", capability="a", compensate=comp),
        spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], compensate=comp),
        spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])


def running_s2() -> Sagas:
    """s0 and s1 SUCCEEDED (d0 heard both); s2 runs in d2."""
    f = Sagas()
    f.step("d0", Submit(WF, spec(), placement={"s0": "d1", "s1": "d2", "s2": "d2"}))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    assert [r[1] for r in f.queue["d2"]] == ["s2"]
    return f


def taken_over_and_failed(*, failure_before_death: bool) -> Sagas:
    """d0 dies while s2 runs (`failure_before_death`: s2 failed and its result to d0
    was lost with it); d1 takes over, learns s2 FAILED and ends the workflow."""
    f = running_s2()
    if failure_before_death:
        run = f.queue["d2"].pop(0)
        f.step("d2", StepEnded(*run, ok=False, error="boom"))
        f.net = []  # its result (to d0) is lost with d0
    f.kill("d0")
    f.deliver()
    assert f.evidence.acting == {(WF, 1): "d1"}
    if not failure_before_death:
        f.end("d2", False, "boom")
    assert f.disks["d1"].final[WF] is WorkflowState.FAILED
    assert f.disks["d2"].final[WF] is WorkflowState.FAILED
    return f


def rows(f: Sagas, name: str = "d1") -> dict[str, tuple[str, int]]:
    return {k[1]: (r.state, r.attempts) for k, r in f.disks[name].compensations.items()
            if k[0] == WF}


@pytest.mark.parametrize("failure_before_death", [False, True])
def test_the_successor_runs_every_compensation_once_in_reverse_order(
        failure_before_death: bool) -> None:
    f = taken_over_and_failed(failure_before_death=failure_before_death)
    # The successor planned with its end, and told s1's domain first.
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]
    assert rows(f) == {"s0": ("PENDING", 0), "s1": ("RUNNING", 1)}
    f.end("d2", True)
    assert f.compensations[1] == ("d1", (WF, "s0", 1, COMPENSATE))  # its own step
    f.end("d1", True)
    assert rows(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert len(f.compensations) == 2  # each once
    _, summary = f.nodes["d1"].compensating.of(WF)
    assert summary.value == "DONE"
    assert f.disks["d1"].epochs[WF] == (1, "d1")
    assert not f.nodes["d1"].compensating.cores
    assert f.disks["d2"].comp_runs[(WF, "s1", 1)] == ("succeeded", "", True)  # acked
    assert not rows(f, "d2") and not rows(f, "d0")  # only the successor holds rows


def test_a_restarted_successor_tells_the_running_attempt_again_and_it_runs_once() -> None:
    f = taken_over_and_failed(failure_before_death=False)
    f.restart("d1")
    f.deliver()
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]  # not started twice
    f.end("d2", True)
    f.end("d1", True)
    assert rows(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}


def test_a_successor_that_crashed_before_planning_plans_on_restore() -> None:
    f = running_s2()
    f.kill("d0")
    f.deliver()
    run = f.queue["d2"].pop(0)
    f.step("d2", StepEnded(*run, ok=False, error="boom"))
    # d1 ends it (its end told first, and acknowledged by d2): its other sends lost.
    f.deliver(keep=lambda src, dst, msg: src == "d1"
              and not (isinstance(msg, FinalMsg) and not msg.owed))
    assert f.disks["d1"].final[WF] is WorkflowState.FAILED
    f.disks["d1"].compensations.clear()  # the crash came after the end's write group
    f.net = []
    f.restart("d1")
    f.deliver()
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]
    f.end("d2", True)
    f.end("d1", True)
    assert rows(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}


def test_a_returning_old_coordinator_drives_none_and_its_tells_are_refused() -> None:
    f = taken_over_and_failed(failure_before_death=False)
    cert = f.disks["d1"].certificates[WF][1]
    d0 = f.restart("d0")  # back from its disk: its row still RUNNING in epoch 0
    f.step("d0", Message("d1", ClaimMsg(WF, 1, won=cert)))
    f.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1, won=cert)))
    f.deliver()
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert not d0.compensating.cores and not rows(f, "d0")
    assert not f.sent_by("d0", CompensateMsg)
    # A tell in epoch 0 is refused where epoch 1 is known: only d1 drives.
    with pytest.raises(Refused):
        check(f.nodes["d2"], "d0", CompensateMsg(WF, "s1", 1))
    check(f.nodes["d2"], "d1", CompensateMsg(WF, "s1", 1))
    f.end("d2", True)
    f.end("d1", True)
    assert rows(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert len(f.compensations) == 2


def test_a_coordinator_whose_end_a_later_epoch_told_on_stops_driving() -> None:
    # d0 ended the workflow FAILED and drives its saga; then an end of epoch 1 comes
    # (a claimant told it on): d0 follows it, drops its core and drives no more.
    f = running_s2()
    f.end("d2", False, "boom")
    d0 = f.nodes["d0"]
    assert WF in d0.compensating.cores
    f.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1)))
    assert WF not in d0.compensating.cores
    assert f.disks["d0"].epochs[WF] == (1, "d1")
    f.restart("d0")
    assert WF not in f.nodes["d0"].compensating.cores  # nor after a restart


def test_a_report_goes_to_the_epoch_holder_followed() -> None:
    f = taken_over_and_failed(failure_before_death=False)
    f.end("d2", True)
    assert [to for to, _ in f.sent_by("d2", CompensatedMsg)] == ["d1"]  # not to d0


def test_an_old_coordinator_that_holds_no_core_follows_a_later_end_and_drives_no_more():
    # d0 ended the workflow FAILED in epoch 0 and owes nothing it knows of; an end of
    # epoch 1 comes (a claimant told it on), then a late SUCCEEDED result: d0 follows
    # epoch 1 and starts no saga of its own (the claimant drives it).
    f = running_s2()
    f.disks["d0"].results[WF] = {}  # as if s0 and s1's results had not reached it
    f.restart("d0")
    f.end("d2", False, "boom")
    d0 = f.nodes["d0"]
    assert f.disks["d0"].final[WF] is WorkflowState.FAILED and WF not in d0.compensating.cores
    f.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1)))
    assert f.disks["d0"].epochs[WF] == (1, "d1")
    f.step("d0", Message("d2", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {}, "")))
    assert WF not in d0.compensating.cores and not rows(f, "d0")


def test_a_coordinator_dead_mid_saga_after_its_end_is_succeeded_by_an_elected_driver():
    # d0 ends the workflow FAILED and tells the saga's plan; s1's compensation runs
    # (d2), s0's is told to d1 and runs there; d0 dies for good. A participant whose
    # plan is open is elected in epoch 1 and drives the plan from attempt 1.
    f = running_s2()
    assert f.end("d2", False, "boom")[1] == "s2"
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED
    for name in ("d1", "d2"):
        assert f.disks[name].plans[WF] == (("s0", "d1", 1), ("s1", "d2", 1)), name
    f.end("d2", True)  # s1 compensated: d0 tells s0's attempt 1 to d1
    assert f.compensations[-1] == ("d1", (WF, "s0", 1, COMPENSATE))
    f.kill("d0")
    f.run_until(f.now + 30.0)
    holders = {f.disks[n].epochs.get(WF) for n in ("d1", "d2")}
    assert len(holders) == 1
    epoch, successor = holders.pop()
    assert epoch >= 1 and successor in ("d1", "d2")
    assert f.nodes[successor].stats["saga plan adopted by a successor"] == 1
    f.end("d1", True)  # s0's compensation ends: reported to the successor
    rows, summary = f.nodes[successor].compensating.of(WF)
    assert summary.value == "DONE"
    assert {s: (r.state, r.attempts) for s, r in rows.items()} == {
        "s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    # Each compensation attempt ran once, in its own domain.
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s1", 1, COMPENSATE))]
    assert all(f.disks[n].plans.get(WF) in (None, ()) for n in ("d1", "d2"))
    assert f.disks[successor].final[WF] is WorkflowState.FAILED


class Bounded(Sagas):
    """`Sagas` whose Nodes take a peer's message only once the authority table lets it
    through, as both drivers do at their boundary (a refused one is dropped: its sender
    resends it while it waits for an acknowledgement)."""

    def __init__(self) -> None:
        self.refused: list[tuple[str, str, object]] = []
        super().__init__()

    def step(self, name: str, *inputs: object) -> Ready:
        taken = []
        for event in inputs:
            if isinstance(event, Message):
                try:
                    check(self.nodes[name], event.src, event.msg)
                except Refused:
                    self.refused.append((name, event.src, event.msg))
                    continue
            taken.append(event)
        return super().step(name, *taken)


def two_claimants_told_the_end_on() -> tuple[Bounded, list[tuple[str, ClaimAnswerMsg]]]:
    """d0 has an end, FAILED (s2 failed), and dies before the notices that tell it
    leave (with takeover an end is told before it is made: d0 never made it); d1 and
    d2 both claim epoch 1 (d2 had granted itself epoch 1 before a restart), their
    claims held back. d0's end, late, reaches each claimant as d0's answer to its claim
    (a claimant refuses d0's notice itself, of an older epoch with no certificate:
    authority_ends.py): each tells it on in epoch 1 (a claimant's end, no certificate)
    and plans the saga."""
    f = Bounded()
    f.step("d0", Submit(WF, spec(), placement={"s0": "d1", "s1": "d2", "s2": "d2"}))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    run = f.queue["d2"].pop(0)  # s2 fails; its result reaches d0, which tells FAILED
    f.step("d2", StepEnded(*run, ok=False, error="boom"))
    f.deliver(keep=lambda src, dst, msg: src == "d0")
    assert f.nodes["d0"].domain_loss.held == {WF: WorkflowState.FAILED}
    assert f.disks["d0"].rows[WF].state is WorkflowState.RUNNING  # told, not made
    late = [(dst, msg) for src, dst, msg in f.net
            if src == "d0" and isinstance(msg, FinalMsg) and not msg.owed]
    assert {dst for dst, _ in late} == {"d1", "d2"}
    f.net = []
    f.kill("d0")
    f.disks["d2"].granted[WF] = (1, "d2")  # its own claim of epoch 1, on record
    f.restart("d2")
    return f, [(dst, ClaimAnswerMsg(WF, 1, False, 0, "d0", msg.state)) for dst, msg in late]


def s0_s1_done_d1_dead_at_d0(f: Bounded, retries: int = 0) -> Bounded:
    """d0 coordinates s0 (with a compensation) on d2 and s1 on d1, both SUCCEEDED, and
    s2 on d2 needing both, running; d0's view then says d1 is DEAD (d1 lives: only cut
    off from d0), so an acknowledgement from d2 alone lets d0 make an end it told."""
    comp = spec_pb2.Compensation(params_json='{"undo": true}', retries=retries)
    f.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s0", capability="a", compensate=comp),
        spec_pb2.StepSpec(id="s1", capability="a"),
        spec_pb2.StepSpec(id="s2", capability="a", needs=["s0", "s1"])]),
        placement={"s0": "d2", "s1": "d1", "s2": "d2"}))
    f.deliver()
    assert f.end("d2", True)[1] == "s0"
    assert f.end("d1", True)[1] == "s1"
    f.step("d0", MemberState("d1", "DEAD"))
    return f


def claims_held(src: str, dst: str, msg: object) -> bool:
    return isinstance(msg, (ClaimMsg, ClaimAnswerMsg))


def test_of_two_claimants_that_told_the_end_on_in_one_epoch_one_drives_the_saga() -> None:
    f, late = two_claimants_told_the_end_on()
    f.deliver(keep=claims_held)
    for name in ("d1", "d2"):
        core = f.nodes[name].takeover.cores[WF]
        assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 1, name)
    for dst, msg in late:
        f.step(dst, Message("d0", msg))
    f.deliver(keep=claims_held)
    # d2, the worse-ranked claimant, yielded its saga to d1 and follows it; d1 drives.
    assert f.disks["d2"].epochs[WF] == (1, "d1")
    assert WF not in f.nodes["d2"].compensating.cores
    assert f.nodes["d2"].stats["saga yielded to a better claimant of its epoch"] == 1
    assert WF in f.nodes["d1"].compensating.cores
    while any(f.queue[n] for n in NAMES):
        for name in NAMES:
            if f.queue[name]:
                f.end(name, True)
    f.run_until(f.now + 30.0)
    assert rows(f, "d1") == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert not f.nodes["d1"].compensating.cores
    # Each compensation attempt ran once, in its own domain; nothing is resent for
    # ever between the living (to d0, dead, the ends wait).
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s1", 1, COMPENSATE))]
    for name in ("d1", "d2"):
        assert all(to == "d0" for to, *_ in f.nodes[name].pending.values()), name


def test_a_step_domain_that_ended_on_the_originals_notice_follows_a_later_epochs_saga():
    # d0's view says d1 is DEAD (d1 lives: only cut off from d0). s2 fails; d0 tells
    # its end FAILED, d2 acknowledges it, and that is enough to make it (the only
    # live participant in d0's view; fewer than a majority of electors have not):
    # d0 makes the end and dies once its tell of s0's attempt 1 reached s0's domain d2
    # (its plan lost with it). d1, which heard nothing (nor of s0: s1 does not need
    # it), claims epoch 1, learns the end from d2 and tells it on in epoch 1, planning
    # from results that lack s0 (it never heard s0 SUCCEEDED). d2, told that later
    # epoch's end, follows d1 and reports s0 to it: d1's saga owes it, and the attempt
    # a restart of d2 interrupted is judged there (retried, never run twice).
    f = s0_s1_done_d1_dead_at_d0(Bounded(), retries=1)

    def held(src: str, dst: str, msg: object) -> bool:
        # d0 and d1 cut off from each other; d0's saga plan never leaves it.
        return {src, dst} == {"d0", "d1"} or (
            src == "d0" and isinstance(msg, FinalMsg) and bool(msg.owed))

    run = f.queue["d2"].pop(0)  # s2 fails; d0 tells FAILED, d2 acknowledges it
    f.step("d2", StepEnded(*run, ok=False, error="boom"))
    f.deliver(keep=held)
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED  # made, and planned
    assert f.disks["d2"].final[WF] is WorkflowState.FAILED
    f.net = []
    f.kill("d0")
    assert f.compensations == [("d2", (WF, "s0", 1, COMPENSATE))]
    assert WF not in f.disks["d2"].plans
    f.deliver()
    assert f.disks["d1"].epochs[WF] == (1, "d1")
    assert f.disks["d2"].epochs[WF] == (1, "d1")
    f.restart("d2")  # s0's attempt 1 interrupted: reported failed, to d1
    f.deliver()
    f.end("d2", True)  # attempt 2, told by d1
    f.run_until(f.now + 30.0)
    assert rows(f, "d1") == {"s0": ("COMPENSATED", 2)}
    assert f.nodes["d1"].compensating.of(WF)[1].value == "DONE"
    assert sorted(f.compensations) == [("d2", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s0", 2, COMPENSATE))]


def test_a_certified_driver_tells_its_end_again_to_a_rival_claimants_followers():
    # d1 won epoch 1 (its certificate) and drives the saga; a claimant's end of epoch 1
    # from d0 (better-ranked, no certificate) reaches d2, which no longer keeps d1's
    # proof: d2 follows d0. The same notice reaches d1, which tells its end again with
    # its certificate: d2 follows d1 back, and the saga ends there, each attempt once.
    f = taken_over_and_failed(failure_before_death=False)
    for name in ("d1", "d2"):  # d0 back in their views: a gone rival is never followed
        f.step(name, MemberState("d0", "ALIVE"))
    rival = FinalMsg(WF, WorkflowState.FAILED, 1)
    f.step("d2", Message("d0", rival))
    assert f.disks["d2"].epochs[WF] == (1, "d0")
    f.step("d1", Message("d0", rival))
    f.deliver()
    assert f.disks["d2"].epochs[WF] == (1, "d1")
    assert f.disks["d1"].epochs[WF] == (1, "d1")
    f.end("d2", True)
    f.end("d1", True)
    assert rows(f) == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s1", 1, COMPENSATE))]


def test_an_original_never_told_a_later_epochs_end_has_its_saga_answered_by_the_records():
    # d0's view says d1 is DEAD (d1 lives: only cut off from d0). s2 fails; d0 tells
    # its end FAILED, d2 acknowledges it, which is enough to make it; d0 makes it and
    # crashes before the notices after it (its saga's plan and tells) leave. d1 takes
    # it over, learns the end from d2, ends it FAILED in epoch 1 and drives its saga to
    # its end (s0's compensation at d2), then dies for good before its end reached d0.
    # d0, back, drives its own saga in epoch 0: d2 answers its tell of the attempt it
    # recorded with that record (never running it again), so d0's saga ends too.
    f = s0_s1_done_d1_dead_at_d0(Bounded())

    def held(src: str, dst: str, msg: object) -> bool:
        # d0 and d1 cut off from each other; of d0's messages to d2 only the told end
        # leaves before it crashes.
        return {src, dst} == {"d0", "d1"} or (
            src == "d0" and not (isinstance(msg, FinalMsg) and not msg.owed))

    run = f.queue["d2"].pop(0)  # s2 fails; d0 tells FAILED, d2 acknowledges it
    f.step("d2", StepEnded(*run, ok=False, error="boom"))
    f.deliver(keep=held)
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED  # made, and planned
    assert rows(f, "d0") == {"s0": ("RUNNING", 1)}  # its saga planned, its tell lost
    assert not f.compensations  # d0's tells lost with it
    f.net = []
    f.kill("d0")
    f.deliver()
    assert f.disks["d1"].epochs[WF] == (1, "d1")
    f.end("d2", True)  # s0's compensation, told by d1
    assert rows(f, "d1") == {"s0": ("COMPENSATED", 1)}
    f.kill("d1")  # for good, before its end reached d0
    f.restart("d0")
    f.deliver()
    assert WF not in f.disks["d0"].epochs
    assert rows(f, "d0") == {"s0": ("COMPENSATED", 1)}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    assert f.compensations == [("d2", (WF, "s0", 1, COMPENSATE))]  # run once


def test_a_claimant_that_never_learned_the_end_takes_it_from_a_grant_for_the_saga():
    # d0 ends the workflow CANCELLED while s2 still runs at d2, tells d2 only (the end
    # and the saga's plan) and dies. d1, which never heard the end, claims epoch 1; d2,
    # its plan open, grants it, and its grant carries the end: d1 makes it its own
    # and drives the saga. It never ends the workflow on its own results (s2 ending
    # SUCCEEDED after that would have made a second end, SUCCEEDED).
    f = Bounded()
    f.step("d0", Submit(WF, spec(), placement={"s0": "d1", "s1": "d2", "s2": "d2"}))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    plan = (("s0", "d1", 1), ("s1", "d2", 1))
    f.step("d2", Message("d0", FinalMsg(WF, WorkflowState.CANCELLED, 0)))
    f.step("d2", Message("d0", FinalMsg(WF, WorkflowState.CANCELLED, 0, owed=plan)))
    f.kill("d0")
    f.deliver()
    f.run_until(f.now + 30.0)
    assert f.disks["d1"].final[WF] is WorkflowState.CANCELLED
    assert f.disks["d2"].epochs[WF] == (1, "d1")
    while any(f.queue[n] for n in NAMES):  # s2 ends too, and each compensation
        for name in NAMES:
            if f.queue[name]:
                f.end(name, True)
    f.run_until(f.now + 30.0)
    assert f.disks["d1"].final[WF] is WorkflowState.CANCELLED
    assert rows(f, "d1") == {"s0": ("COMPENSATED", 1), "s1": ("COMPENSATED", 1)}
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, COMPENSATE)),
                                       ("d2", (WF, "s1", 1, COMPENSATE))]


class Held(Bounded):
    """`Bounded`, whose network holds back what `hold` says in every delivery (the
    timers' too, as `run_until` delivers)."""

    hold = None

    def deliver(self, rounds: int = 200, *, keep=None) -> None:
        super().deliver(rounds, keep=keep or self.hold)


def test_a_report_that_reaches_a_claimant_before_the_end_is_not_acknowledged():
    # d0's view says d1 is DEAD; d2's acknowledgement lets d0 make its end FAILED and
    # tell s0's compensation at d2, which runs; d0 dies before its report arrives.
    # d2, a claimant of epoch 1 too, is denied by d1 (better-ranked) and follows it:
    # its report goes to d1, which does not know the end yet (d2's answer to d1's
    # claim, which carries it, is late). Acknowledged then, the report would be
    # dropped and marked done: d1's later tell of the attempt is answered from the
    # record, that answer is lost, and a late duplicate of the first acknowledgement
    # ends its resends: d1's saga would wait for ever.
    f = s0_s1_done_d1_dead_at_d0(Held())
    run = f.queue["d2"].pop(0)  # s2 fails; d0 tells FAILED, d2 acknowledges it
    f.step("d2", StepEnded(*run, ok=False, error="boom"))
    f.deliver(keep=lambda src, dst, msg: {src, dst} == {"d0", "d1"})
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED
    run = f.queue["d2"].pop(0)  # s0's compensation, attempt 1, ends; d0 dies
    assert run == (WF, "s0", 1, COMPENSATE)
    f.step("d2", CompensationEnded(WF, "s0", 1, True, ""))
    f.net = []
    f.kill("d0")
    f.disks["d2"].granted[WF] = (1, "d2")  # its own claim of epoch 1, on record
    f.restart("d2")
    sent_before = len(f.sent_by("d1", AckMsg))

    def end_late(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, ClaimAnswerMsg) and src == "d2" and msg.final is not None

    f.hold = end_late
    f.run_until(f.now + 1.0)  # d2's claim is denied by d1; d1's own waits its answer
    assert ("d1", CompensatedMsg(WF, "s0", 1, True, "")) in f.sent_by("d2", CompensatedMsg)
    assert WF not in f.disks["d1"].final
    acks = [m for _, m in f.sent_by("d1", AckMsg)[sent_before:]
            if m.msg_id[0] == "compensated"]
    assert not acks  # nothing taken: nothing acknowledged
    assert f.nodes["d1"].stats["compensation report before the end: not acknowledged"] >= 1

    def answer_lost(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, CompensatedMsg) and src == "d2"

    f.hold = answer_lost
    f.run_until(f.now + 30.0)  # d2's answer to d1's claim: d1 ends and tells
    assert f.disks["d1"].final[WF] is WorkflowState.FAILED
    f.net = [m for m in f.net if not answer_lost(*m)]  # the answers to d1's tell lost
    for ack in acks[:1]:  # a late duplicate of an acknowledgement given before
        f.step("d2", Message("d1", ack))
    f.hold = None
    f.run_until(f.now + 60.0)
    assert rows(f, "d1") == {"s0": ("COMPENSATED", 1)}
    assert f.nodes["d1"].compensating.of(WF)[1].value == "DONE"
    assert f.compensations == [("d2", (WF, "s0", 1, COMPENSATE))]  # run once


def saga_held_then_d2_follows_d1() -> tuple[Bounded, list]:
    """s2 fails at d2; d0 makes its end FAILED and plans its saga, its tells held on
    the way (returned). d1 then tells d2 the end in epoch 1 and d2 follows it; d1's
    messages are taken off the network (its part ends there: it drives nothing)."""
    f = Bounded()
    f.step("d0", Submit(WF, spec(), placement={"s0": "d1", "s1": "d2", "s2": "d2"}))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"

    def tells(src: str, dst: str, msg: object) -> bool:  # d0's saga, held on the way
        return src == "d0" and (isinstance(msg, CompensateMsg) or
                                isinstance(msg, FinalMsg) and bool(msg.owed))

    run = f.queue["d2"].pop(0)
    f.step("d2", StepEnded(*run, ok=False, error="boom"))
    f.deliver(keep=tells)
    assert f.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert rows(f, "d0") == {"s0": ("PENDING", 0), "s1": ("RUNNING", 1)}
    held = f.net
    f.net = []
    f.step("d2", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1)))
    assert f.disks["d2"].epochs[WF] == (1, "d1")
    f.net = [m for m in f.net if "d1" not in m[:2]]
    return f, held


def test_a_domain_following_a_later_epochs_holder_gone_takes_the_originals_tells():
    # s2 fails at d2; d0 makes its end FAILED (d2 acknowledged it) and plans its saga,
    # its tells held on the way. A claimant, d1, then tells d2 its end in epoch 1 (from
    # results that lack nothing here), d2 follows it, and d1 dies for good before it
    # tells its saga. d0, never told epoch 1, drives its own saga in epoch 0. d2's view
    # says d1 is gone: it takes d0's tell of s1's compensation (refused for ever
    # before: d1 would never tell it) and reports to d0, so d0's saga ends (s0's
    # compensation at d1, gone, fails naming it). Takeover soak seed 4003619.
    f, held = saga_held_then_d2_follows_d1()
    f.kill("d1")
    f.net = held
    f.deliver()
    assert WF not in f.disks["d0"].epochs  # epoch 0: its own saga
    assert f.compensations == [("d2", (WF, "s1", 1, COMPENSATE))]  # taken at d2
    f.end("d2", True)
    assert ("d0", CompensatedMsg(WF, "s1", 1, True)) in f.sent_by("d2", CompensatedMsg)
    assert rows(f, "d0") == {"s0": ("COMPENSATION_FAILED", 0), "s1": ("COMPENSATED", 1)}
    assert f.nodes["d0"].compensating.of(WF)[1].value == "FAILED"
    assert f.disks["d2"].comp_runs[(WF, "s1", 1)] == ("succeeded", "", True)  # acked
    # While d2's view says that holder lives and its end is proven there, the
    # original's tell is refused there (an unproven holder's followers take it:
    # test_saga_unproven_holder.py).
    f.step("d2", MemberState("d1", "ALIVE"))
    f.nodes["d2"].state.end_proofs[WF] = (1, "d1", ())
    with pytest.raises(Refused):
        check(f.nodes["d2"], "d0", CompensateMsg(WF, "s0", 1))
