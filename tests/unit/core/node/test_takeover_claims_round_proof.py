"""What the original coordinator's claim shows an acceptor that holds no step
(core/node/takeover_claim_proof.py, `own_round_proof`), Nodes driven by hand through the
boundary (test_domain_loss.py's Federation): d0 coordinates; s1 runs on d1; d2 is the
round's extra acceptor (the electorate is d0, d1 and d2)."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message
from fedorch.core.node.records import ClaimAnswerMsg
from fedorch.core.workflow.takeover import Role

from tests.unit.core.node.test_domain_loss import NAMES, WF, Federation, committed, step


def d1_won_and_died_for_good() -> Federation:
    """Committed, every participant acknowledged the decision (d0 collected its record);
    d0 stalls, DEAD in every view; d1 wins epoch 1 with d2's grant and dies for good;
    d0 comes back, its view holding d1 DEAD."""
    fed = committed([step("s1")], {"s1": "d1"})
    d0 = fed.disks["d0"]
    assert d0.rows[WF].acceptors == ("d0", "d1", "d2")
    assert not [k for k in d0.records if k[0] == WF]  # collected
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d2"].granted[WF] == (1, "d1")
    fed.silent.add("d1")
    fed.running["d1"] = set()
    fed.silent.discard("d0")
    fed.net = []
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "DEAD" if m == "d1" else "ALIVE")
                     for m in NAMES if m != "d0"])
    fed.step("d2", MemberState("d1", "DEAD"), MemberState("d0", "ALIVE"))
    return fed


def test_the_original_shows_its_commit_from_its_acceptor_record_once_collected() -> None:
    """Told by d2 that d1 holds epoch 1, d0 claims epoch 2 past it
    (agent/core/workflow/takeover_overtaken.py). Its decision record is gone, collected
    once every participant acknowledged it; the COMMIT it decided is in its own acceptor
    record of the round, and its claim shows d2 that, with every participant's signed
    YES: d2 grants, and d0 acts in epoch 2. Before, the claim carried no proof, d2
    refused it (no_proof) for ever and d0 stayed RUNNING (takeover soak seed 8300672)."""
    fed = d1_won_and_died_for_good()
    d0 = fed.nodes["d0"]
    core = d0.takeover.core(WF)
    assert core is not None
    proof, stated, commit = d0.takeover.claims._round_proof(WF, core, "d2")
    assert proof is not None and proof.decided == "COMMIT"
    assert proof.participants == frozenset({"d1"}) and stated is not None and commit
    fed.step("d0", Message("d2", ClaimAnswerMsg(WF, 0, False, 1, "d1")))
    fed.deliver()
    assert fed.evidence.acting.get((WF, 2)) == "d0"
    assert fed.disks["d2"].granted[WF] == (2, "d0")
    assert core.role is Role.ACTING
    assert not fed.nodes["d2"].stats["takeover claim refused no_proof"]
