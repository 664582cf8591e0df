"""The wire names of workflow and step states (status.proto's enums), in one place."""

from __future__ import annotations

from fedorch.gen.fedorch.v1 import status_pb2


def workflow_state_name(value: int) -> str:
    return status_pb2.WorkflowState.Name(value).removeprefix("WORKFLOW_STATE_")


def step_state_name(value: int) -> str:
    return status_pb2.StepState.Name(value).removeprefix("STEP_STATE_")
