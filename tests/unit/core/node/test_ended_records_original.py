"""The original coordinator that claimed an epoch and yielded it to a better-ranked
rival tells a placement question its end in that epoch too, not in epoch 0 only
(core/node/ended_records.py, "An original that yielded"; restart_check.py,
`_tell_end`). Takeover soak seed 163101876 with a cut one way: d2, the original, back
from a crash, claimed epoch 2 past d0 (epoch 1's holder, gone) and yielded it to d1,
which ended the workflow FAILED on an end it learned (told on, no certificate); d3's
grant of d2's claim was written, its answer lost in a crash. d3 followed d2 in epoch
2, refused d1's end (epoch 2 held by d2 here, no certificate) and d2's end in epoch
0 (an older epoch), and kept its reservation to the end of the run.

Nodes driven by hand (test_domain_loss.py's federation), d0 coordinating, s1 on d2,
s2 on d1 after it, no `compensate` block (no saga can be owed). d0's tables are
those the yield leaves: its grant of epoch 1 names d2, followed in epoch 1, and d2's
end was taken from it with no certificate."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

from fedorch.core.node import Message
from fedorch.core.node.ended_records import EndedRecords
from fedorch.core.node.records import ClaimMsg, FinalMsg, PlacementQuery
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_domain_loss import WF, Federation, committed, step


def original_followed_a_rival() -> Federation:
    """d0 granted d2's claim of epoch 1 and took d2's FAILED end of it, uncertified:
    its grant and the epoch it follows name d2 (the tables of a claim yielded to d2)."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    fed.step("d0", Message("d2", ClaimMsg(WF, 1)))
    fed.net.clear()
    fed.step("d0", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 1)))
    fed.net.clear()
    d0 = fed.disks["d0"]
    assert d0.granted[WF] == d0.epochs[WF] == (1, "d2")
    assert d0.final[WF] is WorkflowState.FAILED
    assert fed.nodes["d0"].end_notices.end_proof(WF) is None
    return fed


def test_a_granter_of_the_originals_yielded_claim_is_told_the_end_in_that_epoch() -> None:
    """d1 granted d0's claim of epoch 1 (its answer lost) and restarts: it follows d0
    in epoch 1 and asks it. d0 answers with its end in epoch 0, as before, and in
    epoch 1; d1 refuses the first (an older epoch than the one it holds) and takes the
    second from the holder it follows: it ends and lets its reservation go. Before,
    d0 told it the end in epoch 0 only, and d1 held its reservation for ever."""
    fed = original_followed_a_rival()
    d1 = fed.disks["d1"]
    d1.granted[WF] = d1.epochs[WF] = (1, "d0")
    fed.restore("d1")
    fed.run_until(fed.now + 5.0)
    assert ("d0", PlacementQuery(WF)) in fed.sent_by("d1", PlacementQuery)
    told = [(m.state, m.epoch) for to, m in fed.sent_by("d0", FinalMsg) if to == "d1"]
    assert told == [(WorkflowState.FAILED, 0), (WorkflowState.FAILED, 1)]
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert not [h for h in fed.nodes["d1"].participant.holds() if h.workflow_id == WF]


def test_the_originals_record_tells_the_end_in_the_epoch_it_yielded_too() -> None:
    """Forgotten by retention, the original's record tells its end in epoch 0 (its
    `tell`, as before) and, asked so, in the epoch it yielded too (`told_too`); a
    record that tells in another epoch, or the original following no later holder,
    tells nothing more."""
    state = SimpleNamespace(ended_records={}, final={}, epochs={}, granted={},
                            ended_proofs={}, plans={})
    node = SimpleNamespace(state=state, name="d2", stats=Counter(),
                           end_notices=SimpleNamespace(end_proof=lambda wf: None),
                           running=SimpleNamespace(info=lambda wf: None))
    ends = EndedRecords(SimpleNamespace(n=node, policy=Retention(),
                                        knows=lambda wf: False))
    cases = {"d2.yielded": ((2, "d1"), (2, "d1")),  # the original yielded 2 to d1
             "d2.alone": ((0, ""), (0, "")),        # the original, no later epoch
             "d0.yielded": ((2, "d1"), (2, "d1"))}  # not the original: tells in 2
    for wf, (granted, followed) in cases.items():
        state.final[wf] = WorkflowState.FAILED
        state.granted[wf], state.epochs[wf], state.plans[wf] = granted, followed, ()
        ends.keep(wf, 1000)
    told = {wf: (rec[3], ends.told_too(wf, rec[3])) for wf, rec in state.ended_records.items()}
    assert told == {"d2.yielded": (0, 2), "d2.alone": (0, 0), "d0.yielded": (2, 0)}
