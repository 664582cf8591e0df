"""Two end notices of the very end a Node holds, refused before for a field that says
nothing about the end, now acknowledged and acted on no further (core/node/
authority_ends.py, "Settled" and "The same end, its proof kept"):

- the original coordinator's epoch-0 end, marked `settled` (every participant had
  acknowledged its COMMIT), at a participant that ended the workflow alike in a later
  epoch: acknowledged, `settled` never acted on from an overtaken epoch (takeover soak
  seed 222000312: the original, a participant too, resent its FAILED every 8 s to the
  holder of epoch 1 to the run's end);
- the proven holder's end told again with no certificate (a late granter told the end
  of the claim's epoch: takeover_late_grants.py, `told`), at an elector holding no step
  that keeps that very end with that holder's proof: acknowledged (takeover soak seed
  222002831: refused "without its certificate" for ever).

Another end, or another teller, is refused or answered as before."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.federation import sent
from tests.unit.core.node.stories import committed_in
from tests.unit.core.node.test_domain_loss import WF, Retained, step
from tests.unit.core.node.test_elector_ends_crash import d2_granted_d1_epoch_1
from tests.unit.core.node.test_told_ends import certificate

FAILED = WorkflowState.FAILED
SUCCEEDED = WorkflowState.SUCCEEDED


def d1_holds_epoch_1_ended():
    """d0's workflow, s0 on d0 (the original is a participant) and s1 on d1, committed
    with retention on; d1 claimed epoch 1, acts in it, and ended the workflow FAILED."""
    fed = committed_in(Retained(), [step("s0"), step("s1")], {"s0": "d0", "s1": "d1"})
    fed.net = []
    d = fed.nodes["d1"].state
    fed.step("d1", Message("d0", FinalMsg(WF, FAILED, 0)))
    assert d.final[WF] is FAILED and WF not in d.settled
    d.granted[WF] = (1, "d1")
    d.epochs[WF] = (1, "d1")
    fed.net = []
    return fed


def test_the_originals_settled_same_end_is_acknowledged_not_acted_on() -> None:
    """d0's FAILED of epoch 0, `settled`, to d1 holding epoch 1 with that FAILED:
    acknowledged, no refusal, and d1 marks nothing settled on an overtaken teller's
    word. Before, refused as a stale cancel, silently, for ever."""
    fed = d1_holds_epoch_1_ended()
    d = fed.nodes["d1"].state
    out = sent(fed.step("d1", Message("d0", FinalMsg(WF, FAILED, 0, settled=True))))
    assert fed.refused == []
    assert ("d0", AckMsg(("final", WF, "d1"))) in out
    assert WF not in d.settled
    assert d.final[WF] is FAILED and d.epochs[WF] == (1, "d1")


def test_the_originals_settled_end_is_acted_on_in_the_epoch_held() -> None:
    """The same notice at a participant that follows epoch 0: `settled` is kept, as
    before (retention's `settled` mark)."""
    fed = committed_in(Retained(), [step("s0"), step("s1")], {"s0": "d0", "s1": "d1"})
    fed.net = []
    out = sent(fed.step("d1", Message("d0", FinalMsg(WF, FAILED, 0, settled=True))))
    assert ("d0", AckMsg(("final", WF, "d1"))) in out
    assert WF in fed.nodes["d1"].state.settled


def test_another_settled_end_from_the_original_is_still_refused() -> None:
    """d0's SUCCEEDED, not the end d1 holds, `settled`: refused, never acknowledged."""
    fed = d1_holds_epoch_1_ended()
    out = sent(fed.step("d1", Message("d0", FinalMsg(WF, SUCCEEDED, 0, settled=True))))
    assert fed.refused
    assert ("d0", AckMsg(("final", WF, "d1"))) not in out
    assert fed.nodes["d1"].state.final[WF] is FAILED


def elector_ended_with_d1s_proof():
    """d2, an elector holding no step, granted d1 epoch 1 and took d1's SUCCEEDED with
    its certificate (the proof kept)."""
    fed = d2_granted_d1_epoch_1()
    won = certificate(fed, "d1", ("d1", "d2"))
    fed.step("d2", Message("d1", FinalMsg(WF, SUCCEEDED, 1, won=won)))
    assert fed.disks["d2"].end_proofs[WF][:2] == (1, "d1")
    fed.net.clear()
    return fed


def test_the_holders_same_end_without_its_certificate_is_acknowledged() -> None:
    """d1 tells d2 its SUCCEEDED of epoch 1 again, no certificate: acknowledged, nothing
    changed. Before, refused for ever ("without its certificate")."""
    fed = elector_ended_with_d1s_proof()
    before = fed.disks["d2"].end_proofs[WF]
    out = sent(fed.step("d2", Message("d1", FinalMsg(WF, SUCCEEDED, 1))))
    assert fed.refused == []
    assert ("d1", AckMsg(("final", WF, "d2"))) in out
    assert fed.disks["d2"].final[WF] is SUCCEEDED
    assert fed.disks["d2"].end_proofs[WF] == before
    assert fed.disks["d2"].epochs[WF] == (1, "d1")


def test_another_end_or_teller_without_a_certificate_is_still_refused() -> None:
    """Another end from d1, or the same end of epoch 1 from another domain, with no
    certificate: refused, never acknowledged nor answered."""
    fed = elector_ended_with_d1s_proof()
    for src, msg in (("d1", FinalMsg(WF, FAILED, 1)), ("d3", FinalMsg(WF, SUCCEEDED, 1))):
        out = sent(fed.step("d2", Message(src, msg)))
        assert not [m for _, m in out if isinstance(m, (AckMsg, ClaimAnswerMsg))]
    assert [r for _, r in fed.refused] == ["not_coordinator", "not_coordinator"]
    assert fed.disks["d2"].final[WF] is SUCCEEDED
