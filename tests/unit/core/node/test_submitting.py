"""The Node's submission path (core/node/submitting.py): a submission whose placer found
no domain for a step is taken and ends ABORTED at once with the reason, as the shells
end it: a row and its end written, no round, no PREPARE, nothing reserved anywhere;
it stays ended across a restore, a cancel and a retry, and retention forgets it."""

from __future__ import annotations

import random

from fedorch.core.node import Cancel, Node, Submit
from fedorch.core.node.records import Timing
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness
from tests.unit.core.node.federation import sent

NAMES = ["d0", "d1", "d2"]
WF = "d0.w1"
NOW = 100.0
WHY = "no eligible domain for 'b' (d0, d1, d2: no capability b)"
RETENTION = Retention(keep_ended_s=60.0, max_ended_workflows=1000, late_message_s=10.0)


class Federation(Harness):
    def __init__(self) -> None:
        super().__init__(NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 2}, timing=Timing(retention=RETENTION), peers=NAMES,
                    rng=random.Random(NAMES.index(name)), disk=self.disks[name],
                    now=self.now)


def spec() -> spec_pb2.WorkflowSpec:
    return spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s", capability="a"),
        spec_pb2.StepSpec(id="t", capability="b", needs=["s"])])


def submit_unplaceable(f: Federation, request_id: str = "") -> None:
    """d0 takes a workflow whose step t its placer found no domain for (s it placed)."""
    f.step("d0", Submit(WF, spec(), placement={"s": "d1"}, unplaceable={"t": WHY},
                        request_id=request_id))


def test_a_submission_no_domain_can_take_ends_aborted_with_the_reason_and_no_round():
    f = Federation()
    submit_unplaceable(f)
    [ready] = f.readies["d0"][-1:]
    row = f.disks["d0"].rows[WF]
    assert row.state is WorkflowState.ABORTED and row.finished
    assert row.reason == f"no placement: t: {WHY}"
    assert row.round == 0 and not row.acceptors and not row.committed
    # Its row, then its end: watchers and the submitter hear both, in that order.
    assert [w.point for w in ready.writes] == ["workflow row", "Finished"]
    assert list(ready.status_changes) == [(WF, WorkflowState.NEGOTIATING),
                                          (WF, WorkflowState.ABORTED)]
    # No round: no PREPARE, no message at all; nothing reserved at d1 (placed s).
    assert sent(ready) == [] and not f.net
    assert not f.disks["d0"].cells and not f.disks["d0"].records
    assert not any(f.disks[n].holds for n in NAMES)
    assert f.nodes["d0"].stats["submission no domain can take: aborted"] == 1


def test_it_stays_aborted_across_a_restore_a_cancel_and_a_retry():
    f = Federation()
    submit_unplaceable(f, request_id="r-1")
    row = f.disks["d0"].rows[WF]
    restored = f.restore("d0")
    assert f.disks["d0"].rows[WF] == row  # nothing to finish: no round was ever begun
    assert sent(f.readies["d0"][-1]) == [] and restored.get_timer() is not None  # retention
    f.step("d0", Cancel(WF, "too late"))
    assert f.disks["d0"].rows[WF].state is WorkflowState.ABORTED
    assert WF not in f.disks["d0"].cancels
    f.step("d0", Submit("d0.w2", spec(), placement={"s": "d1", "t": "d2"},
                        request_id="r-1"))
    assert "d0.w2" not in f.disks["d0"].rows  # the retry's answer is the ended one
    assert f.disks["d0"].requests["r-1"][0] == WF


def test_retention_forgets_it_like_any_ended_workflow():
    f = Federation()
    submit_unplaceable(f)
    f.run_until(NOW + RETENTION.keep_ended_s + 2 * RETENTION.tick_s)
    assert WF not in f.disks["d0"].rows and WF not in f.nodes["d0"].coordinators


def test_a_submission_with_every_step_placed_negotiates_its_first_round():
    f = Federation()
    f.step("d0", Submit(WF, spec(), placement={"s": "d1", "t": "d1"}))
    row = f.disks["d0"].rows[WF]
    assert row.state is WorkflowState.NEGOTIATING and row.round == 1
    assert row.info.placement == {"s": "d1", "t": "d1"}
