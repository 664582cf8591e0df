"""Membership's DEAD and LEFT acting on a committed workflow's steps, in the Node
(agent/core/node/domain_loss.py), Nodes driven by hand with coordinator takeover on (as
the node engine composes it): d0 coordinates; the steps are on d1, d2 (and d0 itself in
the takeover cases); step attempts end only when a test says so."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from fedorch.core.identity.authority import Refused
from fedorch.core.node import (
    MemberState,
    MemberViews,
    Message,
    StepEnded,
    Submit,
    Tick,
    authority,
)
from fedorch.core.node.ready import Ready
from fedorch.core.node.records import (
    FinalMsg,
    PrepareMsg,
    ResultMsg,
    Retention,
    Timing,
    VoteMsg,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.stories import WF, committed_in, s1_on_d1_then_s2_on_d0
from tests.unit.core.node.test_takeover import NAMES
from tests.unit.core.node.test_takeover import Federation as TakeoverFederation

__all__ = ["NAMES", "WF", "Federation", "OnlyD1TakesA", "committed", "d1_back_wins_epoch_1", "dies",
           "lost_where_no_other_domain_takes_it", "result", "step"]



class Federation(TakeoverFederation):
    """Four Nodes, each told at once that every other is ALIVE (test_takeover.py's),
    whose step attempts end only when a test says so."""

    steps_end_at_once = False

    def __init__(self) -> None:
        self.lost: list[tuple[str, tuple, str, str]] = []  # (node, (wf, step), domain, action)
        self.refused: list[tuple[str, str]] = []  # (node, reason) of each message refused
        super().__init__()

    def note(self, name: str, what: str, facts: list) -> None:
        super().note(name, what, facts)
        if what == "step_lost":
            self.lost.append((name, facts[0], facts[1], facts[2]))

    def step(self, name: str, *inputs: object) -> Ready:
        """As a driver steps its Node: a peer's message without authority (the table
        of core/node/authority.py, the boundary both drivers apply) is refused, counted,
        and never reaches the Node."""
        node = self.nodes[name]
        allowed = []
        for event in inputs:
            try:
                if isinstance(event, Message):
                    authority.check(node, event.src, event.msg)
            except Refused as e:
                self.refused.append((name, e.reason))
                continue
            allowed.append(event)
        return super().step(name, *allowed)

    def end(self, name: str, step: str, *, ok: bool = True) -> None:
        """`name`'s running attempt of `step` ends, and what it sends is delivered."""
        runs = [r for r in self.running[name] if r[1] == step]
        assert len(runs) == 1, (name, step, self.running[name])
        self.step(name, StepEnded(*runs[0], ok=ok))
        self.deliver()


class NoTakeover(Federation):
    timing = Timing(max_rounds=1)


class OnlyD1TakesA(Federation):
    """Only d1 offers capability a (and d0 b): a step of d1's can be placed nowhere else."""

    def capacities_of(self, name: str) -> dict[str, int]:
        return {"d0": {"b": 4}, "d1": {"a": 4}}.get(name, {"c": 4})


def lost_where_no_other_domain_takes_it(federation: type[Federation] = OnlyD1TakesA
                                        ) -> Federation:
    """s1 on d1 SUCCEEDS, its result lost on the way to d0 (s2 on d0 needs it), and d1
    stalls (DEAD): d0 sends s1 back to be placed again (its placement epoch moves on),
    no domain takes it, and the verdict's end, its notice to d2 (the round's extra
    acceptor) lost, waits for d1 or d2 to acknowledge it."""
    fed = s1_on_d1_then_s2_on_d0(federation())
    fed.step("d1", StepEnded(*sorted(fed.running["d1"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, ResultMsg))
    fed.net = []  # lost
    dies(fed, "d1", keep=lambda src, dst, msg: isinstance(msg, FinalMsg) and dst == "d2")
    fed.net = []  # lost
    assert fed.nodes["d0"].stats["re-placement failed"] == 1
    assert fed.nodes["d0"].domain_loss.holds(WF)  # d1 gone, nothing from d2 yet
    return fed


def d1_back_wins_epoch_1(fed: Federation, *, results_lost: bool = False) -> None:
    """d1 comes back and claims epoch 1 (its view says d0 DEAD, then, before it acts,
    ALIVE again); d0's end notices to d1 are lost meanwhile, and, `results_lost`, d1's
    results too."""
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    fed.step("d1", MemberState("d0", "ALIVE"))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, FinalMsg) and src == "d0"
                or results_lost and isinstance(msg, ResultMsg) and src == "d1")
    fed.net = []


