"""What a Node does on winning an epoch (agent/core/node/takeover.py, the `Act` action),
Nodes driven by hand through the boundary (test_domain_loss.py's Federation): d0
coordinates s0 (on d0 itself) -> s1 (on d2, idempotent); only d2 offers s1's
capability, so a round placing s1 again finds no domain."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message, Submit
from fedorch.core.node.records import ClaimMsg, VoteMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import NAMES, WF, Federation
from tests.unit.core.node.test_takeover import won


class OnlyD2TakesA(Federation):
    def capacities_of(self, name: str) -> dict[str, int]:
        return {"d0": {"b": 4}, "d2": {"a": 4}}.get(name, {"c": 4})


def test_a_step_left_waiting_by_a_round_an_older_epoch_cut_short_gets_a_round() -> None:
    """d0 stalls after s0; d2 wins epoch 1 and dies for good with s1 running. d0, back,
    sends s1 back to be placed again and starts a round (epoch 0); before its answer,
    d2's claim of epoch 1 with its certificate reaches it: d0 follows d2, and the
    round's NO, coming in then, is no verdict of the coordinator it no longer is. It
    claims past d2, dead, and wins epoch 2: acting, it asks again for the step waiting
    to be placed (no domain takes it: it FAILS, naming d2, and the workflow ends),
    where nothing asked, s1 stayed PENDING and the workflow RUNNING (takeover soak
    seed 8301778)."""
    fed = OnlyD2TakesA()
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s0", capability="b"),
        spec_pb2.StepSpec(id="s1", capability="a", needs=["s0"], idempotent=True)])
    fed.step("d0", Submit(WF, spec, placement={"s0": "d0", "s1": "d2"}))
    fed.deliver()
    fed.end("d0", "s0")
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d2"}
    certificate = won(fed, "d2")
    fed.silent.add("d2")
    fed.running["d2"] = set()
    fed.silent.discard("d0")
    fed.net = []
    for n in ("d1", "d3"):
        fed.step(n, MemberState("d2", "DEAD"), MemberState("d0", "ALIVE"))
    fed.step("d0", *[MemberState(m, "DEAD" if m == "d2" else "ALIVE")
                     for m in NAMES if m != "d0"])
    d0 = fed.nodes["d0"]
    assert d0.stats["re-placement round started"] == 1
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, VoteMsg))
    votes, fed.net = fed.net, []
    fed.step("d0", Message("d2", ClaimMsg(WF, 1, None, won=certificate)))
    assert fed.disks["d0"].epochs[WF] == (1, "d2") and not d0.domain_loss.drives(WF)
    fed.net = votes + fed.net  # the NO first, then d0's claim of epoch 2
    fed.deliver()
    assert fed.evidence.acting[(WF, 2)] == "d0"
    assert d0.stats["re-placement: fresh majority asked"] == 1
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    _, state, _, error = fed.disks["d0"].results[WF]["s1"]
    assert state.name == "FAILED" and "d2" in error
