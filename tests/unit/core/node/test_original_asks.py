"""The original coordinator restored after its successor ended the workflow and died
for good, with nothing of its own to tell or relay: it asks the workflow's domains
where the workflow stands (core/node/original_asks.py), and a domain that ended it in
the later epoch answers with that end and its proof (restart_check.py `on_query`,
EndNotices.tell_overtaken), which the original follows. Nodes driven by hand with
coordinator takeover on (test_domain_loss.py's)."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import ClaimAnswerMsg, PlacementQuery
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import (
    WF,
    Federation,
    committed,
    d0_back_seeing_d1_dead,
    step,
)
from tests.unit.core.node.test_running_relay_overtaken import (
    ended_by_a_successor_dead_since as ended_by_successor,
)


def ended_by_a_successor_dead_since() -> Federation:
    """As test_running_relay_overtaken.py's, but s2 needs nothing: nobody owes d0 a
    result any more, and d0 has none to relay: its s2 stays RUNNING."""
    return ended_by_successor(needs=())


def test_the_original_back_with_nothing_to_relay_asks_and_follows_the_later_end() -> None:
    """d0 comes back unaware of epoch 1: s2 still runs in its view, no step of it needs
    s1, so it relays nothing; its asks reach d2, which answers with the later end and
    d1's certificate, and d0 follows it and ends the workflow SUCCEEDED (takeover soak
    seed 87000414: s1's result written before the crash, d0 sent nothing and stayed
    RUNNING for ever)."""
    fed = ended_by_a_successor_dead_since()
    fed.silent.discard("d0")
    fed.net.clear()
    d0 = d0_back_seeing_d1_dead(fed)
    fed.run_until(fed.now + 30.0)  # every deadline of the next half minute: no other way
    assert fed.disks["d0"].final.get(WF) is WorkflowState.SUCCEEDED
    assert d0.stats["result of a gone domain relayed by the coordinator"] == 0
    assert d0.stats["original back asked its domains where the workflow stands"] >= 1
    assert fed.nodes["d2"].stats["original coordinator told the later end"] >= 1
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].epochs[WF] == (1, "d1")


def test_an_original_back_with_nothing_taken_over_asks_but_is_told_nothing() -> None:
    """d0 restarts while s2 runs on d2, nothing taken over: it asks once
    `takeover_after_s` has passed (a few times), d2 (following d0, running) answers nothing, and the workflow goes on as
    before: s2's result reaches d0, which ends it."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    fed.net.clear()
    fed.restore("d0")
    fed.deliver()
    asked = "original back asked its domains where the workflow stands"
    assert not fed.nodes["d0"].stats[asked]  # not before `takeover_after_s`
    fed.run_until(fed.now + 10.0)
    assert fed.nodes["d0"].stats[asked] >= 1
    assert not fed.nodes["d2"].stats["original coordinator told the later end"]
    fed.end("d2", "s2")
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED


def test_the_answer_to_the_originals_ask_is_the_later_end_never_placements() -> None:
    """d2's Node, asked by d0 (the original) about a workflow it ended in epoch 1,
    answers with the later end and d1's certificate; asked by another domain, as
    before (nothing: d2 drives nothing)."""
    fed = ended_by_a_successor_dead_since()
    fed.net.clear()
    fed.step("d2", Message("d0", PlacementQuery(WF)))
    (src, dst, answer), = fed.net
    assert (src, dst) == ("d2", "d0")
    assert isinstance(answer, ClaimAnswerMsg)
    assert (answer.held_epoch, answer.holder, answer.final) == (1, "d1",
                                                                WorkflowState.SUCCEEDED)
    assert answer.won
