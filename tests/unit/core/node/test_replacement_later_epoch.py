"""A re-placement round whose new domain's YES reaches its coordinator after the
coordinator granted (or follows) a later epoch held by another
(agent/core/node/replacement.py, `on_vote`; replacement_handover.py, "Void")."""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.messages import AnswerStatus
from fedorch.core.node.records import VoteMsg

from tests.unit.core.node.test_domain_loss import WF, committed, dies, step


def yes_held_back() -> tuple:
    """d0's workflow: s1 (idempotent, on d1), s2 (on d2). d1 dies; d0 places s1 again
    on d3, whose YES is held back on the network. Returns the federation and the round."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1", keep=lambda src, dst, msg: isinstance(msg, VoteMsg) and src == "d3")
    key = next(h.key for h in fed.nodes["d3"].participant.holds() if h.workflow_id == WF)
    assert fed.nodes["d3"].participant.status(key) == "prepared"
    assert [(dst, type(msg)) for _, dst, msg in fed.net] == [("d0", VoteMsg)]
    return fed, key


@pytest.mark.parametrize("table", ["granted", "epochs"])
def test_a_yes_after_a_later_epoch_was_granted_here_aborts_the_round(table: str) -> None:
    """d0 granted epoch 1 to d2 (or follows d2's epoch 1) while its round was under way;
    then d3's YES comes. Its COMMIT could never leave d0, and d2, knowing no placement of
    the round, may answer it void to d3, which then releases its YES; kept, the
    placement would ride on d0's grant of epoch 2, whose holder would wait for the step
    at d3 for ever (takeover soak seed 47000184). So the round is ABORTED: no placement
    kept (a grant carries none), the ABORT sent to d3, answered if d3 asks, and no
    round follows."""
    fed, key = yes_held_back()
    d0 = fed.nodes["d0"]
    for state in (fed.disks["d0"], d0.state):
        getattr(state, table)[WF] = (1, "d2")
    fed.deliver()
    assert all(e != key[1] for e, _, _ in fed.disks["d0"].placements.get(WF, {}).values())
    assert all(e != key[1] for _, e, _, _ in d0.placed_here.known(WF))  # what a grant carries
    assert key not in fed.disks["d0"].records and key not in d0.replacement.telling
    answer = d0.replacement.answer(key, "d3")
    assert answer.status is AnswerStatus.DECIDED and not answer.value.commit
    d3 = fed.nodes["d3"]
    assert not fed.disks["d3"].learned[key].commit  # the ABORT reached it
    assert key not in fed.disks["d3"].holds and d3.participant.status(key) != "prepared"
    assert WF not in d0.replacement.cores  # no round follows while the epoch is another's
    assert d0.stats["re-placement round started"] == 1
    assert d0.progress[WF].awaiting_placement() == ["s1"]
    assert d0.stats["re-placement round aborted: a later epoch granted here"] == 1


def test_a_yes_with_no_later_epoch_granted_commits_the_round() -> None:
    """The same YES, no later epoch granted here: the round commits, its placement is
    kept and told (the rule above cuts only a round it could never hand out)."""
    fed, key = yes_held_back()
    d0 = fed.nodes["d0"]
    fed.deliver()
    assert not d0.stats["re-placement round aborted: a later epoch granted here"]
    assert fed.disks["d0"].placements[WF]["s1"] == (key[1], "d3", "d1")
    assert fed.disks["d3"].learned[key].commit  # told, then made
