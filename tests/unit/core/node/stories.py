"""Set-ups several Node test files share (Nodes driven by hand: federation.py's
harness, and test_takeover.py's federations built on it), so each story is told once."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from fedorch.core.node import Submit
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

WF = "d0.w"

Fed = TypeVar("Fed")


def committed_in(fed: Fed, steps: list[spec_pb2.StepSpec],
                 placement: dict[str, str]) -> Fed:
    """`fed` with d0's workflow of `steps` committed everywhere (at its `now`); the
    first attempts started, none ended."""
    f: Any = fed
    f.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=steps),
                        placement=placement))
    f.deliver()
    assert f.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    return fed


def s1_on_d1_then_s2_on_d0(fed: Fed) -> Fed:
    """`fed` with d0's workflow committed: s1 (capability a, idempotent) on d1, and s2
    (capability b, after s1) on d0 itself; s1 running."""
    f: Any = fed
    f.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a", idempotent=True),
        spec_pb2.StepSpec(id="s2", capability="b", needs=["s1"])]),
        placement={"s1": "d1", "s2": "d0"}))
    f.deliver()
    return fed


def d0_ended_following_d1_down(fed: Any) -> None:
    """d0, d1 and d2 go down; d0's tables say it ended the workflow FAILED and follows
    d1's epoch 1 (d1 told it the end on, bare: no plan); d1's attempts are gone."""
    fed.silent |= {"d0", "d1", "d2"}
    d0 = fed.disks["d0"]
    d0.rows[WF] = dataclasses.replace(d0.rows[WF], state=WorkflowState.FAILED,
                                      finished=True)
    d0.final[WF] = WorkflowState.FAILED
    d0.epochs[WF] = (1, "d1")
    d0.granted[WF] = (1, "d1")
    fed.running["d1"] = set()
