from google.protobuf import struct_pb2 as _struct_pb2
from fedorch.gen.fedorch.v1 import config_pb2 as _config_pb2
from fedorch.gen.fedorch.v1 import keys_pb2 as _keys_pb2
from fedorch.gen.fedorch.v1 import spec_pb2 as _spec_pb2
from fedorch.gen.fedorch.v1 import status_pb2 as _status_pb2
from fedorch.gen.fedorch.v1 import swim_pb2 as _swim_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_COMMIT: _ClassVar[Outcome]
    OUTCOME_ABORT: _ClassVar[Outcome]
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_COMMIT: Outcome
OUTCOME_ABORT: Outcome

class Envelope(_message.Message):
    __slots__ = ("body", "signature", "key_records")
    BODY_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_RECORDS_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    signature: bytes
    key_records: _containers.RepeatedCompositeFieldContainer[_keys_pb2.KeyRecord]
    def __init__(self, body: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., key_records: _Optional[_Iterable[_Union[_keys_pb2.KeyRecord, _Mapping]]] = ...) -> None: ...

class Body(_message.Message):
    __slots__ = ("sender", "recipient", "nonce", "sent_at_ms", "vote", "decision", "step_result", "swim", "takeover_answer", "node_turn")
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_MS_FIELD_NUMBER: _ClassVar[int]
    VOTE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    STEP_RESULT_FIELD_NUMBER: _ClassVar[int]
    SWIM_FIELD_NUMBER: _ClassVar[int]
    TAKEOVER_ANSWER_FIELD_NUMBER: _ClassVar[int]
    NODE_TURN_FIELD_NUMBER: _ClassVar[int]
    sender: str
    recipient: str
    nonce: bytes
    sent_at_ms: int
    vote: Vote
    decision: Decision
    step_result: StepResult
    swim: _swim_pb2.SwimBatch
    takeover_answer: TakeoverAnswer
    node_turn: NodeTurn
    def __init__(self, sender: _Optional[str] = ..., recipient: _Optional[str] = ..., nonce: _Optional[bytes] = ..., sent_at_ms: _Optional[int] = ..., vote: _Optional[_Union[Vote, _Mapping]] = ..., decision: _Optional[_Union[Decision, _Mapping]] = ..., step_result: _Optional[_Union[StepResult, _Mapping]] = ..., swim: _Optional[_Union[_swim_pb2.SwimBatch, _Mapping]] = ..., takeover_answer: _Optional[_Union[TakeoverAnswer, _Mapping]] = ..., node_turn: _Optional[_Union[NodeTurn, _Mapping]] = ...) -> None: ...

class NodeTurn(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: bytes
    def __init__(self, messages: _Optional[bytes] = ...) -> None: ...

class CapabilityInfo(_message.Message):
    __slots__ = ("name", "capacity", "available", "cost", "produces")
    class ProducesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    PRODUCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    capacity: int
    available: int
    cost: float
    produces: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., capacity: _Optional[int] = ..., available: _Optional[int] = ..., cost: _Optional[float] = ..., produces: _Optional[_Mapping[str, str]] = ...) -> None: ...

class PolicySummary(_message.Message):
    __slots__ = ("published", "accept_from", "residency_accept", "egress", "private_rules", "accept_from_principals")
    PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FROM_FIELD_NUMBER: _ClassVar[int]
    RESIDENCY_ACCEPT_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_RULES_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FROM_PRINCIPALS_FIELD_NUMBER: _ClassVar[int]
    published: bool
    accept_from: _containers.RepeatedScalarFieldContainer[str]
    residency_accept: _containers.RepeatedScalarFieldContainer[str]
    egress: _config_pb2.Egress
    private_rules: int
    accept_from_principals: _containers.RepeatedCompositeFieldContainer[_config_pb2.AcceptFrom]
    def __init__(self, published: _Optional[bool] = ..., accept_from: _Optional[_Iterable[str]] = ..., residency_accept: _Optional[_Iterable[str]] = ..., egress: _Optional[_Union[_config_pb2.Egress, _Mapping]] = ..., private_rules: _Optional[int] = ..., accept_from_principals: _Optional[_Iterable[_Union[_config_pb2.AcceptFrom, _Mapping]]] = ...) -> None: ...

class DomainRecord(_message.Message):
    __slots__ = ("domain", "endpoint", "labels", "capabilities", "policy", "leaving", "signing_key")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    LEAVING_FIELD_NUMBER: _ClassVar[int]
    SIGNING_KEY_FIELD_NUMBER: _ClassVar[int]
    domain: str
    endpoint: str
    labels: _containers.ScalarMap[str, str]
    capabilities: _containers.RepeatedCompositeFieldContainer[CapabilityInfo]
    policy: PolicySummary
    leaving: bool
    signing_key: bytes
    def __init__(self, domain: _Optional[str] = ..., endpoint: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., capabilities: _Optional[_Iterable[_Union[CapabilityInfo, _Mapping]]] = ..., policy: _Optional[_Union[PolicySummary, _Mapping]] = ..., leaving: _Optional[bool] = ..., signing_key: _Optional[bytes] = ...) -> None: ...

class Vote(_message.Message):
    __slots__ = ("workflow_id", "round", "domain", "yes", "reason", "steps", "lease_expires_at_ms")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    YES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    round: int
    domain: str
    yes: bool
    reason: str
    steps: _containers.RepeatedScalarFieldContainer[str]
    lease_expires_at_ms: int
    def __init__(self, workflow_id: _Optional[str] = ..., round: _Optional[int] = ..., domain: _Optional[str] = ..., yes: _Optional[bool] = ..., reason: _Optional[str] = ..., steps: _Optional[_Iterable[str]] = ..., lease_expires_at_ms: _Optional[int] = ...) -> None: ...

