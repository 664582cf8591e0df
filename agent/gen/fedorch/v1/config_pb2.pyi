from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Engine(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENGINE_UNSPECIFIED: _ClassVar[Engine]
    ENGINE_SHELLS: _ClassVar[Engine]
    ENGINE_NODE: _ClassVar[Engine]

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
ENGINE_UNSPECIFIED: Engine
ENGINE_SHELLS: Engine
ENGINE_NODE: Engine
GOSSIP_PROFILE_UNSPECIFIED: GossipProfile
GOSSIP_PROFILE_LAN: GossipProfile
GOSSIP_PROFILE_WAN: GossipProfile
GOSSIP_PROFILE_LOCAL: GossipProfile
COMMIT_PROTOCOL_UNSPECIFIED: CommitProtocol
COMMIT_PROTOCOL_PAXOS: CommitProtocol
COMMIT_PROTOCOL_2PC: CommitProtocol

class AgentConfig(_message.Message):
    __slots__ = ("domain", "listen", "advertise", "data_dir", "key_file", "seeds", "trust", "labels", "capabilities", "policy", "metrics_listen", "gossip", "negotiation", "log_level", "console_listen", "clients", "access", "tls", "telemetry", "log_format", "retention", "engine")
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
    CONSOLE_LISTEN_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    LOG_FORMAT_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
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
    console_listen: str
    clients: Clients
    access: _containers.RepeatedCompositeFieldContainer[AccessRule]
    tls: TlsConfig
    telemetry: TelemetryConfig
    log_format: str
    retention: RetentionConfig
    engine: Engine
    def __init__(self, domain: _Optional[str] = ..., listen: _Optional[str] = ..., advertise: _Optional[str] = ..., data_dir: _Optional[str] = ..., key_file: _Optional[str] = ..., seeds: _Optional[_Iterable[str]] = ..., trust: _Optional[_Union[Trust, _Mapping]] = ..., labels: _Optional[_Mapping[str, str]] = ..., capabilities: _Optional[_Iterable[_Union[CapabilityConfig, _Mapping]]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., metrics_listen: _Optional[str] = ..., gossip: _Optional[_Union[GossipConfig, _Mapping]] = ..., negotiation: _Optional[_Union[NegotiationConfig, _Mapping]] = ..., log_level: _Optional[str] = ..., console_listen: _Optional[str] = ..., clients: _Optional[_Union[Clients, _Mapping]] = ..., access: _Optional[_Iterable[_Union[AccessRule, _Mapping]]] = ..., tls: _Optional[_Union[TlsConfig, _Mapping]] = ..., telemetry: _Optional[_Union[TelemetryConfig, _Mapping]] = ..., log_format: _Optional[str] = ..., retention: _Optional[_Union[RetentionConfig, _Mapping]] = ..., engine: _Optional[_Union[Engine, str]] = ...) -> None: ...

class RetentionConfig(_message.Message):
    __slots__ = ("keep_ended_s", "max_ended_workflows", "keep_end_records_s", "max_end_records")
    KEEP_ENDED_S_FIELD_NUMBER: _ClassVar[int]
    MAX_ENDED_WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    KEEP_END_RECORDS_S_FIELD_NUMBER: _ClassVar[int]
    MAX_END_RECORDS_FIELD_NUMBER: _ClassVar[int]
    keep_ended_s: float
    max_ended_workflows: int
    keep_end_records_s: float
    max_end_records: int
    def __init__(self, keep_ended_s: _Optional[float] = ..., max_ended_workflows: _Optional[int] = ..., keep_end_records_s: _Optional[float] = ..., max_end_records: _Optional[int] = ...) -> None: ...

class TlsConfig(_message.Message):
    __slots__ = ("enabled", "federation_ca", "cert_file", "key_file")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    FEDERATION_CA_FIELD_NUMBER: _ClassVar[int]
    CERT_FILE_FIELD_NUMBER: _ClassVar[int]
    KEY_FILE_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    federation_ca: str
    cert_file: str
    key_file: str
    def __init__(self, enabled: _Optional[bool] = ..., federation_ca: _Optional[str] = ..., cert_file: _Optional[str] = ..., key_file: _Optional[str] = ...) -> None: ...

class Clients(_message.Message):
    __slots__ = ("key_files",)
    KEY_FILES_FIELD_NUMBER: _ClassVar[int]
    key_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key_files: _Optional[_Iterable[str]] = ...) -> None: ...

class AccessRule(_message.Message):
    __slots__ = ("principals", "allow")
    PRINCIPALS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    principals: _containers.RepeatedScalarFieldContainer[str]
    allow: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, principals: _Optional[_Iterable[str]] = ..., allow: _Optional[_Iterable[str]] = ...) -> None: ...

class TelemetryConfig(_message.Message):
    __slots__ = ("otlp_endpoint", "file")
    OTLP_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    otlp_endpoint: str
    file: str
    def __init__(self, otlp_endpoint: _Optional[str] = ..., file: _Optional[str] = ...) -> None: ...

