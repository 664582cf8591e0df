"""The proven holder of an overtaken epoch that tells the very end a Node holds, taken
from a later epoch's holder with no proof, is acknowledged and changes nothing there
(core/node/authority_ends.py, "The same end, proven"); another end is refused as
before. Takeover soak seed 194000193."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import AckMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import committed, step

WF = "d0.w"
FAILED = WorkflowState.FAILED


def ended_in_epoch_2_without_proof():
    """d0's workflow: d0 dies and d1 wins epoch 1 (its certificate); d2 granted epoch 2
    to d0, the original back and claiming past d1 gone in its view (set in d2's tables:
    the claim's making is takeover_claims.py's), and took d0's FAILED of epoch 2, told
    with no certificate: d2 ended the workflow and keeps no proof of its end."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d0")
    epoch, won = fed.disks["d1"].certificates[WF]
    assert epoch == 1
    d = fed.nodes["d2"].state
    d.granted[WF] = (2, "d0")
    d.epochs[WF] = (2, "d0")
    fed.net = []
    fed.step("d2", Message("d0", FinalMsg(WF, FAILED, 2)))
    assert d.final[WF] is FAILED
    assert fed.nodes["d2"].end_notices.end_proof(WF) is None
    return fed, won


def test_the_proven_holders_same_end_of_an_older_epoch_is_acknowledged() -> None:
    """d1 tells d2 its epoch-1 FAILED with its certificate: acknowledged, and d2 still
    follows epoch 2 and holds the end it held. Before, it was refused as stale_epoch
    and d1 resent it for ever (retention kept the workflow)."""
    fed, won = ended_in_epoch_2_without_proof()
    d = fed.nodes["d2"].state
    fed.step("d2", Message("d1", FinalMsg(WF, FAILED, 1, won=won)))
    assert ("d2", "stale_epoch") not in fed.refused
    assert ("d1", AckMsg(("final", WF, "d2"))) in fed.sent_by("d2", AckMsg)
    assert d.final[WF] is FAILED
    assert d.epochs[WF] == (2, "d0") and d.granted[WF] == (2, "d0")


def test_another_end_of_an_older_epoch_is_still_refused() -> None:
    """The same holder's SUCCEEDED of epoch 1 (not the end held here) is refused as
    stale: the end d2 holds stands, and nothing acknowledges the other."""
    fed, won = ended_in_epoch_2_without_proof()
    fed.step("d2", Message("d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=won)))
    assert ("d2", "stale_epoch") in fed.refused
    assert ("d1", AckMsg(("final", WF, "d2"))) not in fed.sent_by("d2", AckMsg)
    assert fed.nodes["d2"].state.final[WF] is FAILED


def test_the_same_end_without_its_certificate_is_still_refused() -> None:
    """Unproven, an older epoch's same end from d1 is no holder's word: refused."""
    fed, won = ended_in_epoch_2_without_proof()
    fed.step("d2", Message("d1", FinalMsg(WF, FAILED, 1, won=won[:1])))
    assert ("d1", AckMsg(("final", WF, "d2"))) not in fed.sent_by("d2", AckMsg)
