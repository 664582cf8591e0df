from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkflowState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WORKFLOW_STATE_UNSPECIFIED: _ClassVar[WorkflowState]
    WORKFLOW_STATE_PENDING: _ClassVar[WorkflowState]
    WORKFLOW_STATE_NEGOTIATING: _ClassVar[WorkflowState]
    WORKFLOW_STATE_RUNNING: _ClassVar[WorkflowState]
    WORKFLOW_STATE_SUCCEEDED: _ClassVar[WorkflowState]
    WORKFLOW_STATE_FAILED: _ClassVar[WorkflowState]
    WORKFLOW_STATE_ABORTED: _ClassVar[WorkflowState]
    WORKFLOW_STATE_CANCELLED: _ClassVar[WorkflowState]

class StepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STEP_STATE_UNSPECIFIED: _ClassVar[StepState]
    STEP_STATE_PENDING: _ClassVar[StepState]
    STEP_STATE_WAITING: _ClassVar[StepState]
    STEP_STATE_RUNNING: _ClassVar[StepState]
    STEP_STATE_SUCCEEDED: _ClassVar[StepState]
    STEP_STATE_FAILED: _ClassVar[StepState]
    STEP_STATE_SKIPPED: _ClassVar[StepState]
    STEP_STATE_CANCELLED: _ClassVar[StepState]
    STEP_STATE_COMPENSATED: _ClassVar[StepState]
    STEP_STATE_COMPENSATION_FAILED: _ClassVar[StepState]

class CompensationSummary(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPENSATION_SUMMARY_UNSPECIFIED: _ClassVar[CompensationSummary]
    COMPENSATION_SUMMARY_NONE: _ClassVar[CompensationSummary]
    COMPENSATION_SUMMARY_RUNNING: _ClassVar[CompensationSummary]
    COMPENSATION_SUMMARY_DONE: _ClassVar[CompensationSummary]
    COMPENSATION_SUMMARY_FAILED: _ClassVar[CompensationSummary]
WORKFLOW_STATE_UNSPECIFIED: WorkflowState
WORKFLOW_STATE_PENDING: WorkflowState
WORKFLOW_STATE_NEGOTIATING: WorkflowState
WORKFLOW_STATE_RUNNING: WorkflowState
WORKFLOW_STATE_SUCCEEDED: WorkflowState
WORKFLOW_STATE_FAILED: WorkflowState
WORKFLOW_STATE_ABORTED: WorkflowState
WORKFLOW_STATE_CANCELLED: WorkflowState
STEP_STATE_UNSPECIFIED: StepState
STEP_STATE_PENDING: StepState
STEP_STATE_WAITING: StepState
STEP_STATE_RUNNING: StepState
STEP_STATE_SUCCEEDED: StepState
STEP_STATE_FAILED: StepState
STEP_STATE_SKIPPED: StepState
STEP_STATE_CANCELLED: StepState
STEP_STATE_COMPENSATED: StepState
STEP_STATE_COMPENSATION_FAILED: StepState
COMPENSATION_SUMMARY_UNSPECIFIED: CompensationSummary
COMPENSATION_SUMMARY_NONE: CompensationSummary
COMPENSATION_SUMMARY_RUNNING: CompensationSummary
COMPENSATION_SUMMARY_DONE: CompensationSummary
COMPENSATION_SUMMARY_FAILED: CompensationSummary

class Refusal(_message.Message):
    __slots__ = ("round", "domain", "steps", "reason")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    round: int
    domain: str
    steps: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    def __init__(self, round: _Optional[int] = ..., domain: _Optional[str] = ..., steps: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ...) -> None: ...

class CompensationStatus(_message.Message):
    __slots__ = ("step", "domain", "state", "attempts", "error")
    STEP_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    step: str
    domain: str
    state: str
    attempts: int
    error: str
    def __init__(self, step: _Optional[str] = ..., domain: _Optional[str] = ..., state: _Optional[str] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class StepStatus(_message.Message):
    __slots__ = ("id", "domain", "state", "attempts", "outputs", "error", "capability", "outputs_json", "instance_of", "wave", "replaced_from")
    ID_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_OF_FIELD_NUMBER: _ClassVar[int]
    WAVE_FIELD_NUMBER: _ClassVar[int]
    REPLACED_FROM_FIELD_NUMBER: _ClassVar[int]
    id: str
    domain: str
    state: StepState
    attempts: int
    outputs: _struct_pb2.Struct
    error: str
    capability: str
    outputs_json: str
    instance_of: str
    wave: int
    replaced_from: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., domain: _Optional[str] = ..., state: _Optional[_Union[StepState, str]] = ..., attempts: _Optional[int] = ..., outputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., capability: _Optional[str] = ..., outputs_json: _Optional[str] = ..., instance_of: _Optional[str] = ..., wave: _Optional[int] = ..., replaced_from: _Optional[_Iterable[str]] = ...) -> None: ...

class WorkflowStatus(_message.Message):
    __slots__ = ("id", "name", "state", "coordinator", "reason", "steps", "refusals", "rounds", "created_at_ms", "updated_at_ms", "compensation", "compensations", "epoch")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    REFUSALS_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_FIELD_NUMBER: _ClassVar[int]
    COMPENSATIONS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    state: WorkflowState
    coordinator: str
    reason: str
    steps: _containers.RepeatedCompositeFieldContainer[StepStatus]
    refusals: _containers.RepeatedCompositeFieldContainer[Refusal]
    rounds: int
    created_at_ms: int
    updated_at_ms: int
    compensation: CompensationSummary
    compensations: _containers.RepeatedCompositeFieldContainer[CompensationStatus]
    epoch: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., state: _Optional[_Union[WorkflowState, str]] = ..., coordinator: _Optional[str] = ..., reason: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[StepStatus, _Mapping]]] = ..., refusals: _Optional[_Iterable[_Union[Refusal, _Mapping]]] = ..., rounds: _Optional[int] = ..., created_at_ms: _Optional[int] = ..., updated_at_ms: _Optional[int] = ..., compensation: _Optional[_Union[CompensationSummary, str]] = ..., compensations: _Optional[_Iterable[_Union[CompensationStatus, _Mapping]]] = ..., epoch: _Optional[int] = ...) -> None: ...
