"""A step sent back in one coordinator epoch whose round's YES comes in another
(agent/core/node/replacement_epochs.py; takeover soak seed 154001212, `--one-way`: a
paused original placed again a step its lost domain had run while holding epoch 1)."""

from __future__ import annotations

from fedorch.core.node.records import PrepareMsg, VoteMsg
from fedorch.core.node.replacement_epochs import STALE
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, Federation, committed, dies, step
from tests.unit.core.node.test_takeover import certificate

ABORTED = f"re-placement round aborted: {STALE}"


def s2_sent_back_yes_held() -> tuple[Federation, tuple]:
    """d0's workflow: s1 on d2 (running), s2 on d1 after it, not idempotent. d1 dies:
    d0 has no result of s1, judges s2 not started there and places it again in a round
    of epoch 0, whose candidate's YES is held back on the network. Returns the
    federation and the round."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    dies(fed, "d1", keep=lambda src, dst, msg: isinstance(msg, VoteMsg) and dst == "d0")
    assert fed.lost == [("d0", (WF, "s2"), "d1", "REPLACE")]
    prepare = next(m for _, m in fed.sent_by("d0", PrepareMsg) if m.info.lost == "d1")
    key = prepare.tx.key
    assert fed.nodes[prepare.tx.participants[0]].participant.status(key) == "prepared"
    assert [(dst, type(msg)) for _, dst, msg in fed.net] == [("d0", VoteMsg)]
    return fed, key


def set_tables(fed: Federation, table: str, value: tuple) -> None:
    """d0's `table` for the workflow, on its disk and in its Node, is `value`."""
    for state in (fed.disks["d0"], fed.nodes["d0"].state):
        getattr(state, table)[WF] = value


def test_a_yes_while_claiming_past_the_lost_domains_epoch_aborts_the_round() -> None:
    """Meanwhile d0 learned that d1 held epoch 1 (it follows it) and claims epoch 2
    past it (its own grant of 2 the latest here): it drives nothing, and d1, driving
    epoch 1, may have run s2 without asking d0. The YES ABORTS the round (it committed:
    `later_holder` saw d0's own claim as the latest epoch), nothing is placed, the
    ABORT goes to the candidate, and s2 waits."""
    fed, key = s2_sent_back_yes_held()
    d0 = fed.nodes["d0"]
    set_tables(fed, "epochs", (1, "d1"))
    set_tables(fed, "granted", (2, "d0"))
    fed.deliver()
    assert d0.stats[ABORTED] == 1
    assert "s2" not in fed.disks["d0"].placements.get(WF, {})
    assert key not in fed.disks["d0"].records and key not in d0.replacement.telling
    assert "s2" not in fed.disks["d0"].results.get(WF, {})
    candidates = [n for n in ("d2", "d3") if key in fed.disks[n].learned]
    assert candidates and all(not fed.disks[n].learned[key].commit for n in candidates)
    assert d0.progress[WF].awaiting_placement() == ["s2"]


def test_a_yes_once_acting_in_a_later_epoch_aborts_and_the_step_is_judged_again() -> None:
    """Meanwhile d0 followed d1's epoch 1 and won epoch 2 itself: the YES of its epoch-0
    round ABORTS it, and s2, sent back in epoch 0, is judged again as a successor judges
    a loss. s1, on d2, ran: its result may have reached d1, which drove epoch 1 and may
    have started s2 on it, unasked. s2 is not idempotent: it FAILS, and is never placed
    again."""
    fed, key = s2_sent_back_yes_held()
    d0 = fed.nodes["d0"]
    set_tables(fed, "granted", (2, "d0"))
    set_tables(fed, "epochs", (2, "d0"))
    set_tables(fed, "certificates", (2, certificate(fed, 2, "d0", ["d0", "d2"])))
    assert d0.domain_loss.drives(WF) and d0.domain_loss.epoch(WF) == 2
    fed.deliver()
    assert d0.stats[ABORTED] == 1
    assert d0.stats["re-placement given up: judged again in a later epoch"] == 1
    assert "s2" not in fed.disks["d0"].placements.get(WF, {})
    _, state, _, error = fed.disks["d0"].results[WF]["s2"]
    assert state is StepState.FAILED
    assert error.startswith("domain d1 was lost (DEAD)") and "judged again in epoch 2" in error
    assert WF not in d0.replacement.cores and WF not in d0.replacement.mandates.asking


def test_a_yes_in_the_epoch_the_round_began_in_commits_it() -> None:
    """The same YES, d0 still driving epoch 0: the round commits as before."""
    fed, key = s2_sent_back_yes_held()
    d0 = fed.nodes["d0"]
    fed.deliver()
    assert not d0.stats[ABORTED]
    assert fed.disks["d0"].placements[WF]["s2"][:1] == (key[1],)
