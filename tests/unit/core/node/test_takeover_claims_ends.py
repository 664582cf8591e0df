"""A claim answered with the end (core/node/takeover_claims.py): a member whose saga
plan is open grants the claim with the end it holds ("Grants."); one that ended the
workflow, its saga's plan closed, denies it with that end ("Ends in denials."); either
way the answer carries the member's placements on record. The claimant that never
learned the end makes it its own and tells it on in its epoch; it takes the answer's
placements first, so that a step placed again is told the end in its new domain too.

d0 coordinates (dead); s1 on d1, s2 on d2 after s1. d0 placed s1 again on d3 (round 2)
while d1 was down and ended the workflow; d1, back, claims epoch 1, and d2 answers with
that end and the placement. Simulator seeds: 163301080 (a grant: d3, told nothing by the
claimant, followed a rival claimant that had yielded, and its SUCCEEDED run of the step
was never compensated) and 167100188 with `--commit 2pc` (a denial: d1 told its end to
d0 and d2 only and drove the saga of epoch 1 with nothing owed; d3 never reported its
run to it, and once d0 had followed d1 and forgotten the workflow, no saga held that
run's compensation)."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg, FinalMsg, PlacedMsg
from fedorch.core.node.takeover_grants import sign_grant
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_takeover import WF, claiming_d1, committed, fake_signer

PLACED_AGAIN = (("s1", 2, "d3", "d1"),)
BEFORE = (("s1", ("d1",)),)


def _end_told_on(fed, answer: ClaimAnswerMsg, state: WorkflowState) -> dict[str, FinalMsg]:
    """d1 takes `answer` from d2: the end is its own in epoch 1, the placement on
    record, and the end told on to its new domain; the end notices d1 sends, by domain."""
    d1 = fed.nodes["d1"]
    ready = fed.step("d1", Message("d2", answer))
    assert d1.stats["takeover found the end"] == 1
    assert fed.disks["d1"].final[WF] is state
    assert fed.disks["d1"].epochs[WF] == (1, "d1")
    assert fed.disks["d1"].placements[WF]["s1"] == (2, "d3", "d1")
    told = {dst: m for dst, m in ready.send_after_write + ready.send_now
            if isinstance(m, FinalMsg)}
    assert told["d3"].epoch == 1 and told["d3"].state is state
    return told


def test_a_grant_carrying_the_end_tells_it_to_the_new_domain_of_its_placement() -> None:
    fed = claiming_d1()
    electorate = fed.nodes["d1"].takeover.cores[WF].electorate
    grant = sign_grant(fake_signer("d2"), "d2", WF, 1, "d1", electorate)
    answer = ClaimAnswerMsg(WF, 1, True, 1, "d1", final=WorkflowState.FAILED, grant=grant,
                            placements=PLACED_AGAIN, before=BEFORE)
    assert "d2" in _end_told_on(fed, answer, WorkflowState.FAILED)


def test_a_denial_carrying_the_end_tells_it_to_the_new_domain_of_its_placement() -> None:
    fed = claiming_d1()
    answer = ClaimAnswerMsg(WF, 1, False, 0, "d0", final=WorkflowState.CANCELLED,
                            placements=PLACED_AGAIN, before=BEFORE)
    _end_told_on(fed, answer, WorkflowState.CANCELLED)


def test_a_member_that_ended_the_workflow_denies_a_claim_with_its_placements() -> None:
    fed = committed()
    fed.step("d2", Message("d0", PlacedMsg(WF, "s1", "d3", 2, "d1")))
    assert fed.disks["d2"].placements[WF]["s1"] == (2, "d3", "d1")
    fed.step("d2", Message("d0", FinalMsg(WF, WorkflowState.CANCELLED, 0, saga_over=True)))
    assert fed.disks["d2"].final[WF] is WorkflowState.CANCELLED
    ready = fed.step("d2", Message("d1", ClaimMsg(WF, 1)))
    answers = [m for _, m in ready.send_after_write + ready.send_now
               if isinstance(m, ClaimAnswerMsg)]
    assert len(answers) == 1 and not answers[0].granted
    assert answers[0].final is WorkflowState.CANCELLED
    assert answers[0].placements == PLACED_AGAIN