def step(sid: str, *, needs: tuple[str, ...] = (), idempotent: bool = False,
         on_loss: str = "") -> spec_pb2.StepSpec:
    return spec_pb2.StepSpec(id=sid, capability="a", needs=list(needs),
                             idempotent=idempotent, on_domain_loss=on_loss)


def d0_back_seeing_d1_dead(fed: Federation) -> Any:
    """d0 restored, its view saying d1 DEAD and d2, d3 ALIVE, what it sends delivered."""
    d0 = fed.restore("d0")
    fed.step("d0", MemberViews((MemberState("d1", "DEAD"), MemberState("d2", "ALIVE"),
                                MemberState("d3", "ALIVE"))))
    fed.deliver()
    return d0


def d0_dies_for_good(fed: Federation, keep=None) -> None:
    """d0, the coordinator, goes silent with its attempts, and every other Node sees it
    DEAD; what follows is delivered (`keep`: what is held back)."""
    fed.goes_silent_and_dead("d0", keep=keep)


def committed(steps: list[spec_pb2.StepSpec], placement: dict[str, str]) -> Federation:
    """d0's workflow committed everywhere; the first attempts started, none ended."""
    return committed_in(Federation(), steps, placement)


def s1_s2_ended_and_d0_silent() -> Federation:
    """d0's workflow of s0 (on d0 itself), s1 (d1) and s2 (d2), committed; s1 and s2
    SUCCEEDED; d0 silent with its attempt of s0, no Node told yet."""
    fed = committed([step("s0"), step("s1"), step("s2")],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    fed.silent.add("d0")
    fed.running["d0"] = set()
    return fed


def dies(fed: Federation, domain: str, state: str = "DEAD",
         told: tuple[str, ...] = ("d0", "d1", "d2", "d3"), keep: Any = None) -> None:
    """`domain` is gone for good (its attempts with it); the others' views say so
    (what `keep` says is left on the network)."""
    fed.silent.add(domain)
    fed.running[domain] = set()
    for n in told:
        if n != domain:
            fed.step(n, MemberState(domain, state))
    fed.deliver(keep=keep)


def result(fed: Federation, name: str, step_id: str) -> tuple:
    return fed.disks[name].results[WF][step_id]


def test_a_started_step_that_is_not_idempotent_fails_naming_its_dead_domain() -> None:
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    assert any(r[1] == "s1" for r in fed.running["d1"])  # s1 runs on d1
    fed.end("d2", "s2")
    dies(fed, "d1")
    _, state, _, error = result(fed, "d0", "s1")
    assert state is StepState.FAILED
    assert "domain d1 was lost (DEAD)" in error and "not idempotent" in error
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED  # its end notice came
    assert fed.lost == [("d0", (WF, "s1"), "d1", "FAIL_STARTED")]
    assert result(fed, "d0", "s2")[1] is StepState.SUCCEEDED  # what ended stays as it was


def test_the_loss_is_written_and_its_end_told_before_the_end_is_made() -> None:
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.silent.add("d1")
    ready = fed.step("d0", MemberState("d1", "DEAD"))
    assert [w.point for w in ready.writes] == ["step lost", "loss verdict told"]
    ends = [o for o in ready.send_after_write if isinstance(o.msg, FinalMsg)]
    assert {o.to for o in ends} == {"d1", "d2"}  # the lost one hears it if it comes back
    assert not any(isinstance(o.msg, FinalMsg) for o in ready.send_now)
    # Not ended at the coordinator until d2 acknowledged: a successor elected meanwhile
    # would find d2's end, and a restart here finds the verdict and holds it again.
    assert WF not in fed.disks["d0"].final
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    d0 = fed.restore("d0")
    assert d0.state.results[WF]["s1"][1] is StepState.FAILED
    assert d0.domain_loss.holds(WF) and WF not in d0.state.final
    fed.step("d0", MemberViews((MemberState("d1", "DEAD"), MemberState("d2", "ALIVE"),
                                MemberState("d3", "ALIVE"))))
    fed.deliver()
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert "d2" in fed.disks["d0"].final_acked[WF]


def test_a_restored_verdicts_end_is_told_after_its_note_though_nothing_is_written() -> None:
    """Restored holding a verdict on record, the coordinator tells its end again with no
    other write in the Ready: the notices still wait for the end_told note's group, so a
    crash at that point (the takeover soak's seed 26000081: d0 died for good there)
    never leaves a participant ending the workflow on an end no observer heard told."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.silent.add("d1")
    fed.step("d0", MemberState("d1", "DEAD"))
    fed.net = []  # lost with d0, which crashes before anyone hears the end
    fed.restore("d0")
    ready = fed.readies["d0"][-1]
    assert [(w.point, w.ops, w.notes) for w in ready.writes] == [
        ("loss verdict told", [], [("end_told", WF, 0, WorkflowState.FAILED)])]
    assert not any(isinstance(o.msg, FinalMsg) for o in ready.send_now)
    assert {o.to for o in ready.send_after_write if isinstance(o.msg, FinalMsg)} == {"d1", "d2"}


def test_without_takeover_the_end_is_made_at_once() -> None:
    """No other coordinator can exist: nothing to tell first."""
    fed = NoTakeover()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[step("s1")]),
                          placement={"s1": "d1"}))
    fed.deliver()
    fed.silent.add("d1")
    ready = fed.step("d0", MemberState("d1", "DEAD"))
    assert [w.point for w in ready.writes][:2] == ["step lost", "workflow outcome"]
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED


def test_a_started_idempotent_step_is_not_failed_but_placed_again() -> None:
    """The loss table's REPLACE: a new round places it (test_replacement.py)."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    assert fed.lost == [("d0", (WF, "s1"), "d1", "REPLACE")]
    assert "s1" in fed.disks["d0"].placements[WF]
    assert WF not in fed.disks["d0"].final


def test_an_extra_acceptor_holding_no_step_keeps_the_end_so_it_is_made_without_the_lost_domain(
) -> None:
    """s1 on d1 alone; the round's acceptors d0, d1 and d2 (d2 holds no step). d1 dies:
    the verdict's end is told to d2 too, which keeps it and acknowledges: with d0 that
    is a majority of the electorate, so d0 makes the end without waiting for d1."""
    fed = committed([step("s1")], {"s1": "d1"})
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    dies(fed, "d1")
    assert result(fed, "d0", "s1")[1] is StepState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED  # kept, no step there
    assert WF not in fed.disks["d2"].committed
    assert fed.disks["d0"].final_acked[WF] == {"d2"}
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED
    # The lost domain is still told (it may come back); the extra acceptor no more.
    assert set(fed.nodes["d0"].pending) == {("final", WF, "d1")}
    assert WF not in fed.disks["d3"].final  # outside the electorate: told nothing


def test_an_extra_acceptor_answers_a_later_claim_with_the_end_it_kept() -> None:
    """After that end, d0 dies for good and d1 comes back and claims epoch 1: d2, an
    elector of its majority, answers with the end instead of a grant, and d1 takes that
    end (never one of its own on results)."""
    fed = committed([step("s1")], {"s1": "d1"})
    dies(fed, "d1")
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    fed.net.clear()  # d0's notices to d1 lost: d1 hears the end from d2 only
    fed.silent.add("d0")
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", MemberViews((MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
                                MemberState("d3", "ALIVE"))))
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert (WF, 1) not in fed.evidence.acting  # d2 granted nothing: it ended
    assert WF not in fed.disks["d2"].granted


def test_with_the_extra_acceptor_gone_too_the_end_waits_for_one_to_come_back() -> None:
    """d1 and d2 both gone: d0 alone is no majority of the electorate (were it to die
    now, d1 and d2 back could elect a successor that asked nobody holding the end), so
    it holds the end; d1, back, reports, is told the end at once and acknowledges it."""
    fed = committed([step("s1")], {"s1": "d1"})
    fed.silent.add("d2")
    dies(fed, "d1")
    assert result(fed, "d0", "s1")[1] is StepState.FAILED
    assert WF not in fed.disks["d0"].final
    assert fed.nodes["d0"].stats["loss verdict held: too few electors acknowledged"] >= 0
    fed.silent.discard("d1")
    d1 = fed.restore("d1")  # its attempt was running: FAILED, reported to d0
    fed.step("d1", MemberViews((MemberState("d0", "ALIVE"), MemberState("d2", "ALIVE"),
                                MemberState("d3", "ALIVE"))))
    fed.deliver()
    assert d1.state.final[WF] is WorkflowState.FAILED
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    # The verdict stands: the result d1 reported (its own FAILED) changed nothing.
    assert "domain d1 was lost (DEAD)" in result(fed, "d0", "s1")[3]


class Retained(Federation):
    timing = dataclasses.replace(Federation.timing, retention=Retention(
        keep_ended_s=1e9, max_ended_workflows=1000, late_message_s=10.0))


def test_with_retention_the_extra_acceptor_keeps_the_end_it_acknowledges() -> None:
    """Retention acknowledges an end of a workflow it knows nothing of without keeping
    it; an elector holding no step (known here by its acceptor records only) keeps it,
    or its acknowledgement would count for an end it could not answer a claim with."""
    fed = Retained()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[step("s1")]),
                          placement={"s1": "d1"}))
    fed.deliver()
    dies(fed, "d1")
    assert fed.nodes["d2"].state.final[WF] is WorkflowState.FAILED
    assert fed.nodes["d2"].stats["end kept by an elector holding no step"] == 1
    assert fed.nodes["d0"].state.final[WF] is WorkflowState.FAILED


