"""A read view of the Node's workflows (node_engine/status.py's interface, as the
console reads it) holding the statuses a test gives it: pages of workflows in any state
without running a Node to get there."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace

from fedorch.core.workflow import values
from fedorch.gen.fedorch.v1 import spec_pb2, status_pb2


class GivenView:
    def __init__(self) -> None:
        self._statuses: dict[str, status_pb2.WorkflowStatus] = {}
        self._changed = asyncio.Event()
        # What `views._node_spec` reads: the rows of the workflows coordinated here.
        self.node = SimpleNamespace(state=SimpleNamespace(rows={}, committed={}, info={}))

    def show(self, workflow_id: str, spec: spec_pb2.WorkflowSpec, state: str, *,
             placement: Mapping[str, str], steps: Mapping[str, tuple] = (),
             coordinator: str = "alpha", compensation: str = "") -> None:
        """The workflow's status from now on: `steps`, step id -> (state, attempts,
        outputs); a step not named is PENDING on the domain `placement` names."""
        s = status_pb2.WorkflowStatus(
            id=workflow_id, name=spec.name, coordinator=coordinator, rounds=1,
            state=status_pb2.WorkflowState.Value(f"WORKFLOW_STATE_{state}"))
        if compensation:
            s.compensation = status_pb2.CompensationSummary.Value(
                f"COMPENSATION_SUMMARY_{compensation}")
        for st in spec.steps:
            step_state, attempts, outputs = dict(steps).get(st.id, ("PENDING", 0, {}))
            step = s.steps.add(id=st.id, capability=st.capability,
                               domain=placement.get(st.id, ""), attempts=attempts,
                               state=status_pb2.StepState.Value(f"STEP_STATE_{step_state}"),
                               instance_of=st.instance_of, wave=st.wave)
            values.write_object(step, "outputs", dict(outputs))
        self._statuses[workflow_id] = s
        self.node.state.rows[workflow_id] = SimpleNamespace(info=SimpleNamespace(spec=spec))
        self._changed.set()
        self._changed = asyncio.Event()

    async def read(self, workflow_id: str) -> status_pb2.WorkflowStatus | None:
        return self._statuses.get(workflow_id)

    async def read_all(self) -> list[status_pb2.WorkflowStatus]:
        return list(self._statuses.values())

    async def wait(self, workflow_id: str, *, steps: bool, timeout: float) -> None:
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass
