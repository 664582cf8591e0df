"""The original coordinator's epoch-0 end notice, answered by a participant that holds a
later epoch for another and the very end told: the answer shows that end, and the
original, which made it, settles its notice to that participant as acknowledged
(core/node/running_ends.py, "The same end, shown with a later epoch"). Nothing is
taken: no epoch, holder or proof. Before, the answer showed the epoch alone and the
original resent its end for ever (takeover soak seed 220000311)."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import committed, step
from tests.unit.core.node.test_running_ends import originals_end_met_by_an_unproven_epoch

WF = "d0.w"
FAILED = WorkflowState.FAILED
SUCCEEDED = WorkflowState.SUCCEEDED
STAT = "end notice settled by a later epoch's member showing the same end"


def d1_follows_d2_in_epoch_1():
    """d0's workflow (s1 on d1, s2 on d2; d0 places none), committed; d1 took d0's
    FAILED of epoch 0 and holds epoch 1 for d2 since (granted, then followed: d2's
    FAILED told on in it with no proof); d0 made FAILED and still tells it to d1 in
    epoch 0, unacknowledged."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.net = []
    fed.step("d1", Message("d0", FinalMsg(WF, FAILED, 0)))
    d1 = fed.nodes["d1"].state
    assert d1.final[WF] is FAILED
    d1.granted[WF] = (1, "d2")
    d1.epochs[WF] = (1, "d2")
    fed.net = []
    assert fed.nodes["d1"].end_notices.end_proof(WF) is None
    d0 = fed.nodes["d0"]
    d0.state.final[WF] = FAILED
    d0.pending[("final", WF, "d1")] = ["d1", FinalMsg(WF, FAILED, 0), 9.0, 8.0]
    return fed


def answer_of_d1(fed, state: WorkflowState) -> ClaimAnswerMsg:
    out = sent(fed.step("d1", Message("d0", FinalMsg(WF, state, 0))))
    assert ("d0", AckMsg(("final", WF, "d1"))) not in out  # never acknowledged
    (to, answer), = [(to, m) for to, m in out if isinstance(m, ClaimAnswerMsg)]
    assert to == "d0" and not answer.granted
    assert (answer.epoch, answer.held_epoch, answer.holder) == (0, 1, "d2")
    return answer


def test_the_answer_shows_the_very_end_held_and_no_other() -> None:
    """d1 answers d0's FAILED with epoch 1, its holder d2 and FAILED, the end it holds;
    d0's SUCCEEDED (another end) with the epoch alone, as before."""
    fed = d1_follows_d2_in_epoch_1()
    assert answer_of_d1(fed, FAILED).final is FAILED
    assert answer_of_d1(fed, SUCCEEDED).final is None
    assert fed.nodes["d1"].state.final[WF] is FAILED
    # The epoch d1's own (a `settled` notice is answered, not acknowledged): never
    # shown naming itself, which the original would take as a found end.
    d1 = fed.nodes["d1"].state
    d1.granted[WF] = d1.epochs[WF] = (1, "d1")
    out = sent(fed.step("d1", Message("d0", FinalMsg(WF, FAILED, 0, settled=True))))
    answers = [m for to, m in out if isinstance(m, ClaimAnswerMsg)]
    assert all(m.final is None for m in answers)


def test_the_original_that_made_the_end_settles_its_notice_on_that_answer() -> None:
    """d1's answer reaches d0: its notice to d1 is settled as acknowledged, and nothing
    of the answer is taken (d0 follows no epoch, keeps no proof). Before, d0 resent
    its FAILED to d1 every 8 s for ever, d2 alive in its view."""
    fed = d1_follows_d2_in_epoch_1()
    answer = answer_of_d1(fed, FAILED)
    d0 = fed.nodes["d0"]
    fed.step("d0", Message("d1", answer))
    assert ("final", WF, "d1") not in d0.pending
    assert "d1" in d0.state.final_acked[WF]
    assert d0.stats[STAT] == 1
    assert WF not in d0.state.epochs and WF not in d0.state.end_proofs
    assert d0.state.final[WF] is FAILED
    assert not fed.refused


def test_an_end_told_first_or_another_notice_is_not_settled_so() -> None:
    """Only an end made here, told in epoch 0 by that very notice: an end d0 only holds
    (told first, domain_loss.py), or its notice of another end, or a saga's end, is
    left to resend; once made, the same answer settles it."""
    fed = d1_follows_d2_in_epoch_1()
    answer = answer_of_d1(fed, FAILED)
    d0 = fed.nodes["d0"]
    del d0.state.final[WF]  # told first, not made
    fed.step("d0", Message("d1", answer))
    assert ("final", WF, "d1") in d0.pending
    d0.state.final[WF] = FAILED
    entry = d0.pending[("final", WF, "d1")]
    entry[1] = FinalMsg(WF, SUCCEEDED, 0)
    fed.step("d0", Message("d1", answer))
    assert ("final", WF, "d1") in d0.pending
    entry[1] = FinalMsg(WF, FAILED, 0, saga_over=True)
    fed.step("d0", Message("d1", answer))
    assert ("final", WF, "d1") in d0.pending
    entry[1] = FinalMsg(WF, FAILED, 0)
    fed.step("d0", Message("d1", answer))
    assert ("final", WF, "d1") not in d0.pending
    assert d0.stats[STAT] == 1


def test_an_original_that_only_told_its_end_still_claims_past_the_gone_holder() -> None:
    """The answer shows the end, but d0, back with its loss verdict told first and not
    made, takes nothing on that unproven word: it reads the answer as the denial it was
    and claims epoch 2 past d2, gone in its view, as before (takeover soak seed 101830,
    test_running_ends.py), never following d2 in epoch 1 on d3's word."""
    fed = committed([step("s1"), step("s2"), step("s3")],
                    {"s1": "d1", "s2": "d2", "s3": "d3"})
    before = originals_end_met_by_an_unproven_epoch(fed, WF)
    answers = [m for r in fed.readies["d3"][before:] for to, m in sent(r)
               if to == "d0" and type(m) is ClaimAnswerMsg and m.epoch == 0]
    assert answers and all(m.final is FAILED for m in answers)
    d0 = fed.disks["d0"]
    assert d0.final[WF] is FAILED
    assert d0.epochs[WF] == (2, "d0")  # claimed past d2, not following it on d3's word
