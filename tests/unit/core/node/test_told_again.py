"""End notices owed a domain back in the view (agent/core/node/told_again.py): told
again at once, their backoff restarted; Nodes driven by hand with coordinator
takeover on (test_domain_loss.py's federation): d0 coordinates, s1 on d1, s2 on d2."""

from __future__ import annotations

from fedorch.core.node import MemberState
from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import WF, committed, dies, step


def verdict_told_to_d1_while_down():
    """s2 SUCCEEDED; d1 lost (DEAD) with s1 running: d0's loss verdict is told to d1,
    down, and resent until its backoff is at its most (8 s)."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d2", "s2")
    dies(fed, "d1")
    fed.run_until(fed.now + 24.0)  # resent at 1, 2, 4, 8, 8 s apart: d1 hears none
    entry = fed.nodes["d0"].pending[("final", WF, "d1")]
    assert entry[3] == 8.0  # the backoff at its most
    return fed, entry


def test_an_end_notice_owed_a_domain_back_alive_is_told_again_at_once() -> None:
    """Takeover soak seed 108589: the lost domain back, its end came at the next 8 s
    resend, and each notice or acknowledgement lost on the way cost 8 s more."""
    fed, entry = verdict_told_to_d1_while_down()
    ready = fed.step("d0", MemberState("d3", "SUSPECT"), MemberState("d3", "ALIVE"))
    assert not [m for to, m in sent(ready) if isinstance(m, FinalMsg)]  # none owed d3
    fed.silent.discard("d1")
    fed.restore("d1")
    ready = fed.step("d0", MemberState("d1", "SUSPECT"))  # away still: nothing more
    assert not [m for to, m in sent(ready) if isinstance(m, FinalMsg)]
    assert fed.nodes["d0"].pending[("final", WF, "d1")] is entry
    due = entry[2]
    ready = fed.step("d0", MemberState("d1", "ALIVE"))
    told = [msg for to, msg in sent(ready) if to == "d1" and isinstance(msg, FinalMsg)]
    assert [(m.workflow_id, m.state) for m in told] == [(WF, WorkflowState.FAILED)]
    again = fed.nodes["d0"].pending[("final", WF, "d1")]
    assert again[3] == fed.nodes["d0"].t.reliable_resend_s  # backoff restarted
    assert again[2] == fed.now + again[3] and again[2] < due
    fed.deliver()
    assert ("final", WF, "d1") not in fed.nodes["d0"].pending  # acknowledged
    assert "d1" in fed.disks["d0"].final_acked[WF]
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED

