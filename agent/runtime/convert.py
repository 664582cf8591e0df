"""Rows and cores to wire messages (status), in one place; and the one boundary between
a workflow row's state (its name, as stored) and the lifecycle core's WorkflowState."""

from __future__ import annotations

from fedorch.core.workflow import lifecycle, values
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2
from fedorch.runtime.store.store import StepRow, WorkflowRow


def workflow_state(name: str) -> int:
    return status_pb2.WorkflowState.Value(f"WORKFLOW_STATE_{name}")


def state_of(row: WorkflowRow) -> WorkflowState:
    """A row's state as the lifecycle's value (rows store its name)."""
    return WorkflowState[row.state]


def is_over(row: WorkflowRow) -> bool:
    return state_of(row) in TERMINAL


def advance(row: WorkflowRow, event: lifecycle.Event) -> bool:
    """Apply a lifecycle input to a row: its new state, and the input's reason, written
    into it; True if the state changed. A ProtocolError leaves the row as it was.
    Every change of a workflow row's state goes through here."""
    before = state_of(row)
    after = lifecycle.step(before, event)
    if after is before:
        return False
    row.state = after.name
    if event.reason is not None:
        row.reason = event.reason
    return True


def workflow_state_name(value: int) -> str:
    return status_pb2.WorkflowState.Name(value).removeprefix("WORKFLOW_STATE_")


def step_state(name: str) -> int:
    return status_pb2.StepState.Value(f"STEP_STATE_{name}")


def step_state_name(value: int) -> str:
    return status_pb2.StepState.Name(value).removeprefix("STEP_STATE_")


def status_message(row: WorkflowRow, steps: dict[str, StepRow]) -> status_pb2.WorkflowStatus:
    spec = spec_pb2.WorkflowSpec.FromString(row.spec)
    out = status_pb2.WorkflowStatus(
        id=row.id, name=row.name, state=state_of(row), coordinator=row.coordinator,
        epoch=row.epoch,
        reason=row.reason, rounds=row.round, created_at_ms=row.created_ms,
        updated_at_ms=row.updated_ms,
        refusals=[
            status_pb2.Refusal(round=r["round"], domain=r["domain"], steps=r["steps"],
                               reason=r["reason"])
            for r in row.refusals
        ],
    )
    for s in spec.steps:
        known = steps.get(s.id)
        step = out.steps.add(
            id=s.id, capability=s.capability,
            domain=known.domain if known else row.placement.get(s.id, ""),
            state=step_state(known.state if known else "PENDING"),
            attempts=known.attempts if known else 0,
            error=known.error if known else "",
            instance_of=s.instance_of, wave=s.wave,  # fan-out instances only
            replaced_from=known.replaced_from if known else [],
        )
        # Exact JSON (integers stay integers); rows keep outputs as JSON text already.
        values.write_object(step, "outputs", known.outputs if known else {})
    return out


def end_notice_of(row: WorkflowRow) -> peer_pb2.CancelNotice:
    """The end notice of an ended workflow, from its row."""
    return peer_pb2.CancelNotice(workflow_id=row.id, reason=row.reason,
                                 final_state=state_of(row), epoch=row.epoch)
