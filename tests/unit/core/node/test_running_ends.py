"""How a workflow's end is told to its participants (agent/core/node/running.py, with
the told-first end of domain_loss.py): each end notice goes once to each participant,
and again only when it was not acknowledged."""

from __future__ import annotations

from collections import Counter

from fedorch.core.negotiation.messages import DecisionAck
from fedorch.core.node import MemberState, Message, StepEnded, Submit, Tick
from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    FinalMsg,
    ResultMsg,
    Timing,
)
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_cancel import WF as CWF
from tests.unit.core.node.test_cancel import Federation as Three
from tests.unit.core.node.test_domain_loss import committed as loss_committed
from tests.unit.core.node.test_domain_loss import step
from tests.unit.core.node.test_takeover import WF, committed
from tests.unit.core.node.test_takeover import Federation as TakeoverFederation


def _finals(fed, name: str) -> list[Counter]:
    """Per Ready of `name`: its FinalMsgs by destination."""
    return [Counter(to for to, msg in sent(ready) if type(msg) is FinalMsg)
            for ready in fed.readies[name]]


def test_the_result_that_ends_a_workflow_gets_its_sender_one_end_notice() -> None:
    # d2's result is the last: d0 tells the end in the Ready that takes it. The end
    # told in that very step was once sent a second time to d2, as if it were an
    # earlier, unacknowledged one.
    fed = committed(steps_end=True)
    for _ in range(5):
        fed.deliver()
    assert all(n == "d3" or fed.nodes[n].state.final.get(WF) for n in fed.names)
    per_ready = _finals(fed, "d0")
    assert all(count <= 1 for c in per_ready for count in c.values())
    total = sum(per_ready, Counter())
    assert total["d1"] == total["d2"]  # told, then made: the same for each participant


def test_an_end_told_before_and_not_acknowledged_is_told_again_with_a_result() -> None:
    # The rule the first test narrows: an end told earlier whose acknowledgement is not
    # back goes again at once when its participant reports (not at the resend's
    # backoff).
    fed = committed()  # no attempt ended yet
    fed.net = [(n, n, StepEnded(*run, ok=True)) for n in fed.names for run in fed.running[n]]
    fed.deliver(keep=lambda src, dst, msg: (src, dst, type(msg)) == ("d2", "d0", AckMsg))
    assert ("final", WF, "d2") in fed.nodes["d0"].pending  # told, not acknowledged
    result = next(msg for to, msg in fed.sent_by("d2", ResultMsg)
                  if to == "d0" and msg.state is not StepState.RUNNING)  # not its start
    fed.net = []
    ready = fed.step("d0", Message("d2", result))
    assert [to for to, msg in sent(ready) if type(msg) is FinalMsg] == ["d2"]


def test_participants_that_acknowledged_the_told_end_are_not_told_the_made_one() -> None:
    # With takeover the end is told first and made once every participant
    # acknowledged it (domain_loss.py): the made end's notice would tell them nothing.
    fed = committed(steps_end=True)
    for name in ("d1", "d2"):
        assert fed.nodes[name].state.final[WF] is WorkflowState.SUCCEEDED
        assert [to for to, msg in fed.sent_by("d0", FinalMsg)].count(name) == 1
    assert fed.nodes["d0"].state.final_acked[WF] == {"d1", "d2"}
    assert not [k for k in fed.nodes["d0"].pending if k[0] == "final"]


class Retaining(TakeoverFederation):
    timing = Timing(max_rounds=1, takeover_after_s=3.0, retention=Retention())


def _retaining() -> Retaining:
    fed = Retaining()
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a"),
        spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])
    fed.step("d0", Submit(WF, spec, placement={"s1": "d1", "s2": "d2"}))
    return fed


def test_the_told_end_says_settled_and_is_the_only_one() -> None:
    fed = _retaining()
    fed.deliver()
    finals = fed.sent_by("d0", FinalMsg)
    assert sorted(to for to, _ in finals) == ["d1", "d2"]
    assert all(msg.settled for _, msg in finals)
    assert all(WF in fed.disks[name].settled for name in ("d1", "d2"))


