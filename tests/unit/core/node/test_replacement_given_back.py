"""A step its driver sent back to be placed again, no placement decided, when that
driver follows another's later epoch: the step goes back to its lost domain, as a
restore rebuilds it (agent/core/node/replacement_epochs.py, rule 3, `given_back`;
takeover soak seed 184001792: the step's need, run at the driver, was told the new
holder alone, and the step waited for ever at its domain)."""

from __future__ import annotations

from fedorch.core.node import Message, StepEnded
from fedorch.core.node.records import ClaimMsg, PrepareMsg, ResultMsg, VoteMsg
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, Federation, committed, dies, step
from tests.unit.core.node.test_takeover import certificate


def s2_sent_back_then_d2_epoch_1_followed() -> Federation:
    """d0's workflow: s0 on d2, s1 on d0 itself (both running), s2 on d1 after s1. d1 is cut off
    from d0 (DEAD to d0, and back): d0 judges s2 not started there and sends it back, its
    round's YES held back on the network (lost). Then d0 is shown d2's win of epoch 1
    and follows it; d2 never judged d1 lost, and drives with s2 on d1."""
    fed = committed([step("s0"), step("s1"), step("s2", needs=("s1",))],
                    {"s0": "d2", "s1": "d0", "s2": "d1"})
    dies(fed, "d1", told=("d0",), keep=lambda src, dst, msg: isinstance(msg, VoteMsg))
    assert fed.lost == [("d0", (WF, "s2"), "d1", "REPLACE")]
    assert any(m.info.lost == "d1" for _, m in fed.sent_by("d0", PrepareMsg))
    fed.net = []  # the round's YES, lost
    fed.silent.discard("d1")
    d0 = fed.nodes["d0"]
    assert d0.progress[WF].awaiting_placement() == ["s2"]
    electorate = sorted(d0.takeover.cores[WF].electorate - {"d0"})
    won = certificate(fed, 1, "d2", electorate)
    fed.step("d0", Message("d2", ClaimMsg(WF, 1, won=won)))
    assert fed.disks["d0"].epochs[WF] == (1, "d2")
    return fed


def test_a_step_sent_back_goes_back_to_its_domain_once_a_later_epoch_is_followed() -> None:
    """s2 is on d1 again at its committed placement (epoch 0, WAITING), as a restore
    would rebuild it; s1's SUCCEEDED, run at d0 since, goes to d1 as well as to d2, the
    holder: d1 starts s2."""
    fed = s2_sent_back_then_d2_epoch_1_followed()
    d0 = fed.nodes["d0"]
    s2 = d0.progress[WF].steps["s2"]
    assert (s2.domain, s2.epoch, s2.state) == ("d1", 0, StepState.WAITING)
    assert d0.progress[WF].awaiting_placement() == []
    fed.net = [(src, dst, msg) for src, dst, msg in fed.net if not isinstance(msg, PrepareMsg)]
    fed.step("d0", StepEnded(*next(iter(fed.running["d0"])), ok=True))
    told = {dst for _, dst, msg in fed.net if isinstance(msg, ResultMsg) and msg.step_id == "s1"}
    assert {"d1", "d2"} <= told
    fed.deliver()
    assert [r[1] for r in fed.running["d1"]] == ["s2"]
