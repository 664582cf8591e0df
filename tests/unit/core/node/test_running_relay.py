"""A gone producer's result relayed by the coordinator followed (core/node/running.py,
`relay_gone_results`), taken over a void loss verdict: Nodes driven by hand with
coordinator takeover on (test_domain_loss.py's federation)."""

from __future__ import annotations

from fedorch.core.node import MemberState, StepEnded, Submit
from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, OnlyD1TakesA, dies, result


def test_a_relayed_result_is_taken_over_the_void_verdict_of_a_coordinator_that_follows():
    """s1 (on d1, which alone offers its capability) SUCCEEDS; its result reaches d2
    (s3 needs it) and is lost on its way to d0 (s2 needs it); d1 dies for good. d0
    judges s1 lost, no domain takes it again, and its end's notices are lost. d2, its
    view saying d0 DEAD (and ALIVE again before it acts), wins epoch 1 with d0's grant: d0 follows d2, its verdict void,
    and d2 relays s1's result to d0. Taken, s2 runs; refused as a result after a
    terminal one (the verdict on record), s2 never started and the workflow stayed
    RUNNING for ever (takeover soak seed 117826)."""
    fed = OnlyD1TakesA()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a", idempotent=True),
        spec_pb2.StepSpec(id="s2", capability="b", needs=["s1"]),
        spec_pb2.StepSpec(id="s3", capability="c", needs=["s1"])]),
        placement={"s1": "d1", "s2": "d0", "s3": "d2"}))
    fed.deliver()
    fed.step("d1", StepEnded(*sorted(fed.running["d1"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: src == "d1" and dst == "d0")
    fed.net = []  # s1's result to d0 lost
    assert result(fed, "d2", "s1")[1] is StepState.SUCCEEDED
    dies(fed, "d1", keep=lambda src, dst, msg: isinstance(msg, FinalMsg))
    fed.net = []  # the verdict's end notices lost
    assert fed.nodes["d0"].domain_loss.holds(WF)
    assert "domain d1 was lost (DEAD)" in result(fed, "d0", "s1")[3]
    fed.step("d2", MemberState("d0", "DEAD"))  # claims at once
    fed.step("d2", MemberState("d0", "ALIVE"))  # before it acts: d0 is no gone consumer
    fed.deliver()
    assert fed.disks["d0"].epochs[WF] == (1, "d2")
    assert fed.nodes["d2"].stats["result of a gone domain relayed by the coordinator"] >= 1
    assert result(fed, "d0", "s1")[1] is StepState.SUCCEEDED
    assert any(r[1] == "s2" for r in fed.running["d0"])
