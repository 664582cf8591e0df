"""The original coordinator, back and acting in a later epoch it claimed itself, asked
by the new domain of a successor's re-placement round that is in doubt (its
coordinator gone for good): it answers as any later holder does
(agent/core/node/replacement_handover.py, "The original as a later holder"), where it
answered NOT_PREPARED for ever and the new domain held its YES for good (takeover soak
seed 97000669)."""

from __future__ import annotations

from fedorch.core.negotiation.messages import Decision
from fedorch.core.node import MemberState, StepEnded, Tick
from fedorch.core.node.records import PlacedMsg, PrepareMsg, ResultMsg, VoteMsg
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.federation import Held
from tests.unit.core.node.test_domain_loss import WF, Federation, committed, step
from tests.unit.core.node.test_replacement import end_everything, runs_of


def _made(src: str, dst: str, msg: object) -> bool:
    return src == "d0" and isinstance(msg, PlacedMsg) and msg.made


def d1_places_s0_again_and_d0_wins_epoch_2(held: Held) -> tuple[Federation, tuple, str]:
    """d0's workflow: s0 (idempotent, on d0 itself), s1 (idempotent, on d1), s2 (on d2);
    electorate d0, d1, d2. s2 ends; s0 SUCCEEDS at d0, its result lost on the way, and
    d0 dies: d1 wins epoch 1 with d2's grant and places s0 again (`held`: what of its
    round is lost with it), then dies for good. d0 comes back seeing d1 DEAD (d2 and d3
    never do: they claim nothing), places s1 again in a round of epoch 0, is answered
    with epoch 1 by d2, claims epoch 2 past d1, and wins it with d2's grant (which
    carries the placements d2 holds). Returns the federation, d1's round and its new
    domain (its candidate)."""
    fed = committed([step("s0", idempotent=True), step("s1", idempotent=True), step("s2")],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d2", "s2")
    fed.step("d0", StepEnded(*next(iter(fed.running["d0"])), ok=True))
    fed.deliver(keep=lambda src, dst, msg: src == "d0" and isinstance(msg, ResultMsg))
    fed.net = []
    fed.goes_silent_and_dead("d0", keep=held)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    prepare = next(m for _, m in fed.sent_by("d1", PrepareMsg))
    key, new = prepare.tx.key, prepare.tx.participants[0]
    assert key[1] in round_range(1) and fed.nodes[new].participant.status(key) == "prepared"
    fed.net = []  # lost with d1, gone for good
    fed.silent.add("d1")
    fed.running["d1"] = set()
    fed.silent.discard("d0")
    fed.restore("d0")
    for n in ("d2", "d3"):
        fed.step(n, MemberState("d0", "ALIVE"))
    fed.step("d0", MemberState("d1", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    for _ in range(60):
        fed.now += 1.0
        for n in ("d0", "d2", "d3"):
            fed.step(n, Tick())
        fed.deliver(keep=_made)
        if fed.evidence.acting.get((WF, 2)) == "d0":
            break
    assert fed.evidence.acting == {(WF, 1): "d1", (WF, 2): "d0"}
    return fed, key, new


def test_the_original_acting_later_hands_out_a_successors_commit_when_asked() -> None:
    """d1 decides its round's COMMIT and tells the placement, and dies before the COMMIT
    leaves. d0, acting in epoch 2, knows the placement (d2's grant carried it) and hands
    the COMMIT out, told everywhere again first; every copy of it is lost until the new
    domain, in doubt, asks d0, which hands the COMMIT out again: s0 runs there and the
    workflow SUCCEEDS. (A late acknowledgement of the plain tell no longer ends the
    COMMIT's resends: test_replacement_made_id.py.)"""
    fed, key, new = d1_places_s0_again_and_d0_wins_epoch_2(
        lambda src, dst, msg: src == "d1" and isinstance(msg, Decision))
    d0 = fed.nodes["d0"]
    assert fed.disks["d0"].placements[WF]["s0"] == (key[1], new, "d0")
    assert d0.stats["re-placement handed over by a successor"] == 1
    assert [m for m in fed.net if _made(*m)]
    fed.net = [m for m in fed.net if not _made(*m)]  # the handed-out COMMIT lost
    deadline = fed.now + 60.0
    while not d0.stats["re-placement asked: handed over"] and fed.now < deadline:
        fed.now += 1.0  # every copy of it lost, until the new domain asks
        for n in ("d0", "d2", "d3"):
            fed.step(n, Tick())
        fed.deliver(keep=_made)
        fed.net = [m for m in fed.net if not _made(*m)]
        assert fed.nodes[new].participant.status(key) == "prepared"
    fed.run_until(fed.now + 30.0)
    assert d0.stats["re-placement asked: handed over"] >= 1
    assert fed.disks[new].learned[key].commit
    end_everything(fed)
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s0") == [("d0", 1), (new, 1)]  # the lost placement's, the new


def test_the_original_acting_later_answers_a_successors_undecided_round_void() -> None:
    """d1 dies before its candidate's YES reaches it: nothing of its round is decided
    or told, and its acceptors (d1 and the candidate) can reach no majority for the
    candidate's recovery ballot. d0, acting in epoch 2, knows no placement of the
    round and, asked by the candidate, answers it void: the YES is released. Nothing
    ran under the round; d0 never took s0 as lost (its own run's result is on its
    disk), and the workflow SUCCEEDS with s0 run once, at d0."""
    fed, key, new = d1_places_s0_again_and_d0_wins_epoch_2(
        lambda src, dst, msg: dst == "d1" and isinstance(msg, VoteMsg))
    assert "s0" not in fed.disks["d2"].placements.get(WF, {})
    fed.run_until(fed.now + 30.0)
    assert fed.nodes["d0"].stats["re-placement asked: answered void"] >= 1
    assert fed.nodes[new].stats["re-placement YES released: void in a later epoch"] == 1
    assert key not in fed.disks[new].holds and key not in fed.disks[new].learned
    assert "s0" not in fed.disks["d0"].placements.get(WF, {})
    end_everything(fed)
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s0") == [("d0", 1)]
    assert not fed.disks[new].holds
