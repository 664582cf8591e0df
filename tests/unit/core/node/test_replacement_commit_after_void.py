"""The original coordinator, acting in a later epoch, sends its own COMMIT of a
re-placement round whose new domain released its YES on another epoch's void
(agent/core/node/replacement_handover.py, "A COMMIT after a void"): the new domain
answers it void, and the original places the step again instead of waiting for it
there."""

from __future__ import annotations

from fedorch.core.negotiation.messages import Decision, DecisionQuery
from fedorch.core.node import MemberState, Message, Tick
from fedorch.core.node.records import AckMsg, PlacedMsg
from fedorch.core.workflow.epoch_certificate import epoch_of_round
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, Federation, committed, dies, step


def _commit_to_d3(src: str, dst: str, msg: object) -> bool:
    return dst == "d3" and isinstance(msg, Decision)


def commit_held_while_d3_is_voided() -> tuple[Federation, tuple, PlacedMsg]:
    """d0's workflow: s1 (on d1, needing s2) and s2 (on d2); electorate d0, d1, d2. d1
    dies; d0 places s1 again on d3, decides the round's COMMIT and tells it: d3, holding
    its YES, acknowledges; the tell to d2 is lost and d0 is cut off. d1 comes back and
    wins epoch 1 with d2's grant (neither knows the placement) and answers d3's round
    void (held back on the way). d1 is gone again; d0, back without a restart, claims
    epoch 2 past it and wins it with d2's grant, tells the placement again in epoch 2,
    and d3, still holding its YES, acknowledges it plainly: d0 sends its own COMMIT
    (held back). Returns the federation, the round and epoch 1's void."""
    fed = committed([step("s1", needs=("s2",)), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1", keep=lambda src, dst, msg: src == "d0" and isinstance(msg, PlacedMsg))
    key = next(h.key for h in fed.nodes["d3"].participant.holds() if h.workflow_id == WF)
    tell = next(m for _, dst, m in fed.net if dst == "d3")
    fed.net = []  # the tell to d2 lost
    fed.step("d3", Message("d0", tell))
    fed.deliver()
    assert fed.nodes["d0"].replacement.acked == {key: {"d3"}}
    fed.silent |= {"d0", "d3"}  # cut off (d0 keeps what it holds in memory)
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    fed.step("d2", MemberState("d1", "ALIVE"), MemberState("d0", "DEAD"))
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    fed.net = []
    fed.step("d1", Message("d3", DecisionQuery(key, "d3")))
    void = next(m for _, dst, m in fed.net if dst == "d3" and isinstance(m, PlacedMsg))
    assert void.void and void.held_epoch == 1
    fed.net = []  # held back: given to d3 below
    fed.silent.add("d1")  # gone again
    fed.running["d1"] = set()
    fed.silent -= {"d0", "d3"}
    fed.step("d0", MemberState("d1", "DEAD"))
    fed.step("d3", MemberState("d1", "DEAD"), MemberState("d0", "ALIVE"))
    fed.step("d2", MemberState("d0", "ALIVE"))
    for _ in range(60):  # d0's tell to d2, resent, is answered with epoch 1; d0 claims 2
        fed.now += 1.0
        for n in ("d0", "d2", "d3"):
            fed.step(n, Tick())
        fed.deliver(keep=_commit_to_d3)
        if any(_commit_to_d3(*m) for m in fed.net):
            break
    assert fed.evidence.acting == {(WF, 1): "d1", (WF, 2): "d0"}
    assert [type(m) for _, dst, m in fed.net] == [Decision]
    assert fed.nodes["d3"].participant.status(key) == "prepared"
    return fed, key, void


def test_the_new_domain_answers_a_commit_of_a_round_it_released_void() -> None:
    """d3 takes epoch 1's void (it grants and follows no later epoch) and releases its
    YES; then d0's COMMIT comes. d3 answers it void, and d0, acting in epoch 2, drops
    the placement and places s1 again in a round of its own epoch, where it waited for
    s1 at d3 for ever (d3 left the COMMIT unanswered)."""
    fed, key, void = commit_held_while_d3_is_voided()
    commit = fed.net.pop()
    fed.step("d3", Message("d1", void))
    d3 = fed.nodes["d3"]
    assert d3.stats["re-placement YES released: void in a later epoch"] == 1
    assert d3.participant.hold(key) is None
    fed.step("d3", Message(commit[0], commit[2]))
    acks = [m for _, dst, m in fed.net if dst == "d0" and isinstance(m, AckMsg)]
    assert [(a.msg_id, a.void) for a in acks] == [(("placed", WF, "s1", key[1], "d3"), True)]
    assert key not in fed.disks["d3"].learned  # nothing runs under the round there
    fed.deliver()
    d0 = fed.nodes["d0"]
    assert d0.stats["re-placement void at its new domain: placed again"] == 1
    assert key not in fed.disks["d0"].records  # its one participant holds nothing of it
    fed.run_until(fed.now + 30.0)
    epoch, domain, lost = fed.disks["d0"].placements[WF]["s1"]
    assert epoch_of_round(epoch) == 2 and lost == "d1"  # a round of d0's epoch
    fed.end("d2", "s2")
    fed.run_until(fed.now + 30.0)
    runs = [(n, r) for n, r in fed.started if r[1] == "s1"]
    assert runs == [(domain, (WF, "s1", 1))]  # at its new placement only
    fed.end(domain, "s1")
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].results[WF]["s1"][1] is StepState.SUCCEEDED
    assert key not in fed.disks["d3"].learned


def test_a_commit_reaching_the_new_domain_holding_its_yes_is_learned() -> None:
    """The same COMMIT before the void: d3 still holds its YES, learns the COMMIT and
    runs s1 there (the answer above is only for a round held no more); epoch 1's void,
    coming after, changes nothing."""
    fed, key, void = commit_held_while_d3_is_voided()
    fed.deliver()
    assert fed.disks["d3"].learned[key].commit
    fed.step("d3", Message("d1", void))
    assert not fed.nodes["d3"].stats["re-placement YES released: void in a later epoch"]
    assert not any(isinstance(m, AckMsg) and m.void for _, _, m in fed.net)
    fed.end("d2", "s2")
    fed.run_until(fed.now + 30.0)
    assert [(n, r) for n, r in fed.started if r[1] == "s1"] == [("d3", (WF, "s1", 1))]