def test_an_extra_acceptor_keeps_no_end_below_the_epoch_it_granted_nor_one_without_proof(
) -> None:
    """The elector's half of the argument: an end of an epoch below one it granted is
    neither kept nor acknowledged (its sender is shown the later epoch instead), and a
    successor's end needs its certificate."""
    fed = committed([step("s1")], {"s1": "d1"})
    d2 = fed.nodes["d2"]
    d2.state.granted[WF] = (1, "d1")
    fed.net.clear()
    fed.step("d2", Message("d0", FinalMsg(WF, WorkflowState.FAILED)))
    assert WF not in d2.state.final
    sent = [(dst, m) for src, dst, m in fed.net if src == "d2"]
    assert [type(m).__name__ for _, m in sent] == ["ClaimAnswerMsg"], sent
    assert (sent[0][1].held_epoch, sent[0][1].holder, sent[0][1].granted) == (1, "d1", False)
    assert d2.stats["end of an overtaken epoch answered with the later epoch"] == 1
    with pytest.raises(Refused) as e:
        authority.check(d2, "d1", FinalMsg(WF, WorkflowState.FAILED, 1))
    assert e.value.reason == "not_coordinator"


def test_a_step_that_had_not_started_is_placed_again() -> None:
    """s2 on d1 needs s1 on d2, still running: s2 never started on d1."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    assert not any(r[1] == "s2" for r in fed.running["d1"])
    dies(fed, "d1")
    assert fed.lost == [("d0", (WF, "s2"), "d1", "REPLACE")]
    assert fed.disks["d0"].placements[WF]["s2"][1] not in ("d1", "")
    assert WF not in fed.disks["d0"].final  # placed again (test_replacement.py)


def test_on_domain_loss_fail_says_so_and_left_is_named() -> None:
    fed = committed([step("s1", idempotent=True, on_loss="fail")], {"s1": "d1"})
    dies(fed, "d1", "LEFT")
    error = result(fed, "d0", "s1")[3]
    assert "domain d1 was lost (LEFT)" in error and "on_domain_loss: fail" in error


@pytest.mark.parametrize("state", ["SUSPECT", "ALIVE"])
def test_suspicion_changes_nothing(state: str) -> None:
    fed = committed([step("s1")], {"s1": "d1"})
    dies(fed, "d1", state)
    assert WF not in fed.disks["d0"].final
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    assert not fed.lost


def test_a_participant_that_does_not_drive_the_workflow_changes_nothing() -> None:
    """d2 runs s2 and hears that d1 is DEAD; its coordinator d0 has not heard yet."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1", told=("d2", "d3"))
    assert WF not in fed.disks["d2"].final and WF not in fed.disks["d0"].final
    assert not fed.lost
    fed.step("d0", MemberState("d1", "DEAD"))
    fed.deliver()
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED


def test_a_restored_coordinator_acts_when_its_view_comes_again() -> None:
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.silent.add("d1")
    fed.now = 5.0
    d0 = fed.restore("d0")  # knows no view yet: nothing moves
    assert d0.members == {} and WF not in fed.disks["d0"].final
    fed.step("d0", MemberViews((MemberState("d1", "DEAD"), MemberState("d2", "ALIVE"),
                                MemberState("d3", "ALIVE"))))
    fed.deliver()
    assert "domain d1 was lost (DEAD)" in result(fed, "d0", "s1")[3]
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED


def test_a_lost_domain_back_with_its_result_does_not_change_the_failure() -> None:
    """d1 was only cut off: it comes back and reports s1 SUCCEEDED. The coordinator's
    record keeps the FAILED the loss wrote (and d1 is told the end)."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.silent.add("d1")
    fed.step("d0", MemberState("d1", "DEAD"))
    fed.net = [m for m in fed.net if m[1] != "d1"]
    fed.deliver()
    fed.silent.discard("d1")
    ready = fed.step("d0", Message("d1", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED,
                                                   {"x": 1}, "")))
    assert result(fed, "d0", "s1")[1] is StepState.FAILED
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    # d1 has not acknowledged the end: told it again at once, not at the resend's time.
    assert ("d1", FinalMsg(WF, WorkflowState.FAILED)) in [
        (o.to, o.msg) for o in ready.send_now + ready.send_after_write]


def test_the_fence_refuses_a_lost_placements_result_while_the_workflow_goes_on() -> None:
    """The coordinator's Progress still running the workflow (no end yet, as with a
    fan-out step that goes on): a result from the domain a loss resolved is refused,
    and counted."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    d0 = fed.nodes["d0"]
    p = d0.progress[WF]
    p.domain_lost("d1", can_replace=False)  # the loss, without the outcome path
    d0.state.results[WF] = {"s1": (0, StepState.FAILED, {}, p.steps["s1"].error)}
    fed.flush("d0")
    fed.step("d0", Message("d1", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {"x": 1}, "")))
    assert result(fed, "d0", "s1")[1] is StepState.FAILED
    assert d0.stats["result of a lost placement refused"] == 1


