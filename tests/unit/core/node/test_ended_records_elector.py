"""The original coordinator back after a later epoch ended the workflow, at a member
whose retention has forgotten the workflow since and whose record keeps no proof of
that end (a claimant that never won its epoch told it on: ended_records.py keeps the
end, the epoch held and its holder, and no certificate). The original's end notice of
epoch 0 is answered from the record with the later end, epoch and holder, as a claim
is (elector_ends.py, `forgotten_later_end`), never kept nor acknowledged. Before,
with no row left, the member took it as an elector holding no step: it kept the older
end and acknowledged it, and the original made it against the end the member had
taken (takeover soak seed 115458: d0.w4 ended FAILED at d0, CANCELLED at d2)."""

from __future__ import annotations

from fedorch.core.node.records import AckMsg, ClaimAnswerMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_ended_records_overtaken import (
    Retained,
    d0_back,
    loss_verdict_story,
)


def test_an_older_end_at_a_forgotten_member_is_answered_from_its_proofless_record() -> None:
    """d1 ended the workflow SUCCEEDED in epoch 1 and died; d2 forgot it, its record
    holding epoch 1 and d1 but no certificate (as where the end came from a claimant
    that never won). d0 comes back, fails s1 (d1 DEAD) and tells FAILED in epoch 0."""
    fed = Retained()
    loss_verdict_story(fed)
    d2 = fed.nodes["d2"]
    del d2.state.ended_proofs[WF]  # no proof: the end's teller never won its epoch
    assert d2.state.ended_records[WF][:3] == (WorkflowState.SUCCEEDED, 1, "d1")
    sent: list[tuple[str, object]] = []
    send = d2.send
    d2.send = lambda dst, msg: (sent.append((dst, msg)), send(dst, msg))[1]
    d0_back(fed, dead=("d1",))
    assert fed.nodes["d0"].stats["loss verdict: end told before it is made"] == 1
    assert WF not in fed.disks["d2"].final  # before: FAILED, kept as an elector's end
    assert not any(isinstance(m, AckMsg) and m.msg_id[:2] == ("final", WF) for _, m in sent)
    answers = [m for dst, m in sent if dst == "d0" and isinstance(m, ClaimAnswerMsg)]
    assert answers and all((a.held_epoch, a.holder, a.final, a.granted)
                           == (1, "d1", WorkflowState.SUCCEEDED, False) for a in answers)
    assert d2.stats[
        "end of an overtaken epoch answered from a forgotten workflow's record"] >= 1
    assert fed.disks["d0"].final.get(WF) is not WorkflowState.FAILED


def test_the_original_taking_that_end_follows_the_holder_the_record_names() -> None:
    """The same story: d0 takes the end d2's record answers with, and follows d1, the
    holder of epoch 1 it names, not d2, which forgot the workflow. Before, d0 followed
    the member that answered: its reports (a SUCCEEDED run of its own owing a
    compensation) went to a Node that refused them, and the saga's driver, unknown
    to d0 as a member, was refused (takeover soak seed 115458)."""
    fed = Retained()
    loss_verdict_story(fed)
    del fed.nodes["d2"].state.ended_proofs[WF]
    d0_back(fed, dead=("d1",))
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].epochs[WF] == (1, "d1")  # before: (1, "d2")
