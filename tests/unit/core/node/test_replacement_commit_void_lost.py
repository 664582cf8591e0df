"""The original coordinator, acting in a later epoch, sends its own COMMIT of a
re-placement round whose new domain released its YES on another epoch's void; the new
domain's void answer is lost (agent/core/node/replacement_telling.py, "A COMMIT sent in
a later epoch"): the COMMIT is sent again until answered, every copy is answered void,
and the original places the step again; before, it waited for the step there until a
restart."""

from __future__ import annotations

from fedorch.core.negotiation.messages import Decision
from fedorch.core.node import Message
from fedorch.core.node.records import AckMsg
from fedorch.core.workflow.epoch_certificate import epoch_of_round
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF
from tests.unit.core.node.test_replacement_commit_after_void import (
    commit_held_while_d3_is_voided,
)


def _void_answer(src: str, dst: str, msg: object) -> bool:
    return src == "d3" and dst == "d0" and isinstance(msg, AckMsg) and msg.void


def test_a_lost_void_answer_is_given_again_to_the_commit_sent_again() -> None:
    """d3 releases its YES on epoch 1's void, answers d0's COMMIT void, and that answer
    is lost. d0 sends its COMMIT again (the round's record kept, the step still waiting
    at d3), d3 answers the copy void too, and d0 places s1 again in a round of its own
    epoch; the workflow ends with s1 run once, at its new placement."""
    fed, key, void = commit_held_while_d3_is_voided()
    commit = fed.net.pop()
    fed.step("d3", Message("d1", void))
    fed.step("d3", Message(commit[0], commit[2]))
    lost = [m for m in fed.net if _void_answer(*m)]
    assert len(lost) == 1
    fed.net = [m for m in fed.net if not _void_answer(*m)]  # the first answer lost
    fed.deliver()
    d0, d3 = fed.nodes["d0"], fed.nodes["d3"]
    assert not d0.stats["re-placement void at its new domain: placed again"]
    assert key in fed.disks["d0"].records  # still waiting for s1 at d3
    fed.run_until(fed.now + 30.0)
    assert key not in fed.disks["d0"].records
    assert d0.stats["re-placement void at its new domain: placed again"] == 1
    assert d0.stats["re-placement COMMIT sent again: no answer yet"] >= 1
    assert d3.stats["re-placement COMMIT after a void answered void"] >= 2
    assert key not in fed.disks["d3"].learned  # nothing runs under the round there
    epoch, domain, lost_on = fed.disks["d0"].placements[WF]["s1"]
    assert epoch_of_round(epoch) == 2 and lost_on == "d1"
    fed.end("d2", "s2")
    fed.run_until(fed.now + 30.0)
    assert [(n, r) for n, r in fed.started if r[1] == "s1"] == [(domain, (WF, "s1", 1))]
    fed.end(domain, "s1")
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].results[WF]["s1"][1] is StepState.SUCCEEDED


def test_a_commit_learned_is_sent_no_more_once_acknowledged() -> None:
    """The same COMMIT reaching d3 while it still holds its YES: d3 learns it and
    acknowledges it; d0 collects the record and sends the COMMIT no more, the lost
    acknowledgement answered by a copy (d3 acknowledges the COMMIT learned again)."""
    fed, key, _ = commit_held_while_d3_is_voided()
    commit = fed.net.pop()
    fed.step("d3", Message(commit[0], commit[2]))
    assert fed.disks["d3"].learned[key].commit
    fed.net = []  # d3's DecisionAck lost
    assert key in fed.disks["d0"].records
    fed.run_until(fed.now + 10.0)
    assert key not in fed.disks["d0"].records
    copies = [m for to, m in fed.sent_by("d0", Decision) if to == "d3" and m.key == key]
    fed.run_until(fed.now + 30.0)
    assert [m for to, m in fed.sent_by("d0", Decision)
            if to == "d3" and m.key == key] == copies
    fed.end("d2", "s2")
    fed.run_until(fed.now + 30.0)
    assert [(n, r) for n, r in fed.started if r[1] == "s1"] == [("d3", (WF, "s1", 1))]
