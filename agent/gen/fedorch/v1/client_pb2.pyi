from fedorch.gen.fedorch.v1 import spec_pb2 as _spec_pb2
from fedorch.gen.fedorch.v1 import status_pb2 as _status_pb2
from fedorch.gen.fedorch.v1 import peer_pb2 as _peer_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MemberState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBER_STATE_UNSPECIFIED: _ClassVar[MemberState]
    MEMBER_STATE_ALIVE: _ClassVar[MemberState]
    MEMBER_STATE_SUSPECT: _ClassVar[MemberState]
    MEMBER_STATE_DEAD: _ClassVar[MemberState]
    MEMBER_STATE_LEFT: _ClassVar[MemberState]
MEMBER_STATE_UNSPECIFIED: MemberState
MEMBER_STATE_ALIVE: MemberState
MEMBER_STATE_SUSPECT: MemberState
MEMBER_STATE_DEAD: MemberState
MEMBER_STATE_LEFT: MemberState

class SubmitRequest(_message.Message):
    __slots__ = ("spec", "request_id", "signed_spec")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNED_SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: _spec_pb2.WorkflowSpec
    request_id: str
    signed_spec: _spec_pb2.SignedSpec
    def __init__(self, spec: _Optional[_Union[_spec_pb2.WorkflowSpec, _Mapping]] = ..., request_id: _Optional[str] = ..., signed_spec: _Optional[_Union[_spec_pb2.SignedSpec, _Mapping]] = ...) -> None: ...

class SubmitReply(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class SubmitAndWatchRequest(_message.Message):
    __slots__ = ("submit", "state_changes_only", "states")
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGES_ONLY_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    submit: SubmitRequest
    state_changes_only: bool
    states: _containers.RepeatedScalarFieldContainer[_status_pb2.WorkflowState]
    def __init__(self, submit: _Optional[_Union[SubmitRequest, _Mapping]] = ..., state_changes_only: _Optional[bool] = ..., states: _Optional[_Iterable[_Union[_status_pb2.WorkflowState, str]]] = ...) -> None: ...

class SubmitStreamRequest(_message.Message):
    __slots__ = ("submit", "token", "state_changes_only", "states", "skip_accepted")
    SUBMIT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGES_ONLY_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    SKIP_ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    submit: SubmitRequest
    token: str
    state_changes_only: bool
    states: _containers.RepeatedScalarFieldContainer[_status_pb2.WorkflowState]
    skip_accepted: bool
    def __init__(self, submit: _Optional[_Union[SubmitRequest, _Mapping]] = ..., token: _Optional[str] = ..., state_changes_only: _Optional[bool] = ..., states: _Optional[_Iterable[_Union[_status_pb2.WorkflowState, str]]] = ..., skip_accepted: _Optional[bool] = ...) -> None: ...

class SubmitStreamUpdate(_message.Message):
    __slots__ = ("token", "id", "code", "reason", "status")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    token: str
    id: str
    code: int
    reason: str
    status: _status_pb2.WorkflowStatus
    def __init__(self, token: _Optional[str] = ..., id: _Optional[str] = ..., code: _Optional[int] = ..., reason: _Optional[str] = ..., status: _Optional[_Union[_status_pb2.WorkflowStatus, _Mapping]] = ...) -> None: ...

class GetWorkflowRequest(_message.Message):
    __slots__ = ("id", "local_only", "state_changes_only")
    ID_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGES_ONLY_FIELD_NUMBER: _ClassVar[int]
    id: str
    local_only: bool
    state_changes_only: bool
    def __init__(self, id: _Optional[str] = ..., local_only: _Optional[bool] = ..., state_changes_only: _Optional[bool] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("id", "reason", "local_only")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ONLY_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    local_only: bool
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ..., local_only: _Optional[bool] = ...) -> None: ...

class CancelReply(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.WorkflowStatus
    def __init__(self, status: _Optional[_Union[_status_pb2.WorkflowStatus, _Mapping]] = ...) -> None: ...

class ListWorkflowsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListWorkflowsReply(_message.Message):
    __slots__ = ("workflows",)
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    workflows: _containers.RepeatedCompositeFieldContainer[_status_pb2.WorkflowStatus]
    def __init__(self, workflows: _Optional[_Iterable[_Union[_status_pb2.WorkflowStatus, _Mapping]]] = ...) -> None: ...

class MemberInfo(_message.Message):
    __slots__ = ("domain", "address", "state", "labels", "capabilities", "version", "last_heard_ms", "policy", "self", "incarnation")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARD_MS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    SELF_FIELD_NUMBER: _ClassVar[int]
    INCARNATION_FIELD_NUMBER: _ClassVar[int]
    domain: str
    address: str
    state: MemberState
    labels: _containers.ScalarMap[str, str]
    capabilities: _containers.RepeatedCompositeFieldContainer[_peer_pb2.CapabilityInfo]
    version: int
    last_heard_ms: int
    policy: _peer_pb2.PolicySummary
    self: bool
    incarnation: int
    def __init__(self_, domain: _Optional[str] = ..., address: _Optional[str] = ..., state: _Optional[_Union[MemberState, str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., capabilities: _Optional[_Iterable[_Union[_peer_pb2.CapabilityInfo, _Mapping]]] = ..., version: _Optional[int] = ..., last_heard_ms: _Optional[int] = ..., policy: _Optional[_Union[_peer_pb2.PolicySummary, _Mapping]] = ..., self: _Optional[bool] = ..., incarnation: _Optional[int] = ...) -> None: ...

class ListMembersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListMembersReply(_message.Message):
    __slots__ = ("members",)
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    members: _containers.RepeatedCompositeFieldContainer[MemberInfo]
    def __init__(self, members: _Optional[_Iterable[_Union[MemberInfo, _Mapping]]] = ...) -> None: ...

class GetAgentRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentInfo(_message.Message):
    __slots__ = ("domain",)
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    domain: str
    def __init__(self, domain: _Optional[str] = ...) -> None: ...
