"""Ends in the Node's takeover part (agent/core/node/takeover.py, `follow_end`; an end
of a later epoch than followed makes its teller followed, EndNotices.on_final), Nodes
driven by hand through the boundary (test_domain_loss.py's Federation): d0 coordinates;
the committed round's electorate is its acceptors, d0, d1 and d2."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message, authority
from fedorch.core.node.records import AckMsg, CompensateMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import (
    NAMES,
    WF,
    Federation,
    committed,
    d0_dies_for_good,
    dies,
    step,
)
from tests.unit.core.node.test_replacement import d0_places_s1_again_on_d2_whose_vote_is_lost


def views(fed: Federation, name: str, alive: tuple[str, ...]) -> None:
    """`name`'s membership view: `alive` ALIVE, every other member DEAD."""
    fed.step(name, *[MemberState(m, "ALIVE" if m in alive else "DEAD")
                     for m in NAMES if m != name])


def ended_by_a_successor_d2_granted_as_an_acceptor() -> Federation:
    """s0 runs on d0 itself, s1 on d1; d2 is the extra acceptor. d3 is gone; d1 dies and
    d0 places s1 again on d2, which votes YES (lost on the way); d0 dies before deciding.
    d2, in doubt on that round only, grants d1's claim of epoch 1 as the acceptor of the
    committed round it is: `granted`, no coordinator followed. d1, back, wins, fails s0
    (not idempotent, lost with d0) and tells d2 its end with its certificate; d2 takes
    it (its re-placement YES released)."""
    fed = d0_places_s1_again_on_d2_whose_vote_is_lost()
    fed.silent.add("d0")
    fed.running["d0"] = set()
    fed.silent.discard("d1")
    fed.restore("d1")
    views(fed, "d1", alive=("d2",))
    views(fed, "d2", alive=("d1",))
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert fed.nodes["d2"].stats["re-placement YES released at the end"] == 1
    return fed


def test_an_end_of_the_epoch_granted_as_an_acceptor_makes_its_teller_followed() -> None:
    """d2 granted epoch 1 to d1 as an acceptor only; taking d1's end of that epoch, it
    follows d1 in it, so the end's proof it keeps is the one it shows (EndNotices.end_proof
    shows a kept proof only of the epoch followed)."""
    fed = ended_by_a_successor_d2_granted_as_an_acceptor()
    d2 = fed.nodes["d2"]
    assert fed.disks["d2"].granted[WF] == (1, "d1")
    assert fed.disks["d2"].epochs[WF] == (1, "d1")
    assert d2.stats["takeover end of the epoch granted here followed"] == 1
    proof = d2.end_notices.end_proof(WF)
    assert proof is not None and proof[:2] == (1, "d1")


def test_the_original_back_after_that_successor_died_ends_the_workflow() -> None:
    """Then d1 dies for good; d0 comes back in epoch 0, telling the end it holds. d2
    answers it as the holder of epoch 1's end (the same end: acknowledged), where it
    refused it for ever as of a stale epoch and d0 stayed RUNNING (takeover soak seed
    4802097)."""
    fed = ended_by_a_successor_d2_granted_as_an_acceptor()
    fed.silent.add("d1")
    fed.running["d1"] = set()
    fed.silent.discard("d0")
    fed.net = []
    fed.refused.clear()
    fed.restore("d0")
    views(fed, "d0", alive=("d2",))
    views(fed, "d2", alive=("d0",))
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    assert ("d2", "stale_epoch") not in fed.refused
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED



def test_an_end_of_a_later_epoch_than_followed_makes_its_teller_followed_at_once() -> None:
    """d2 follows no later epoch (d0's, 0) but granted epoch 2 to d3, a claimant not
    known here to have won, when d1's end of epoch 1 comes, with d1's certificate:
    taken, it makes d1 followed on that one notice (its tells taken, its saga's
    reports sent there), the grant to d3 kept. Before, d2 ended the workflow and
    refused d1's compensation tells as not its coordinator's (`not_coordinator`:
    coordinated by d0 in epoch 0) until another notice came, and for ever if none did
    (the shape of tests/sim takeover seed 198's failure: an end taken, its teller not
    followed)."""
    fed = committed([step("s0"), step("s1"), step("s2")],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    fed.end("d2", "s2")

    def end_to_d2(src: str, dst: str, msg: object) -> bool:
        return src == "d1" and dst == "d2" and isinstance(msg, FinalMsg)

    d0_dies_for_good(fed, keep=end_to_d2)
    (end,) = [m for src, dst, m in fed.net if end_to_d2(src, dst, m)]
    assert end.epoch == 1 and end.won
    fed.disks["d2"].epochs.pop(WF, None)  # as if d2 had granted d3 and never d1
    fed.disks["d2"].granted[WF] = (2, "d3")
    fed.restore("d2")
    fed.net = []
    fed.step("d2", Message("d1", end))
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].epochs.get(WF) == (1, "d1")
    assert fed.disks["d2"].granted[WF] == (2, "d3")  # the promise stands
    authority.check(fed.nodes["d2"], "d1", CompensateMsg(WF, "s2", 1))
    assert not fed.refused


def test_a_claimant_refuses_an_older_epochs_end_before_its_claim_wins() -> None:
    """d2 dies: d0 fails s2 (started, not idempotent) and tells its verdict's end,
    FAILED in epoch 0, before it makes it. d1 claims epoch 1 meanwhile (its own grant
    written) and restarts before it wins; d0's notice then reaches it. Refused as of an
    older epoch, as under a grant to another (authority_ends.py), never taken nor
    acknowledged: taken, d1 made it its own in epoch 1 at once, while d0 may void it
    (it grants a later claim before d1's acknowledgement reaches it) and that claim's
    winner end the workflow otherwise (takeover soak seed 28000322)."""
    fed = committed([step("s0"), step("s1"), step("s2")],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})

    def told_to_d1(src: str, dst: str, msg: object) -> bool:
        return src == "d0" and dst == "d1" and isinstance(msg, FinalMsg)

    dies(fed, "d2", keep=told_to_d1)
    (told,) = [m for src, dst, m in fed.net if told_to_d1(src, dst, m)]
    assert told.state is WorkflowState.FAILED and told.epoch == 0
    assert fed.nodes["d0"].domain_loss.holds(WF)  # told, not made
    fed.disks["d1"].granted[WF] = (1, "d1")  # its claim of epoch 1, not won
    fed.restore("d1")
    fed.net = []
    fed.step("d1", Message("d0", told))
    assert ("d1", "stale_epoch") in fed.refused
    assert WF not in fed.disks["d1"].final
    assert fed.disks["d1"].epochs.get(WF) is None
    assert not [m for src, _, m in fed.net if src == "d1" and isinstance(m, AckMsg)]