class Decision(_message.Message):
    __slots__ = ("workflow_id", "round", "outcome", "coordinator", "placement", "votes", "spec", "reason", "endpoints", "replacement", "epoch_certificate")
    class PlacementEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class EndpointsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    REPLACEMENT_FIELD_NUMBER: _ClassVar[int]
    EPOCH_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    round: int
    outcome: Outcome
    coordinator: str
    placement: _containers.ScalarMap[str, str]
    votes: _containers.RepeatedCompositeFieldContainer[Envelope]
    spec: _spec_pb2.WorkflowSpec
    reason: str
    endpoints: _containers.ScalarMap[str, str]
    replacement: Replacement
    epoch_certificate: EpochCertificate
    def __init__(self, workflow_id: _Optional[str] = ..., round: _Optional[int] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., coordinator: _Optional[str] = ..., placement: _Optional[_Mapping[str, str]] = ..., votes: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ..., spec: _Optional[_Union[_spec_pb2.WorkflowSpec, _Mapping]] = ..., reason: _Optional[str] = ..., endpoints: _Optional[_Mapping[str, str]] = ..., replacement: _Optional[_Union[Replacement, _Mapping]] = ..., epoch_certificate: _Optional[_Union[EpochCertificate, _Mapping]] = ...) -> None: ...

class Replacement(_message.Message):
    __slots__ = ("step_id", "lost_domain", "placement", "inputs_json", "coordinator_epoch", "coordinator")
    class PlacementEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class InputsJsonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    LOST_DOMAIN_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_EPOCH_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    step_id: str
    lost_domain: str
    placement: _containers.ScalarMap[str, str]
    inputs_json: _containers.ScalarMap[str, str]
    coordinator_epoch: int
    coordinator: str
    def __init__(self, step_id: _Optional[str] = ..., lost_domain: _Optional[str] = ..., placement: _Optional[_Mapping[str, str]] = ..., inputs_json: _Optional[_Mapping[str, str]] = ..., coordinator_epoch: _Optional[int] = ..., coordinator: _Optional[str] = ...) -> None: ...

class StepResult(_message.Message):
    __slots__ = ("workflow_id", "step_id", "attempt", "domain", "state", "outputs", "error", "outputs_json", "attestation", "placement_epoch", "trace_parent")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    ATTESTATION_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_EPOCH_FIELD_NUMBER: _ClassVar[int]
    TRACE_PARENT_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    step_id: str
    attempt: int
    domain: str
    state: _status_pb2.StepState
    outputs: _struct_pb2.Struct
    error: str
    outputs_json: str
    attestation: Envelope
    placement_epoch: int
    trace_parent: str
    def __init__(self, workflow_id: _Optional[str] = ..., step_id: _Optional[str] = ..., attempt: _Optional[int] = ..., domain: _Optional[str] = ..., state: _Optional[_Union[_status_pb2.StepState, str]] = ..., outputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., outputs_json: _Optional[str] = ..., attestation: _Optional[_Union[Envelope, _Mapping]] = ..., placement_epoch: _Optional[int] = ..., trace_parent: _Optional[str] = ...) -> None: ...

class TakeoverAnswer(_message.Message):
    __slots__ = ("workflow_id", "epoch", "granted", "held_epoch", "holder", "error", "final_state", "reason", "committed_round", "electorate", "in_doubt", "epoch_certificate")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    GRANTED_FIELD_NUMBER: _ClassVar[int]
    HELD_EPOCH_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FINAL_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_ROUND_FIELD_NUMBER: _ClassVar[int]
    ELECTORATE_FIELD_NUMBER: _ClassVar[int]
    IN_DOUBT_FIELD_NUMBER: _ClassVar[int]
    EPOCH_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    epoch: int
    granted: bool
    held_epoch: int
    holder: str
    error: str
    final_state: _status_pb2.WorkflowState
    reason: str
    committed_round: int
    electorate: _containers.RepeatedScalarFieldContainer[str]
    in_doubt: bool
    epoch_certificate: EpochCertificate
    def __init__(self, workflow_id: _Optional[str] = ..., epoch: _Optional[int] = ..., granted: _Optional[bool] = ..., held_epoch: _Optional[int] = ..., holder: _Optional[str] = ..., error: _Optional[str] = ..., final_state: _Optional[_Union[_status_pb2.WorkflowState, str]] = ..., reason: _Optional[str] = ..., committed_round: _Optional[int] = ..., electorate: _Optional[_Iterable[str]] = ..., in_doubt: _Optional[bool] = ..., epoch_certificate: _Optional[_Union[EpochCertificate, _Mapping]] = ...) -> None: ...

class EpochCertificate(_message.Message):
    __slots__ = ("workflow_id", "epoch", "coordinator", "grants")
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    GRANTS_FIELD_NUMBER: _ClassVar[int]
    workflow_id: str
    epoch: int
    coordinator: str
    grants: _containers.RepeatedCompositeFieldContainer[Envelope]
    def __init__(self, workflow_id: _Optional[str] = ..., epoch: _Optional[int] = ..., coordinator: _Optional[str] = ..., grants: _Optional[_Iterable[_Union[Envelope, _Mapping]]] = ...) -> None: ...
