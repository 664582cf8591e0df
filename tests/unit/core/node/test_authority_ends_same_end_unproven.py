"""The very end a Node holds, told with no certificate by a domain whose notice it
refused before, is acknowledged and changes nothing there (core/node/authority_ends.py,
"The same end, unproven"): the original coordinator's epoch-0 end at a claimant that
told it on in an epoch it never won, and a rival claimant's end of the epoch held here
from a domain not known here as a member. Another end is answered or refused as
before. Before, each teller resent its notice for ever."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import committed, step

WF = "d0.w"
FAILED = WorkflowState.FAILED


def ended_at(name: str, placement: dict[str, str], epoch: tuple[int, str]):
    """d0's workflow, placed as `placement` says (d0 places no step), committed; `name`
    took d0's FAILED of epoch 0 and holds `epoch` (its own claim, never won, in which it
    told the end on; or another claimant's it follows), with no proof of its end."""
    fed = committed([step(s) for s in sorted(placement)], placement)
    d = fed.nodes[name].state
    fed.net = []
    fed.step(name, Message("d0", FinalMsg(WF, FAILED, 0)))
    assert d.final[WF] is FAILED
    d.granted[WF] = epoch
    d.epochs[WF] = epoch
    fed.net = []
    assert fed.nodes[name].end_notices.end_proof(WF) is None
    return fed


def test_the_originals_same_end_at_a_claimant_that_told_it_on_is_acknowledged() -> None:
    """d1, which claimed epoch 1 (never won) and told d0's FAILED on in it, is told that
    FAILED by d0 again: acknowledged, d1 still holding epoch 1 and its end. Before, d1
    answered it with epoch 1 held by d1 itself; d0, d1 alive in its view, claimed
    nothing and resent it for ever (test_fence_check.py's scripted run)."""
    fed = ended_at("d1", {"s1": "d1", "s2": "d2"}, (1, "d1"))
    d = fed.nodes["d1"].state
    out = sent(fed.step("d1", Message("d0", FinalMsg(WF, FAILED, 0))))
    assert ("d0", AckMsg(("final", WF, "d1"))) in out
    assert not [m for _, m in out if isinstance(m, ClaimAnswerMsg)]
    assert d.final[WF] is FAILED
    assert d.epochs[WF] == (1, "d1") and d.granted[WF] == (1, "d1")


def test_another_end_from_the_original_is_still_answered_with_the_later_epoch() -> None:
    """d0's SUCCEEDED (not the end d1 holds) is answered with the epoch held, as before,
    never acknowledged."""
    fed = ended_at("d1", {"s1": "d1", "s2": "d2"}, (1, "d1"))
    out = sent(fed.step("d1", Message("d0", FinalMsg(WF, WorkflowState.SUCCEEDED, 0))))
    assert ("d0", AckMsg(("final", WF, "d1"))) not in out
    (to, answer), = [(to, m) for to, m in out if isinstance(m, ClaimAnswerMsg)]
    assert to == "d0" and (answer.held_epoch, answer.holder) == (1, "d1")
    assert fed.nodes["d1"].state.final[WF] is FAILED


def test_the_originals_same_end_past_a_later_grant_to_another_is_answered_as_before(
) -> None:
    """d1, holding its own epoch 1, granted epoch 2 to d2 since: that holder may decide
    otherwise, so d0's same FAILED is answered with epoch 2 and its holder, as before,
    never acknowledged nor refused silently."""
    fed = ended_at("d1", {"s1": "d1", "s2": "d2"}, (1, "d1"))
    fed.nodes["d1"].state.granted[WF] = (2, "d2")
    out = sent(fed.step("d1", Message("d0", FinalMsg(WF, FAILED, 0))))
    assert ("d0", AckMsg(("final", WF, "d1"))) not in out
    (to, answer), = [(to, m) for to, m in out if isinstance(m, ClaimAnswerMsg)]
    assert to == "d0" and (answer.held_epoch, answer.holder) == (2, "d2")
    assert not fed.refused


def test_a_strangers_same_end_of_the_epoch_held_is_acknowledged_never_followed() -> None:
    """d2 follows d3 in epoch 1; d1, a claimant of that epoch d2 does not know as a
    member (placed nothing d2 knows of), tells it the same FAILED unproven: acknowledged,
    and d2 still follows d3, though d1 ranks better (a stranger is never followed).
    Before, it was refused as another holder's epoch, and d1 resent it for ever
    (test_saga_check_twice_driver_crash.py's scripted run, seed 5)."""
    fed = ended_at("d2", {"s1": "d2", "s2": "d3"}, (1, "d3"))
    d = fed.nodes["d2"].state
    out = sent(fed.step("d2", Message("d1", FinalMsg(WF, FAILED, 1))))
    assert ("d1", AckMsg(("final", WF, "d2"))) in out
    assert d.final[WF] is FAILED
    assert d.epochs[WF] == (1, "d3")
    assert fed.nodes["d2"].compensating.driver(WF) != "d1"


def test_a_strangers_other_end_of_the_epoch_held_is_still_refused() -> None:
    """d1's SUCCEEDED of epoch 1 (not the end d2 holds): refused, not acknowledged."""
    fed = ended_at("d2", {"s1": "d2", "s2": "d3"}, (1, "d3"))
    out = sent(fed.step("d2", Message("d1", FinalMsg(WF, WorkflowState.SUCCEEDED, 1))))
    assert ("d1", AckMsg(("final", WF, "d2"))) not in out
    assert ("d2", "not_coordinator") in fed.refused
    assert fed.nodes["d2"].state.final[WF] is FAILED
