"""A re-placement round voided in one epoch stays void in every later epoch
(agent/core/node/replacement_handover.py, "A void in a later epoch"): the original
decided its COMMIT before it was taken over, the holder of epoch 1 knew no placement of
it and answered it void, and the holder of epoch 2 learns the placement from the
original's grant."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message
from fedorch.core.node.records import AckMsg, PlacedMsg
from fedorch.core.workflow.epoch_certificate import epoch_of_round
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, Federation, committed, dies, step


def voided_in_epoch_1() -> tuple[Federation, tuple]:
    """d0's workflow: s1 (on d1, needing s2) and s2 (on d2); electorate d0, d1, d2. d1
    dies; d0 places s1 again on d3 and decides the round's COMMIT, but its tells are
    lost and it crashes. d1 comes back and wins epoch 1 with d2's grant (neither was
    told the placement), and answers d3's round void when d3 asks: d3 releases its
    YES. Returns the federation and the round."""
    fed = committed([step("s1", needs=("s2",)), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1", keep=lambda src, dst, msg: src == "d0" and isinstance(msg, PlacedMsg))
    fed.net = []  # the original's tells, lost
    key = next(h.key for h in fed.nodes["d3"].participant.holds() if h.workflow_id == WF)
    assert fed.disks["d0"].placements[WF]["s1"] == (key[1], "d3", "d1")
    assert fed.disks["d0"].records[key].commit  # decided COMMIT before any grant
    fed.silent.add("d0")  # crashes before its COMMIT can leave
    fed.running["d0"] = set()
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    for n in ("d2", "d3"):
        fed.step(n, MemberState("d1", "ALIVE"), MemberState("d0", "DEAD"))
    fed.deliver()
    fed.run_until(fed.now + 30.0)  # d3 asks the members; d1 answers void
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.nodes["d1"].stats["re-placement asked: answered void"] == 1
    d3 = fed.nodes["d3"]
    assert d3.stats["re-placement YES released: void in a later epoch"] == 1
    assert d3.participant.hold(key) is None and key not in fed.disks["d3"].learned
    return fed, key


def d2_wins_epoch_2_with_the_originals_grant(fed: Federation) -> None:
    """d1 dies before the workflow's end (d2 and d3 see it DEAD); d0 comes back, its
    view saying d1 ALIVE: d2 claims epoch 2 and wins it with d0's grant, which carries
    the placement of s1 on d3."""
    fed.silent.add("d1")
    fed.running["d1"] = set()
    for n in ("d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver()
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.step("d0", MemberState("d1", "ALIVE"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    for n in ("d2", "d3"):
        fed.step(n, MemberState("d0", "ALIVE"))
    fed.deliver()
    fed.run_until(fed.now + 60.0)
    assert fed.evidence.acting == {(WF, 1): "d1", (WF, 2): "d2"}


def test_a_later_holder_told_the_void_by_the_new_domain_places_the_step_again() -> None:
    """d2, acting in epoch 2, knows the placement of s1 on d3 (from d0's grant) and
    hands its COMMIT out; d3 released its YES on epoch 1's void and runs nothing under
    that round, so it acknowledges the handover void, and d2 drops the placement and
    places s1 again in a round of its own epoch. Without it, d2 waited for s1 at d3
    for ever and never ended the workflow."""
    fed, key = voided_in_epoch_1()
    d2_wins_epoch_2_with_the_originals_grant(fed)
    d2 = fed.nodes["d2"]
    fed.end("d2", "s2")
    fed.run_until(fed.now + 30.0)
    runs = [(n, r) for n, r in fed.started if r[1] == "s1"]
    assert runs, "d2 waits for s1 at d3, which released its YES of that round"
    epoch, domain, lost = fed.disks["d2"].placements[WF]["s1"]
    assert epoch_of_round(epoch) == 2 and lost == "d1"  # a round of d2's epoch
    assert runs == [(domain, (WF, "s1", 1))]  # at its new placement only
    assert d2.stats["re-placement handed over by a successor"] == 1
    assert d2.stats["re-placement void at its new domain: placed again"] == 1
    fed.end(domain, "s1")
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d2"].results[WF]["s1"][1] is StepState.SUCCEEDED
    assert key not in fed.disks["d3"].learned  # the voided round never committed there


def test_a_new_domain_holding_its_yes_acknowledges_a_tell_plainly() -> None:
    """Only a round the new domain holds nothing of is acknowledged void: while its YES
    is held (PREPARED), the original's tell of the placement is acknowledged as any."""
    fed = committed([step("s1", needs=("s2",)), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1", keep=lambda src, dst, msg: src == "d0" and isinstance(msg, PlacedMsg))
    tell = next(m for _, dst, m in fed.net if dst == "d3")
    fed.net = []
    fed.step("d3", Message("d0", tell))
    acks = [m for _, dst, m in fed.net if isinstance(m, AckMsg) and dst == "d0"]
    assert len(acks) == 1 and not acks[0].void
    assert fed.nodes["d3"].participant.status((WF, tell.epoch)) == "prepared"


def test_a_void_acknowledgement_from_another_domain_drops_nothing() -> None:
    """The holder drops a placement only on the word of that placement's own domain,
    about that very round: d0, acknowledging d2's tell of s1 on d3 void, changes
    nothing (d3 answers for its own round alone)."""
    fed, key = voided_in_epoch_1()
    fed.silent.add("d3")  # its acknowledgements never come: d2 still waits for s1 there
    d2_wins_epoch_2_with_the_originals_grant(fed)
    d2 = fed.nodes["d2"]
    assert d2.progress[WF].steps["s1"].domain == "d3"
    msg_id = ("placed", WF, "s1", key[1], "d0")
    fed.step("d2", Message("d0", AckMsg(msg_id, void=True)))
    assert not d2.stats["re-placement void at its new domain: placed again"]
    assert d2.progress[WF].steps["s1"].domain == "d3"
    assert fed.disks["d2"].placements[WF]["s1"] == (key[1], "d3", "d1")