def test_a_verdict_on_record_that_nothing_holds_is_told_again_when_it_refuses_a_result(
) -> None:
    """As at a coordinator whose verdict's end was made void while it followed a later
    epoch, and that drives the workflow again (it won one itself): the verdict on
    record, no end held. The lost domain's result, refused by it, has its end held and
    told again in this Node's epoch; before, the result was refused for ever and the
    workflow stayed RUNNING (takeover soak seed 4803186)."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    d0 = fed.nodes["d0"]
    p = d0.progress[WF]
    p.domain_lost("d1", can_replace=False)
    d0.state.results[WF] = {"s1": (0, StepState.FAILED, {}, p.steps["s1"].error)}
    fed.flush("d0")
    assert not d0.domain_loss.holds(WF)
    fed.step("d0", Message("d1", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {"x": 1}, "")))
    assert d0.stats["result of a lost placement refused"] == 1
    assert d0.domain_loss.holds(WF)
    fed.deliver()
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED


def test_a_workflow_that_commits_after_its_domain_is_dead_fails_that_step_at_once() -> None:
    """d1 voted YES and died before the COMMIT: the view says DEAD while the round is
    deciding (its YES stands), and the commit finds s1's domain already gone."""
    fed = Federation()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[step("s1"), step("s2")]),
                          placement={"s1": "d1", "s2": "d2"}))
    fed.deliver(keep=lambda src, dst, msg: src == "d0" and not isinstance(msg, PrepareMsg))
    assert not any(isinstance(m[2], VoteMsg) for m in fed.net)  # both YES are in
    fed.silent.add("d1")
    fed.running["d1"] = set()
    fed.step("d0", MemberState("d1", "DEAD"))
    assert WF not in fed.disks["d0"].committed and not fed.lost  # still deciding
    fed.deliver()
    assert fed.disks["d0"].rows[WF].committed
    assert "domain d1 was lost (DEAD)" in result(fed, "d0", "s1")[3]
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED


# ---- a successor's verdicts -----------------------------------------------------------


def successor_acting(fed: Federation) -> None:
    """d0 died for good: d1 (the lowest live participant) took the workflow over."""
    dies(fed, "d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}


def test_a_successor_fails_the_dead_coordinators_own_step_at_every_live_participant(
) -> None:
    """s0 runs on d0 itself, s1 on d1 and s2 on d2 (both done): d0 dies for good. Its
    successor d1 fails s0 naming d0 (its workflow would wait for d0 for ever), tells
    the end in its epoch with its certificate, and makes it once d2 acknowledged."""
    fed = committed([step("s0"), step("s1"), step("s2")],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    successor_acting(fed)
    assert fed.lost == [("d1", (WF, "s0"), "d0", "FAIL_STARTED")]
    _, state, _, error = result(fed, "d1", "s0")
    assert state is StepState.FAILED and "domain d0 was lost (DEAD)" in error
    for n in ("d1", "d2"):
        assert fed.disks[n].final[WF] is WorkflowState.FAILED
    ends = fed.sent_by("d1", FinalMsg)
    assert ends and all(m.epoch == 1 and m.won and m.state is WorkflowState.FAILED
                        for _, m in ends)
    assert {to for to, _ in ends} == {"d0", "d2"}
    assert "d2" in fed.disks["d1"].final_acked[WF]


def test_a_successors_verdict_is_told_before_it_is_made() -> None:
    """Until d2 acknowledged it, d1 holds the end (its status RUNNING): a later
    successor elected meanwhile would find d2's end."""
    fed = s1_s2_ended_and_d0_silent()
    fed.step("d1", MemberState("d0", "DEAD"))  # d2 has not heard: it grants d1's claim
    held = fed.nodes["d1"].domain_loss
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, FinalMsg))
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert held.holds(WF) and WF not in fed.disks["d1"].final
    assert "domain d0 was lost" in result(fed, "d1", "s0")[3]
    fed.deliver()
    assert not held.holds(WF)
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED


def test_a_participant_lost_after_the_takeover_fails_its_step_at_the_successor() -> None:
    """d0 dies with s0 done (d1 heard it: s1 needs it); d1 takes over; then d3,
    running s3, dies for good: d1 fails s3 naming d3, and d1 and d2 end the workflow
    FAILED."""
    fed = committed([step("s0"), step("s1", needs=("s0",)), step("s2"), step("s3")],
                    {"s0": "d0", "s1": "d1", "s2": "d2", "s3": "d3"})
    fed.end("d0", "s0")
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    successor_acting(fed)
    assert WF not in fed.disks["d1"].final  # s3 still runs on d3
    dies(fed, "d3")
    assert ("d1", (WF, "s3"), "d3", "FAIL_STARTED") in fed.lost
    assert "domain d3 was lost (DEAD)" in result(fed, "d1", "s3")[3]
    for n in ("d1", "d2"):
        assert fed.disks[n].final[WF] is WorkflowState.FAILED


def test_the_original_back_after_its_successor_ended_and_died_follows_that_end() -> None:
    """d0 stalls (DEAD in every view); d1 takes over and ends the workflow SUCCEEDED on
    results, then dies for good. d0 comes back, sees d1 DEAD, and fails s1 (its last
    result never reached d0): it tells that FAILED in epoch 0. d2, which ended the
    workflow in epoch 1, answers with that end and d1's certificate, and d0 follows it:
    one end, SUCCEEDED, everywhere."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d2", "s2")
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    fed.end("d1", "s1")
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    dies(fed, "d1", told=("d2", "d3"))
    fed.silent.discard("d0")
    fed.net.clear()
    d0 = d0_back_seeing_d1_dead(fed)
    assert d0.stats["loss verdict: end told before it is made"] == 1
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED


def test_an_end_on_results_is_told_before_it_is_made_so_no_verdict_contradicts_it(
) -> None:
    """s0 runs on d0 itself and ends last: d0 has every result, its end SUCCEEDED. Were
    it made at once and d0 died before telling anyone, d1, taking over, would fail s0
    (lost with d0) and end FAILED: two ends. Told first, it is not made until a
    participant acknowledged it; d0 dies with it unmade, and comes back to follow d1's."""
    fed = committed([step("s0"), step("s1"), step("s2")],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    run = next(iter(fed.running["d0"]))
    fed.step("d0", StepEnded(*run, ok=True))
    told = [(to, m) for _, to, m in fed.net if isinstance(m, FinalMsg)]
    assert {to for to, _ in told} == {"d1", "d2"}
    assert all(m.state is WorkflowState.SUCCEEDED for _, m in told)
    assert WF not in fed.disks["d0"].final  # told, not made
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    fed.net.clear()  # d0 dies before anything it sent arrives
    successor_acting(fed)
    assert "domain d0 was lost (DEAD)" in result(fed, "d1", "s0")[3]
    for n in ("d1", "d2"):
        assert fed.disks[n].final[WF] is WorkflowState.FAILED
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.deliver()
    fed.run_until(fed.now + 30.0)  # d1's end notice to d0, resent until acknowledged
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED


def test_a_gone_producers_result_that_never_reached_its_consumer_is_relayed_by_the_coordinator():
    # s1's result reaches d0 and is lost on its way to d2 (s2 needs it); d1 dies for
    # good before resending it. d0 holds every result: it relays s1's to d2, which
    # takes it from its coordinator (its own view says d1 is gone), runs s2, and the
    # workflow ends SUCCEEDED; without it, s2 would wait on s1 for ever.
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d1", "s2": "d2"})
    runs = [r for r in fed.running["d1"] if r[1] == "s1"]
    fed.step("d1", StepEnded(*runs[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: src == "d1" and dst == "d2")
    fed.net = []  # s1's result to d2 lost, d1's resends die with it
    assert result(fed, "d0", "s1")[1] is StepState.SUCCEEDED
    assert "s1" not in fed.disks["d2"].results.get(WF, {})
    dies(fed, "d1")
    assert result(fed, "d2", "s1")[1] is StepState.SUCCEEDED
    assert fed.nodes["d0"].stats["result of a gone domain relayed by the coordinator"] == 1
    fed.end("d2", "s2")
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED


def test_a_result_relayed_by_another_than_the_coordinator_or_of_a_live_domain_is_refused():
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d1", "s2": "d2"})
    relayed = ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {}, "")
    with pytest.raises(Refused):  # d1 is alive in d2's view: only d1 reports s1
        authority.check(fed.nodes["d2"], "d0", relayed)
    fed.step("d2", MemberState("d1", "DEAD"))
    with pytest.raises(Refused):  # gone, but d3 is not the coordinator
        authority.check(fed.nodes["d2"], "d3", relayed)
    authority.check(fed.nodes["d2"], "d0", relayed)  # the coordinator's relay: taken


def test_a_successor_whose_other_participants_are_gone_makes_its_end_on_the_originals_word(
) -> None:
    """s1 on d1 is done, s2 runs on d2; d1's view says the coordinator d0 and d2 are
    DEAD (d0 lives: only cut off from d1's view), d2 dies for good. d1 takes the
    workflow over (d0 grants), fails s2 naming d2 and tells the end; its only other
    participant is gone, so the original coordinator's acknowledgement (an elector
    that answers claims with the end) lets it make its verdict's end. Before, it held
    it for d2 for ever, and ended only if the original's own end reached it (here it
    does; in takeover soak seed 1801868 it did not: a reservation held at the
    successor)."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    fed.silent.add("d2")
    fed.running["d2"] = set()
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "DEAD"))
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert "domain d2 was lost (DEAD)" in result(fed, "d1", "s2")[3]
    assert "d0" in fed.disks["d1"].final_acked[WF]
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert not fed.nodes["d1"].participant.holds()  # its reservation released


def test_the_original_back_unaware_of_a_later_end_is_told_it_by_a_step_it_reports_to(
) -> None:
    """d0 stalls with its own s0 running (DEAD in every view); d1 takes over, fails s0
    (its spec says `on_domain_loss: fail`), ends the workflow FAILED with d2 and dies for good.
    d0 comes back seeing every other member ALIVE: no verdict of its own, no end to
    tell. It asks its electorate before it runs s0 again (original_asks.py, "Its own
    steps"; before, it ran s0 again and reported it to d2, whose s2 needs it), and d2,
    which ended the workflow in epoch 1, answers with that end and d1's certificate, and
    d0 follows it, s0 never run again (takeover soak seed 4003045: d0 stayed RUNNING for
    ever)."""
    s0 = spec_pb2.StepSpec(id="s0", capability="a", idempotent=True, retries=1,
                           on_domain_loss="fail")
    fed = committed([s0, step("s1"), step("s2", needs=("s0",))],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    d0_dies_for_good(fed)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    fed.silent.add("d1")  # dead for good, unknown to d0
    fed.silent.discard("d0")
    fed.net.clear()
    d0 = fed.restore("d0")
    fed.step("d0", MemberViews(tuple(MemberState(m, "ALIVE") for m in ("d1", "d2", "d3"))))
    fed.deliver()
    assert not fed.running["d0"]  # asked first: s0 does not run again
    fed.tick(fed.now + 2.0)
    assert fed.nodes["d2"].stats["original coordinator told the later end"] >= 1
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert not d0.domain_loss.holds(WF)


def test_the_original_relaying_a_gone_domains_result_is_told_the_later_end() -> None:
    """s1 (d1) SUCCEEDED, its result on record at d0, the coordinator, which goes
    silent; d1 takes over and ends the workflow SUCCEEDED in epoch 1 with d2 (s2 needs
    s1), then dies for good. d0 comes back, its view saying d1 DEAD: no verdict of its
    own, nothing to report but s1's result, which it relays to d2 as s1's domain is gone.
    d2, following epoch 1, refused that relay as not from s1's domain and answered
    nothing: d0 relayed it for ever, RUNNING (takeover soak seed 89900214). The relay of
    the original, the coordinator the id names, reaches d2's ended workflow and is
    answered with the later end and its proof; d0 follows it."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    d0_dies_for_good(fed)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    fed.end("d2", "s2")
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    fed.silent.add("d1")  # dead for good
    fed.silent.discard("d0")
    fed.net.clear()
    fed.step("d2", MemberViews(tuple(MemberState(m, "DEAD" if m == "d1" else "ALIVE")
                                     for m in ("d0", "d1", "d3"))))
    d0 = d0_back_seeing_d1_dead(fed)
    fed.tick(fed.now + 2.0)
    assert fed.nodes["d2"].stats["original coordinator told the later end"] >= 1
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert not d0.domain_loss.holds(WF)


def test_a_member_that_took_the_end_without_the_commit_tells_the_original_too() -> None:
    """A Node that keeps a later epoch's end and its proof without the round's COMMIT
    (a re-placement's new domain, in doubt, told the end) answers a report of the
    original, the coordinator the id names, with that end; another sender is not
    answered. It read the committed round for the original's name and stopped on a
    KeyError (takeover soak seed 4700416)."""
    fed = committed([step("s0"), step("s1"), step("s2", needs=("s0",))],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    d0_dies_for_good(fed)
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    holder = fed.nodes["d2"]
    assert holder.end_notices.end_proof(WF) is not None
    del holder.state.committed[WF]
    assert not holder.end_notices.tell_overtaken("d3", WF)
    assert holder.end_notices.tell_overtaken("d0", WF)


def test_an_end_held_across_a_later_epoch_this_node_won_is_told_anew_in_it() -> None:
    """d0's verdict on s1 (no domain takes it again) waits for d1. d1, back, wins epoch
    1, then d0, which followed it and whose view says d1 DEAD still, wins epoch 2 before
    it looked again: its verdict stands (d1's report of s1 is lost), and d1, which
    follows epoch 2, refuses the notice of epoch 0 for ever. It is told anew in epoch 2,
    acknowledged, and the end made (takeover soak seed 3900244)."""
    fed = lost_where_no_other_domain_takes_it()
    d1_back_wins_epoch_1(fed, results_lost=True)
    assert fed.disks["d0"].epochs[WF] == (2, "d0")
    assert fed.nodes["d0"].domain_loss.holds(WF)
    ticks_with_d1_results_lost(fed)
    assert fed.nodes["d0"].stats["held end told again in a later epoch"] == 1
    for n in ("d0", "d1"):
        assert fed.disks[n].final[WF] is WorkflowState.FAILED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED


def test_an_end_held_across_a_later_epoch_that_no_longer_stands_is_void() -> None:
    """As above, but d1's report of s1 reaches d0 while d0 follows epoch 1 (taken:
    running.py): d0, acting in epoch 2, holds no verdict any more; the end told in
    epoch 0 is void, never told again, and s2 runs."""
    fed = lost_where_no_other_domain_takes_it()
    d1_back_wins_epoch_1(fed)
    assert fed.disks["d0"].epochs[WF] == (2, "d0")
    fed.tick(fed.now + 5.0)
    fed.tick(fed.now + 5.0)
    d0 = fed.nodes["d0"]
    assert not d0.domain_loss.holds(WF)
    assert d0.stats["held end told again in a later epoch"] == 0
    assert d0.stats["loss verdict void: driven or ended elsewhere"] == 1
    assert WF not in fed.disks["d1"].final
    assert any(r[1] == "s2" for r in fed.running["d0"])


def test_a_void_held_end_lets_the_outcome_reached_meanwhile_be_made() -> None:
    """As above, but s2, the last step, ends at d0 before d0 looks at its held end
    again: the outcome waited behind the hold, and nothing else comes once the hold is
    void. d0 looks at its outcome as it voids the hold: the end, told first in epoch 2,
    is made (takeover soak seed 285 with the start tells on: RUNNING for ever)."""
    fed = lost_where_no_other_domain_takes_it()
    d1_back_wins_epoch_1(fed)
    d0 = fed.nodes["d0"]
    assert fed.disks["d0"].epochs[WF] == (2, "d0")
    assert d0.domain_loss.holds(WF)
    fed.end("d0", "s2")
    assert WF not in fed.disks["d0"].final  # held: the void end is not looked at yet
    for _ in range(3):
        fed.tick(fed.now + 5.0)
    assert d0.stats["loss verdict void: driven or ended elsewhere"] == 1
    for n in ("d0", "d1"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED


def test_a_successor_that_is_the_only_participant_tells_its_end_first() -> None:
    """d0's workflow has one step, on d1. d0 dies and d1 wins epoch 1; its step
    succeeds. The original may claim past d1 once back (core/workflow/
    takeover_overtaken.py), so d1's end is told to the electors first and made once
    enough acknowledged it, as with other participants: made at once, no elector told,
    the original, back while d1 is down, won a later epoch and cancelled, and d1, back,
    ended the workflow SUCCEEDED (takeover soak seed 4900444)."""
    fed = committed([step("s1")], {"s1": "d1"})
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}

    def finals(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, FinalMsg)

    fed.net = []
    runs = [r for r in fed.running["d1"] if r[1] == "s1"]
    fed.step("d1", StepEnded(*runs[0], ok=True))
    fed.deliver(keep=finals)
    assert WF not in fed.disks["d1"].final  # told, not made
    assert any(dst != "d0" for _, dst, _ in fed.net)
    fed.deliver()
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED


def ticks_with_d1_results_lost(fed: Federation, turns: int = 6) -> None:
    """`turns` rounds of 3 s: every Node ticks, what they send is delivered, d1's step
    results lost on the way."""
    for _ in range(turns):
        fed.now += 3.0
        for n in ("d0", "d1", "d2", "d3"):
            fed.step(n, Tick())
        fed.deliver(keep=lambda src, dst, msg: isinstance(msg, ResultMsg) and src == "d1")
        fed.net = []