def test_the_made_end_is_told_again_when_it_says_settled_and_the_told_one_did_not() -> None:
    # d1's acknowledgement of the COMMIT comes only after the end was told (unsettled),
    # and before the end is made (settled then): the participants hear the made end.
    # d1's step never runs (the one it needs, on d2, fails): nothing but its
    # DecisionAck, which waits decision_ack_s for a report (commit_acks.py), says it
    # holds the COMMIT.
    fed = Retaining()
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s0", capability="a"),
        spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"])])
    fed.step("d0", Submit(WF, spec, placement={"s0": "d2", "s1": "d1"}))
    fed.deliver(keep=lambda src, dst, msg: type(msg) is StepEnded)
    [(_, at, ended)] = [m for m in fed.net if type(m[2]) is StepEnded]
    fed.net = []
    late = lambda src, dst, msg: (src, dst, type(msg)) == ("d2", "d0", AckMsg)  # noqa: E731
    fed.step(at, StepEnded(ended.workflow_id, ended.step_id, ended.attempt, ok=False,
                           error="broken"))
    fed.deliver(keep=late)
    told = fed.sent_by("d0", FinalMsg)
    assert told and not any(msg.settled for _, msg in told)
    held, fed.net = fed.net, []
    fed.now += fed.timing.decision_ack_s
    fed.step("d1", Tick())
    assert [m[2] for m in fed.net] == [DecisionAck((WF, 1), "d1")]
    fed.deliver()  # the COMMIT acknowledged: the workflow is settled now
    fed.net = held
    fed.deliver()  # the told end acknowledged: made, and told again, settled
    made = fed.sent_by("d0", FinalMsg)[len(told):]
    assert sorted(to for to, _ in made) == ["d1", "d2"]
    assert all(msg.settled for _, msg in made)
    assert all(WF in fed.disks[name].settled for name in ("d1", "d2"))


def test_a_step_skipped_downstream_of_a_failed_one_is_kept_skipped_at_the_end() -> None:
    # Progress skips what is after a failed step; the end keeps that as the step's
    # result (it has no result of its own), so its status shows SKIPPED, not PENDING.
    fed = Three()
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="first", capability="a"),
        spec_pb2.StepSpec(id="then", capability="a", needs=["first"])])
    fed.step("d0", Submit(CWF, spec, placement={"first": "d1", "then": "d2"}))
    fed.deliver()
    assert fed.end_one_step(ok=False)
    fed.deliver()
    for name in ("d0", "d1", "d2"):
        assert fed.disks[name].final[CWF] is WorkflowState.FAILED, name
    results = fed.disks["d0"].results[CWF]
    assert results["first"][1] is StepState.FAILED
    assert results["then"][1] is StepState.SKIPPED
    assert results["then"][3] == "upstream step first failed"
    # The coordinator's row says why, as the shells' status does.
    assert fed.disks["d0"].rows[CWF].reason == "step first failed: "


def test_a_remote_start_is_told_its_coordinator_and_shown_there_unacknowledged() -> None:
    # Its status shows a step RUNNING in another domain; the start is not written there,
    # nor acknowledged (an acknowledgement would end the resends of the final result,
    # whose key it shares).
    fed = Three()
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[spec_pb2.StepSpec(id="s", capability="a")])
    fed.step("d0", Submit(CWF, spec, placement={"s": "d1"}))
    fed.deliver(keep=lambda src, dst, msg: type(msg) is ResultMsg)
    [(src, dst, started)] = [m for m in fed.net if type(m[2]) is ResultMsg]
    assert (src, dst, started.state, started.attempt) == ("d1", "d0", StepState.RUNNING, 1)
    fed.net = []
    ready = fed.step("d0", Message("d1", started))
    assert fed.nodes["d0"].progress[CWF].steps["s"].state is StepState.RUNNING
    assert CWF not in fed.disks["d0"].results
    # Written: only the COMMIT record collected, the start standing for d1's
    # DecisionAck (commit_acks.py); nothing sent back.
    assert [w.point for w in ready.writes] == ["collect record"] and not sent(ready)
    assert fed.end_one_step()
    fed.deliver()
    assert fed.disks["d0"].final[CWF] is WorkflowState.SUCCEEDED