class Trust(_message.Message):
    __slots__ = ("key_files", "rotation_overlap_s")
    KEY_FILES_FIELD_NUMBER: _ClassVar[int]
    ROTATION_OVERLAP_S_FIELD_NUMBER: _ClassVar[int]
    key_files: _containers.RepeatedScalarFieldContainer[str]
    rotation_overlap_s: float
    def __init__(self, key_files: _Optional[_Iterable[str]] = ..., rotation_overlap_s: _Optional[float] = ...) -> None: ...

class CapabilityConfig(_message.Message):
    __slots__ = ("name", "capacity", "executor", "cost", "produces")
    class ProducesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    PRODUCES_FIELD_NUMBER: _ClassVar[int]
    name: str
    capacity: int
    executor: ExecutorConfig
    cost: float
    produces: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., capacity: _Optional[int] = ..., executor: _Optional[_Union[ExecutorConfig, _Mapping]] = ..., cost: _Optional[float] = ..., produces: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExecutorConfig(_message.Message):
    __slots__ = ("type", "argv", "env", "name", "cwd", "options")
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
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    type: str
    argv: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.ScalarMap[str, str]
    name: str
    cwd: str
    options: _struct_pb2.Struct
    def __init__(self, type: _Optional[str] = ..., argv: _Optional[_Iterable[str]] = ..., env: _Optional[_Mapping[str, str]] = ..., name: _Optional[str] = ..., cwd: _Optional[str] = ..., options: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("accept_from", "residency", "quotas", "publish", "egress", "rules", "accept_from_principals")
    ACCEPT_FROM_FIELD_NUMBER: _ClassVar[int]
    RESIDENCY_FIELD_NUMBER: _ClassVar[int]
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    EGRESS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FROM_PRINCIPALS_FIELD_NUMBER: _ClassVar[int]
    accept_from: _containers.RepeatedScalarFieldContainer[str]
    residency: Residency
    quotas: Quotas
    publish: bool
    egress: Egress
    rules: _containers.RepeatedCompositeFieldContainer[PolicyRule]
    accept_from_principals: _containers.RepeatedCompositeFieldContainer[AcceptFrom]
    def __init__(self, accept_from: _Optional[_Iterable[str]] = ..., residency: _Optional[_Union[Residency, _Mapping]] = ..., quotas: _Optional[_Union[Quotas, _Mapping]] = ..., publish: _Optional[bool] = ..., egress: _Optional[_Union[Egress, _Mapping]] = ..., rules: _Optional[_Iterable[_Union[PolicyRule, _Mapping]]] = ..., accept_from_principals: _Optional[_Iterable[_Union[AcceptFrom, _Mapping]]] = ...) -> None: ...

class AcceptFrom(_message.Message):
    __slots__ = ("domain", "principals")
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    PRINCIPALS_FIELD_NUMBER: _ClassVar[int]
    domain: str
    principals: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, domain: _Optional[str] = ..., principals: _Optional[_Iterable[str]] = ...) -> None: ...

class Egress(_message.Message):
    __slots__ = ("to_labels", "to_domains")
    class ToLabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LabelValues
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LabelValues, _Mapping]] = ...) -> None: ...
    TO_LABELS_FIELD_NUMBER: _ClassVar[int]
    TO_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    to_labels: _containers.MessageMap[str, LabelValues]
    to_domains: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, to_labels: _Optional[_Mapping[str, LabelValues]] = ..., to_domains: _Optional[_Iterable[str]] = ...) -> None: ...

class LabelValues(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, values: _Optional[_Iterable[str]] = ...) -> None: ...

class PolicyRule(_message.Message):
    __slots__ = ("name", "expression", "message")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    expression: str
    message: str
    def __init__(self, name: _Optional[str] = ..., expression: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("prepare_timeout_s", "max_rounds", "lease_s", "replay_window_s", "commit", "batching", "certificate_sweep_s", "takeover_after_s", "step_lease_s", "signed_spec_window_s", "max_acceptors")
    PREPARE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_S_FIELD_NUMBER: _ClassVar[int]
    REPLAY_WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    BATCHING_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SWEEP_S_FIELD_NUMBER: _ClassVar[int]
    TAKEOVER_AFTER_S_FIELD_NUMBER: _ClassVar[int]
    STEP_LEASE_S_FIELD_NUMBER: _ClassVar[int]
    SIGNED_SPEC_WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    MAX_ACCEPTORS_FIELD_NUMBER: _ClassVar[int]
    prepare_timeout_s: float
    max_rounds: int
    lease_s: float
    replay_window_s: float
    commit: CommitProtocol
    batching: bool
    certificate_sweep_s: float
    takeover_after_s: float
    step_lease_s: float
    signed_spec_window_s: float
    max_acceptors: int
    def __init__(self, prepare_timeout_s: _Optional[float] = ..., max_rounds: _Optional[int] = ..., lease_s: _Optional[float] = ..., replay_window_s: _Optional[float] = ..., commit: _Optional[_Union[CommitProtocol, str]] = ..., batching: _Optional[bool] = ..., certificate_sweep_s: _Optional[float] = ..., takeover_after_s: _Optional[float] = ..., step_lease_s: _Optional[float] = ..., signed_spec_window_s: _Optional[float] = ..., max_acceptors: _Optional[int] = ...) -> None: ...
