from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GossipProfile(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GOSSIP_PROFILE_UNSPECIFIED: _ClassVar[GossipProfile]
    GOSSIP_PROFILE_LAN: _ClassVar[GossipProfile]
    GOSSIP_PROFILE_WAN: _ClassVar[GossipProfile]
    GOSSIP_PROFILE_LOCAL: _ClassVar[GossipProfile]

class CommitProtocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMMIT_PROTOCOL_UNSPECIFIED: _ClassVar[CommitProtocol]
    COMMIT_PROTOCOL_PAXOS: _ClassVar[CommitProtocol]
    COMMIT_PROTOCOL_2PC: _ClassVar[CommitProtocol]
GOSSIP_PROFILE_UNSPECIFIED: GossipProfile
GOSSIP_PROFILE_LAN: GossipProfile
GOSSIP_PROFILE_WAN: GossipProfile
GOSSIP_PROFILE_LOCAL: GossipProfile
COMMIT_PROTOCOL_UNSPECIFIED: CommitProtocol
COMMIT_PROTOCOL_PAXOS: CommitProtocol
COMMIT_PROTOCOL_2PC: CommitProtocol

class AgentConfig(_message.Message):
    __slots__ = ("domain", "listen", "advertise", "data_dir", "key_file", "seeds", "trust", "labels", "capabilities", "policy", "metrics_listen", "gossip", "negotiation", "log_level", "telemetry", "log_format")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    LISTEN_FIELD_NUMBER: _ClassVar[int]
    ADVERTISE_FIELD_NUMBER: _ClassVar[int]
    DATA_DIR_FIELD_NUMBER: _ClassVar[int]
    KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    TRUST_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    METRICS_LISTEN_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    NEGOTIATION_FIELD_NUMBER: _ClassVar[int]
    LOG_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    LOG_FORMAT_FIELD_NUMBER: _ClassVar[int]
    domain: str
    listen: str
    advertise: str
    data_dir: str
    key_file: str
    seeds: _containers.RepeatedScalarFieldContainer[str]
    trust: Trust
    labels: _containers.ScalarMap[str, str]
    capabilities: _containers.RepeatedCompositeFieldContainer[CapabilityConfig]
    policy: Policy
    metrics_listen: str
    gossip: GossipConfig
    negotiation: NegotiationConfig
    log_level: str
    telemetry: TelemetryConfig
    log_format: str
    def __init__(self, domain: _Optional[str] = ..., listen: _Optional[str] = ..., advertise: _Optional[str] = ..., data_dir: _Optional[str] = ..., key_file: _Optional[str] = ..., seeds: _Optional[_Iterable[str]] = ..., trust: _Optional[_Union[Trust, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., capabilities: _Optional[_Iterable[_Union[CapabilityConfig, _Mapping]]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., metrics_listen: _Optional[str] = ..., gossip: _Optional[_Union[GossipConfig, _Mapping]] = ..., negotiation: _Optional[_Union[NegotiationConfig, _Mapping]] = ..., log_level: _Optional[str] = ..., telemetry: _Optional[_Union[TelemetryConfig, _Mapping]] = ..., log_format: _Optional[str] = ...) -> None: ...

class TelemetryConfig(_message.Message):
    __slots__ = ("otlp_endpoint", "file")
    OTLP_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    otlp_endpoint: str
    file: str
    def __init__(self, otlp_endpoint: _Optional[str] = ..., file: _Optional[str] = ...) -> None: ...

class Trust(_message.Message):
    __slots__ = ("key_files",)
    KEY_FILES_FIELD_NUMBER: _ClassVar[int]
    key_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key_files: _Optional[_Iterable[str]] = ...) -> None: ...

class CapabilityConfig(_message.Message):
    __slots__ = ("name", "capacity", "executor", "cost")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    name: str
    capacity: int
    executor: ExecutorConfig
    cost: float
    def __init__(self, name: _Optional[str] = ..., capacity: _Optional[int] = ..., executor: _Optional[_Union[ExecutorConfig, _Mapping]] = ..., cost: _Optional[float] = ...) -> None: ...

class ExecutorConfig(_message.Message):
    __slots__ = ("type", "argv", "env", "name", "cwd")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ARGV_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    type: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    name: str
    cwd: str
    def __init__(self, type: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., name: _Optional[str] = ..., cwd: _Optional[str] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("accept_from", "residency", "quotas", "publish")
    ACCEPT_FROM_FIELD_NUMBER: _ClassVar[int]
    RESIDENCY_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    accept_from: _containers.RepeatedScalarFieldContainer[str]
    residency: Residency
    quotas: Quotas
    publish: bool
    def __init__(self, accept_from: _Optional[_Iterable[str]] = ..., residency: _Optional[_Union[Residency, _Mapping]] = ..., quotas: _Optional[_Union[Quotas, _Mapping]] = ..., publish: _Optional[bool] = ...) -> None: ...

class Residency(_message.Message):
    __slots__ = ("accept",)
    ACCEPT_FIELD_NUMBER: _ClassVar[int]
    accept: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accept: _Optional[_Iterable[str]] = ...) -> None: ...

class Quotas(_message.Message):
    __slots__ = ("max_steps_per_coordinator",)
    MAX_STEPS_PER_COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    max_steps_per_coordinator: int
    def __init__(self, max_steps_per_coordinator: _Optional[int] = ...) -> None: ...

class GossipConfig(_message.Message):
    __slots__ = ("profile", "tuning", "publish_interval_s")
    class TuningEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TUNING_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    profile: GossipProfile
    tuning: _containers.ScalarMap[str, float]
    publish_interval_s: float
    def __init__(self, profile: _Optional[_Union[GossipProfile, str]] = ..., tuning: _Optional[_Mapping[str, float]] = ..., publish_interval_s: _Optional[float] = ...) -> None: ...

class NegotiationConfig(_message.Message):
    __slots__ = ("prepare_timeout_s", "max_rounds", "lease_s", "replay_window_s", "commit", "batching", "certificate_sweep_s")
    PREPARE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    REPLAY_WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SWEEP_S_FIELD_NUMBER: _ClassVar[int]
    prepare_timeout_s: float
    max_rounds: int
    lease_s: float
    replay_window_s: float
    commit: CommitProtocol
    batching: bool
    certificate_sweep_s: float
    def __init__(self, prepare_timeout_s: _Optional[float] = ..., max_rounds: _Optional[int] = ..., lease_s: _Optional[float] = ..., replay_window_s: _Optional[float] = ..., commit: _Optional[_Union[CommitProtocol, str]] = ..., batching: _Optional[bool] = ..., certificate_sweep_s: _Optional[float] = ...) -> None: ...
