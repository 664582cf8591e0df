from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WorkflowSpec(_message.Message):
    __slots__ = ("name", "data", "steps")
    class DataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    name: str
    data: _containers.ScalarMap[str, str]
    steps: _containers.RepeatedCompositeFieldContainer[StepSpec]
    def __init__(self, name: _Optional[str] = ..., data: _Optional[_Mapping[str, str]] = ..., steps: _Optional[_Iterable[_Union[StepSpec, _Mapping]]] = ...) -> None: ...

class SignedSpec(_message.Message):
    __slots__ = ("principal", "spec", "signature", "public_key", "request_id", "issued_at_ms", "coordinator")
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    principal: str
    spec: bytes
    signature: bytes
    public_key: bytes
    request_id: str
    issued_at_ms: int
    coordinator: str
    def __init__(self, principal: _Optional[str] = ..., spec: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., public_key: _Optional[bytes] = ..., request_id: _Optional[str] = ..., issued_at_ms: _Optional[int] = ..., coordinator: _Optional[str] = ...) -> None: ...

class StepSpec(_message.Message):
    __slots__ = ("id", "capability", "params", "constraints", "needs", "retries", "timeout_s", "compensate", "idempotent", "on_domain_loss", "params_json", "data", "each", "waves", "instance_of", "wave")
    class DataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_FIELD_NUMBER: _ClassVar[int]
    NEEDS_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    COMPENSATE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_FIELD_NUMBER: _ClassVar[int]
    ON_DOMAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    EACH_FIELD_NUMBER: _ClassVar[int]
    WAVES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_OF_FIELD_NUMBER: _ClassVar[int]
    WAVE_FIELD_NUMBER: _ClassVar[int]
    id: str
    capability: str
    params: _struct_pb2.Struct
    constraints: Constraints
    needs: _containers.RepeatedScalarFieldContainer[str]
    retries: int
    timeout_s: float
    compensate: Compensation
    idempotent: bool
    on_domain_loss: str
    params_json: str
    data: _containers.ScalarMap[str, str]
    each: Each
    waves: Waves
    instance_of: str
    wave: int
    def __init__(self, id: _Optional[str] = ..., capability: _Optional[str] = ..., params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., constraints: _Optional[_Union[Constraints, _Mapping]] = ..., needs: _Optional[_Iterable[str]] = ..., retries: _Optional[int] = ..., timeout_s: _Optional[float] = ..., compensate: _Optional[_Union[Compensation, _Mapping]] = ..., idempotent: _Optional[bool] = ..., on_domain_loss: _Optional[str] = ..., params_json: _Optional[str] = ..., data: _Optional[_Mapping[str, str]] = ..., each: _Optional[_Union[Each, _Mapping]] = ..., waves: _Optional[_Union[Waves, _Mapping]] = ..., instance_of: _Optional[str] = ..., wave: _Optional[int] = ...) -> None: ...

class Each(_message.Message):
    __slots__ = ("labels", "domains")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    domains: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., domains: _Optional[_Iterable[str]] = ...) -> None: ...

class Waves(_message.Message):
    __slots__ = ("max_parallel", "pause_s", "on_failure", "min_success")
    MAX_PARALLEL_FIELD_NUMBER: _ClassVar[int]
    PAUSE_S_FIELD_NUMBER: _ClassVar[int]
    ON_FAILURE_FIELD_NUMBER: _ClassVar[int]
    MIN_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    max_parallel: int
    pause_s: float
    on_failure: str
    min_success: int
    def __init__(self, max_parallel: _Optional[int] = ..., pause_s: _Optional[float] = ..., on_failure: _Optional[str] = ..., min_success: _Optional[int] = ...) -> None: ...

class Constraints(_message.Message):
    __slots__ = ("labels", "domains")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LABELS_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    labels: _containers.ScalarMap[str, str]
    domains: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, labels: _Optional[_Mapping[str, str]] = ..., domains: _Optional[_Iterable[str]] = ...) -> None: ...

class Compensation(_message.Message):
    __slots__ = ("params", "params_json", "capability", "retries", "timeout_s")
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    CAPABILITY_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    params: _struct_pb2.Struct
    params_json: str
    capability: str
    retries: int
    timeout_s: float
    def __init__(self, params: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., params_json: _Optional[str] = ..., capability: _Optional[str] = ..., retries: _Optional[int] = ..., timeout_s: _Optional[float] = ...) -> None: ...
