"""The original coordinator, back after a successor ended the workflow and died for
good, tells a new placement to a member whose retention has forgotten the workflow
since: the member answers from the workflow's end record (ended_records.py) with the
later end and its epoch, never takes nor acknowledges the tell
(agent/core/node/placed_overtaken.py, `answer_forgotten`). Before, the forgotten member
acknowledged it as news; the acknowledgement counted toward the majority that must
hold the placement, and the round's COMMIT left to the new domain for a workflow that
had ended in epoch 1. Nodes driven by hand with coordinator takeover on, every Node
with retention (test_ended_records_overtaken.py's)."""

from __future__ import annotations

import dataclasses

import pytest
from fedorch.core.negotiation.messages import Decision, TxInfo
from fedorch.core.node import Message, Submit
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, PlacedMsg, PrepareMsg, VoteMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, dies, step
from tests.unit.core.node.test_ended_records_overtaken import KEEP, LATE, Retained, d0_back


def forgotten_at_d2_then_d0_back(proof: bool) -> tuple[Retained, list[tuple[str, object]]]:
    """d0's workflow: s1 (idempotent, on d1), s2 (on d2); electorate d0, d1, d2. s2
    ends; d0 dies; d1 wins epoch 1, s1 ends there, d1 ends the workflow SUCCEEDED with
    d2 and dies for good. d2 forgets the workflow, keeping its end as a record (with
    d1's certificate, or, `proof` False, without). d0 comes back seeing d1 DEAD: it
    places s1 again on d3 (which never heard of the end), decides the round's COMMIT
    and tells the placement to d2, whose acknowledgement it needs before the COMMIT
    leaves. Returns the federation and what d2 sent since d0 came back."""
    fed = Retained()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(
        name="w", steps=[step("s1", idempotent=True), step("s2")]),
        placement={"s1": "d1", "s2": "d2"}))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    fed.end("d2", "s2")
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    fed.end("d1", "s1")
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    dies(fed, "d1", told=("d2", "d3"))
    fed.run_until(fed.now + KEEP + 3 * LATE)
    d2 = fed.nodes["d2"]
    assert WF not in fed.disks["d2"].final
    assert fed.disks["d2"].ended_records[WF][:3] == (WorkflowState.SUCCEEDED, 1, "d1")
    assert WF not in fed.disks["d3"].final  # no member of the workflow: never told
    if not proof:
        del d2.state.ended_proofs[WF]
    sent: list[tuple[str, object]] = []
    send = d2.send
    d2.send = lambda dst, msg: (sent.append((dst, msg)), send(dst, msg))[1]
    d0_back(fed, dead=("d1",))
    return fed, sent


@pytest.mark.parametrize("proof", [True, False], ids=["proof kept", "no proof kept"])
def test_a_forgotten_member_answers_the_originals_placement_from_its_end_record(
        proof: bool) -> None:
    fed, sent = forgotten_at_d2_then_d0_back(proof)
    epoch, new, _ = fed.disks["d0"].placements[WF]["s1"]
    assert new == "d3"
    assert any(dst == "d2" and isinstance(m, PlacedMsg) and m.workflow_id == WF
               for dst, m in fed.sent_by("d0", PlacedMsg))  # told
    # Not acknowledged (before: acknowledged, counted toward the majority).
    assert not [m for _, m in sent if isinstance(m, AckMsg) and m.msg_id[:2] == ("placed", WF)]
    answers = [m for dst, m in sent if dst == "d0" and isinstance(m, ClaimAnswerMsg)]
    assert answers and all((a.held_epoch, a.holder, a.final, a.granted)
                           == (1, "d1", WorkflowState.SUCCEEDED, False) for a in answers)
    assert all(bool(a.won) == proof for a in answers)
    assert fed.nodes["d2"].stats["placement of a forgotten workflow answered from its record"]
    assert WF not in fed.disks["d2"].final and WF not in fed.disks["d2"].placements
    # The original learns the end and ends its resends; its COMMIT never leaves.
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert not [k for k in fed.nodes["d0"].pending if k[0] == "placed"]
    assert not [m for _, m in fed.sent_by("d0", Decision) if m.key == (WF, epoch)]
    fed.run_until(fed.now + 60.0)
    learned = fed.disks["d3"].learned.get((WF, epoch))
    assert learned is None or not learned.commit  # before: COMMIT, s1 run again there
    assert not fed.nodes["d3"].participant.holds()


def test_a_forgotten_member_votes_no_on_a_step_placed_again() -> None:
    """The original, back, places s1 again on d2 itself (its round as replacement.py
    makes one): d2, which forgot the workflow but keeps its end record, votes NO and
    reserves nothing (before: it voted on the round as on a new workflow's, and would
    have run s1 again for a workflow over everywhere)."""
    fed, sent = forgotten_at_d2_then_d0_back(proof=True)
    first = next(m for dst, m in fed.sent_by("d0", PrepareMsg) if dst == "d2")
    tx = TxInfo(WF, first.tx.round + 7, "d0", ("d2",), ("d0", "d2"), created_ms=2)
    info = dataclasses.replace(first.info, placement={**first.info.placement, "s1": "d2"},
                               lost="d1", stated=None)
    sent.clear()
    fed.step("d2", Message("d0", PrepareMsg(tx, (("s1", "a"),), info)))
    votes = [m for dst, m in sent if dst == "d0" and isinstance(m, VoteMsg)]
    assert [(v.key, v.yes, v.reason) for v in votes] == [
        (tx.key, False, "the workflow ended here")]
    assert not fed.nodes["d2"].participant.holds()
