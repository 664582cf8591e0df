"""A grant that carries the end (core/node/takeover_claims.py, `on_claim_answer`): its
granter's saga plan is open, so it grants the claim with the end it holds. The claimant
makes that end its own and tells it on in its epoch; it takes the grant's placements
first, so that a step placed again is told the end in its new domain too.

d0 coordinates (dead); s1 on d1, s2 on d2 after s1. d0 placed s1 again on d3 (round 2)
while d1 was down, and ended the workflow FAILED; d1, back, claims epoch 1, and d2
grants it with that end and the placement (takeover simulator seed 163301080: d3, told
nothing by the claimant, followed a rival claimant that had yielded, and its SUCCEEDED
run of the step was never compensated)."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import ClaimAnswerMsg, FinalMsg
from fedorch.core.node.takeover_grants import sign_grant
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_takeover import WF, claiming_d1, fake_signer


def test_a_grant_carrying_the_end_tells_it_to_the_new_domain_of_its_placement() -> None:
    fed = claiming_d1()
    d1 = fed.nodes["d1"]
    electorate = d1.takeover.cores[WF].electorate
    grant = sign_grant(fake_signer("d2"), "d2", WF, 1, "d1", electorate)
    answer = ClaimAnswerMsg(WF, 1, True, 1, "d1", final=WorkflowState.FAILED, grant=grant,
                            placements=(("s1", 2, "d3", "d1"),), before=(("s1", ("d1",)),))
    ready = fed.step("d1", Message("d2", answer))
    assert d1.stats["takeover found the end"] == 1
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d1"].epochs[WF] == (1, "d1")
    # The placement is on record, and the end goes to its new domain in epoch 1.
    assert fed.disks["d1"].placements[WF]["s1"] == (2, "d3", "d1")
    told = {dst: m for dst, m in ready.send_after_write + ready.send_now
            if isinstance(m, FinalMsg)}
    assert told["d3"].epoch == 1 and told["d3"].state is WorkflowState.FAILED
    assert "d2" in told
