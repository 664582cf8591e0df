"""A Node that granted a later coordinator epoch refuses the original's round placing
a step again on it (agent/core/node/negotiation.py, `_on_prepare`; placed_here.py, "a
grant is a promise"): it votes NO and holds nothing. Before, it voted YES, and, itself
elected in a later epoch, handed the round's COMMIT out to itself while the holder of
the epoch between, which never knew the round, had run the step where it was (takeover
soak seed 140100809 with `--one-way`: a step that is not idempotent run twice). Nodes
driven by hand with coordinator takeover on (test_domain_loss.py's)."""

from __future__ import annotations

import dataclasses

from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.node import Message
from fedorch.core.node.records import PrepareMsg, VoteMsg

from tests.unit.core.node.test_domain_loss import WF, committed, d0_dies_for_good, step


def test_a_node_that_granted_a_later_epoch_votes_no_on_the_originals_round() -> None:
    """d0's workflow of s1 (d1) and s2 (d2), committed and running; d0 goes silent and
    DEAD, a successor wins epoch 1 with d2's grant. d0, back with an old view, places s1
    again on d2 (its own round, epoch 0's range): d2 votes NO and holds nothing."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    first = next(m for dst, m in fed.sent_by("d0", PrepareMsg) if dst == "d2")
    d0_dies_for_good(fed)
    epoch, holder = fed.disks["d2"].granted[WF]
    assert epoch >= 1 and holder != "d0"  # d2 promised a later epoch to another
    assert WF not in fed.disks["d2"].final
    held = [h.key for h in fed.nodes["d2"].participant.holds()]
    tx = TxInfo(WF, first.tx.round + 1, "d0", ("d2",), ("d0", "d2"), created_ms=2)
    info = dataclasses.replace(first.info, placement={**first.info.placement, "s1": "d2"},
                               lost="d1", stated=None)
    sent: list[tuple[str, object]] = []
    d2 = fed.nodes["d2"]
    send = d2.send
    d2.send = lambda dst, msg: (sent.append((dst, msg)), send(dst, msg))[1]
    fed.step("d2", Message("d0", PrepareMsg(tx, (("s1", "a"),), info)))
    votes = [m for dst, m in sent if dst == "d0" and isinstance(m, VoteMsg)]
    assert [(v.key, v.yes, v.reason) for v in votes] == [
        (tx.key, False, "a later coordinator epoch granted here")]
    assert [h.key for h in d2.participant.holds()] == held  # before: its YES held too
    assert tx.key not in fed.disks["d2"].holds
    assert d2.stats["re-placement PREPARE refused: a later epoch granted here"] == 1