def d2_told_d1s_end_on_in_an_epoch_it_never_won() -> tuple:
    """d0's workflow: s2 on d2 SUCCEEDED, then d0 dies; d1 wins epoch 1. d2, whose view
    says d1 DEAD too, claims epoch 2 (its claims lost); d1's s1 ends and d1 tells its end
    in epoch 1, with its certificate: d2 takes it and tells it on in the epoch it never
    won. Returns the federation and d1's notice."""
    fed = loss_committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    wf = "d0.w"
    fed.end("d2", "s2")
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(wf, 1): "d1"}

    def d2s_claims(src: str, dst: str, msg: object) -> bool:
        return src == "d2" and isinstance(msg, ClaimMsg)

    fed.step("d2", MemberState("d1", "DEAD"))
    fed.net = [m for m in fed.net if not d2s_claims(*m)]
    assert fed.disks["d2"].granted[wf] == (2, "d2")  # claimed, never won
    fed.step("d1", StepEnded(*sorted(fed.running["d1"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: (src, dst) == ("d1", "d2") or d2s_claims(src,
                                                                                  dst, msg))
    told = [msg for src, dst, msg in fed.net if type(msg) is FinalMsg]
    fed.net = []
    assert [m.epoch for m in told] == [1] and told[0].won
    fed.step("d2", Message("d1", told[0]))
    assert fed.nodes["d2"].stats["takeover claimant told an earlier epoch's end on"] == 1
    assert fed.disks["d2"].final[wf] is WorkflowState.SUCCEEDED
    fed.net = []
    return fed, told[0]


def test_a_claimant_that_told_on_an_earlier_epochs_end_answers_the_original_with_it(
) -> None:
    """d0, back, tells d2 its own end (FAILED, epoch 0): d2 answers with the end it made
    and epoch 1's certificate, kept with it, and d0 takes that end (takeover soak seed
    8700249: d2 kept no proof it could show, refused d0's notice, and d0 stayed RUNNING
    for ever)."""
    fed, _ = d2_told_d1s_end_on_in_an_epoch_it_never_won()
    wf = "d0.w"
    ready = fed.step("d2", Message("d0", FinalMsg(wf, WorkflowState.FAILED)))
    answers = [m for to, m in sent(ready) if to == "d0" and type(m) is ClaimAnswerMsg]
    assert [(a.held_epoch, a.holder, a.final) for a in answers] == [
        (1, "d1", WorkflowState.SUCCEEDED)]
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.step("d0", Message("d2", answers[0]))
    assert fed.disks["d0"].final[wf] is WorkflowState.SUCCEEDED


def test_a_claimant_that_told_on_an_earlier_epochs_end_acknowledges_that_end() -> None:
    """d1's notice again (not acknowledged yet: d1 makes its end once enough did): d2,
    which ended the workflow alike on it, acknowledges it, so d1 makes its end (takeover
    soak seed 8303778: refused, as of an epoch older than d2's claim, d1's end was never
    made)."""
    fed, told = d2_told_d1s_end_on_in_an_epoch_it_never_won()
    ready = fed.step("d2", Message("d1", told))
    assert fed.refused == []
    assert ("d1", AckMsg(("final", "d0.w", "d2"))) in sent(ready)


def test_the_originals_end_is_answered_with_a_later_epoch_whose_end_has_no_proof() -> None:
    """d0's loss verdict (d1 DEAD) reaches d3 alone, which takes it (its acknowledgement
    lost: d0 crashes). d2, never told, claims epoch 1, finds the end at d3, tells it on
    (an Announce: no certificate, so d3 keeps no proof) and dies for good. d0, back,
    tells its end again: d3 follows epoch 1 and may not acknowledge it, but answers it
    with that epoch and its holder, so d0 claims past the gone holder and takes the end
    (takeover soak seed 101830: refused silently, d0 stayed RUNNING for ever)."""
    fed = loss_committed([step("s1"), step("s2"), step("s3")],
                         {"s1": "d1", "s2": "d2", "s3": "d3"})
    wf = "d0.w"
    before = originals_end_met_by_an_unproven_epoch(fed, wf)
    since = [(to, m) for r in fed.readies["d3"][before:] for to, m in sent(r) if to == "d0"]
    answers = [m for _, m in since if type(m) is ClaimAnswerMsg and m.epoch == 0]
    # The very end d3 holds, shown (running_ends.py, "The same end, shown with a later
    # epoch"); d0, its end told first, reads the answer as the denial it was.
    assert answers and all((m.held_epoch, m.holder, m.final) == (1, "d2", WorkflowState.FAILED)
                           for m in answers)
    assert AckMsg(("final", wf, "d3")) not in [m for _, m in since]  # never acknowledged
    assert fed.disks["d0"].rows[wf].state is WorkflowState.FAILED
    assert fed.disks["d0"].final[wf] is WorkflowState.FAILED


def originals_end_met_by_an_unproven_epoch(fed, wf: str) -> int:
    """Seed 101830's story on `fed` (d0 coordinates, d1, d2, d3 each run a step): d0's
    loss verdict (d1 DEAD) reaches d3 alone; d2, never told, claims epoch 1, tells the
    end it found at d3 on without a certificate and dies for good; d0, restored, tells
    its end again for 30 s. Returns how many of d3's turns came before d0's return."""
    fed.silent.add("d1")
    fed.running["d1"] = set()
    fed.step("d0", MemberState("d1", "DEAD"))
    fed.net = [m for m in fed.net if type(m[2]) is not FinalMsg or m[1] == "d3"]
    fed.deliver(keep=lambda src, dst, msg: (src, dst) == ("d3", "d0"))
    fed.net = []
    assert fed.disks["d3"].final[wf] is WorkflowState.FAILED and wf not in fed.disks["d2"].final
    fed.silent.add("d0")
    fed.running["d0"] = set()
    for name in ("d2", "d3"):
        fed.step(name, MemberState("d0", "DEAD"))
    fed.run_until(fed.now + 10)
    assert fed.disks["d3"].epochs[wf] == (1, "d2") and wf not in fed.disks["d3"].end_proofs
    fed.silent.add("d2")
    fed.running["d2"] = set()
    fed.net = []
    fed.step("d3", MemberState("d2", "DEAD"))
    fed.silent.discard("d0")
    fed.restore("d0")
    before = len(fed.readies["d3"])
    fed.step("d0", MemberState("d1", "DEAD"), MemberState("d2", "DEAD"))
    fed.run_until(fed.now + 30)
    return before
