from fedorch.gen.fedorch.v1 import config_pb2 as _config_pb2
from fedorch.gen.fedorch.v1 import spec_pb2 as _spec_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Scenario(_message.Message):
    __slots__ = ("name", "description", "defaults", "domains", "workflows", "faults", "expect", "timeout_s", "converge_timeout_s", "load")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DEFAULTS_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOWS_FIELD_NUMBER: _ClassVar[int]
    FAULTS_FIELD_NUMBER: _ClassVar[int]
    EXPECT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    CONVERGE_TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    defaults: AgentDefaults
    domains: _containers.RepeatedCompositeFieldContainer[DomainSpec]
    workflows: _containers.RepeatedCompositeFieldContainer[Submission]
    faults: _containers.RepeatedCompositeFieldContainer[Fault]
    expect: _containers.RepeatedCompositeFieldContainer[Expectation]
    timeout_s: float
    converge_timeout_s: float
    load: HostLoad
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., defaults: _Optional[_Union[AgentDefaults, _Mapping]] = ..., domains: _Optional[_Iterable[_Union[DomainSpec, _Mapping]]] = ..., workflows: _Optional[_Iterable[_Union[Submission, _Mapping]]] = ..., faults: _Optional[_Iterable[_Union[Fault, _Mapping]]] = ..., expect: _Optional[_Iterable[_Union[Expectation, _Mapping]]] = ..., timeout_s: _Optional[float] = ..., converge_timeout_s: _Optional[float] = ..., load: _Optional[_Union[HostLoad, _Mapping]] = ...) -> None: ...

class HostLoad(_message.Message):
    __slots__ = ("busy_processes",)
    BUSY_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    busy_processes: int
    def __init__(self, busy_processes: _Optional[int] = ...) -> None: ...

class AgentDefaults(_message.Message):
    __slots__ = ("gossip", "negotiation", "log_level")
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    NEGOTIATION_FIELD_NUMBER: _ClassVar[int]
    LOG_LEVEL_FIELD_NUMBER: _ClassVar[int]
    gossip: _config_pb2.GossipConfig
    negotiation: _config_pb2.NegotiationConfig
    log_level: str
    def __init__(self, gossip: _Optional[_Union[_config_pb2.GossipConfig, _Mapping]] = ..., negotiation: _Optional[_Union[_config_pb2.NegotiationConfig, _Mapping]] = ..., log_level: _Optional[str] = ...) -> None: ...

class DomainSpec(_message.Message):
    __slots__ = ("name", "count", "labels", "capabilities", "policy", "trust", "gossip", "negotiation")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    TRUST_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_FIELD_NUMBER: _ClassVar[int]
    NEGOTIATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    labels: _containers.ScalarMap[str, str]
    capabilities: _containers.RepeatedCompositeFieldContainer[_config_pb2.CapabilityConfig]
    policy: _config_pb2.Policy
    trust: _containers.RepeatedScalarFieldContainer[str]
    gossip: _config_pb2.GossipConfig
    negotiation: _config_pb2.NegotiationConfig
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ..., labels: _Optional[_Mapping[str, str]] = ..., capabilities: _Optional[_Iterable[_Union[_config_pb2.CapabilityConfig, _Mapping]]] = ..., policy: _Optional[_Union[_config_pb2.Policy, _Mapping]] = ..., trust: _Optional[_Iterable[str]] = ..., gossip: _Optional[_Union[_config_pb2.GossipConfig, _Mapping]] = ..., negotiation: _Optional[_Union[_config_pb2.NegotiationConfig, _Mapping]] = ...) -> None: ...

class Submission(_message.Message):
    __slots__ = ("id", "file", "spec", "to", "at_s", "count", "rate_per_s", "timeout_s")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    AT_S_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RATE_PER_S_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    id: str
    file: str
    spec: _spec_pb2.WorkflowSpec
    to: str
    at_s: float
    count: int
    rate_per_s: float
    timeout_s: float
    def __init__(self, id: _Optional[str] = ..., file: _Optional[str] = ..., spec: _Optional[_Union[_spec_pb2.WorkflowSpec, _Mapping]] = ..., to: _Optional[str] = ..., at_s: _Optional[float] = ..., count: _Optional[int] = ..., rate_per_s: _Optional[float] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class Fault(_message.Message):
    __slots__ = ("action", "domains", "from_domains", "at_s", "after", "seconds")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    FROM_DOMAINS_FIELD_NUMBER: _ClassVar[int]
    AT_S_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    action: str
    domains: _containers.RepeatedScalarFieldContainer[str]
    from_domains: _containers.RepeatedScalarFieldContainer[str]
    at_s: float
    after: StepTrigger
    seconds: float
    def __init__(self, action: _Optional[str] = ..., domains: _Optional[_Iterable[str]] = ..., from_domains: _Optional[_Iterable[str]] = ..., at_s: _Optional[float] = ..., after: _Optional[_Union[StepTrigger, _Mapping]] = ..., seconds: _Optional[float] = ...) -> None: ...

class StepTrigger(_message.Message):
    __slots__ = ("workflow", "step", "state")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    step: str
    state: str
    def __init__(self, workflow: _Optional[str] = ..., step: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class Expectation(_message.Message):
    __slots__ = ("name", "workflow", "step_runs", "members", "run_order", "audit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STEP_RUNS_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    RUN_ORDER_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    workflow: WorkflowExpectation
    step_runs: StepRunsExpectation
    members: MembersExpectation
    run_order: RunOrderExpectation
    audit: AuditExpectation
    def __init__(self, name: _Optional[str] = ..., workflow: _Optional[_Union[WorkflowExpectation, _Mapping]] = ..., step_runs: _Optional[_Union[StepRunsExpectation, _Mapping]] = ..., members: _Optional[_Union[MembersExpectation, _Mapping]] = ..., run_order: _Optional[_Union[RunOrderExpectation, _Mapping]] = ..., audit: _Optional[_Union[AuditExpectation, _Mapping]] = ...) -> None: ...

class WorkflowExpectation(_message.Message):
    __slots__ = ("id", "state", "reason_contains", "steps_on", "within_s", "at_least", "at_most", "coordinator", "epoch", "compensation", "ask_every_agent", "refused_contains")
    class StepsOnEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    STEPS_ON_FIELD_NUMBER: _ClassVar[int]
    WITHIN_S_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    AT_MOST_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_FIELD_NUMBER: _ClassVar[int]
    ASK_EVERY_AGENT_FIELD_NUMBER: _ClassVar[int]
    REFUSED_CONTAINS_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: str
    reason_contains: str
    steps_on: _containers.ScalarMap[str, str]
    within_s: float
    at_least: int
    at_most: int
    coordinator: str
    epoch: int
    compensation: str
    ask_every_agent: bool
    refused_contains: str
    def __init__(self, id: _Optional[str] = ..., state: _Optional[str] = ..., reason_contains: _Optional[str] = ..., steps_on: _Optional[_Mapping[str, str]] = ..., within_s: _Optional[float] = ..., at_least: _Optional[int] = ..., at_most: _Optional[int] = ..., coordinator: _Optional[str] = ..., epoch: _Optional[int] = ..., compensation: _Optional[str] = ..., ask_every_agent: _Optional[bool] = ..., refused_contains: _Optional[str] = ...) -> None: ...

class StepRunsExpectation(_message.Message):
    __slots__ = ("workflow", "step", "equals", "at_least", "at_most", "domain", "compensation")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    EQUALS_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    AT_MOST_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    step: str
    equals: int
    at_least: int
    at_most: int
    domain: str
    compensation: bool
    def __init__(self, workflow: _Optional[str] = ..., step: _Optional[str] = ..., equals: _Optional[int] = ..., at_least: _Optional[int] = ..., at_most: _Optional[int] = ..., domain: _Optional[str] = ..., compensation: _Optional[bool] = ...) -> None: ...

class RunOrderExpectation(_message.Message):
    __slots__ = ("workflow", "steps", "compensation")
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    COMPENSATION_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    steps: _containers.RepeatedScalarFieldContainer[str]
    compensation: bool
    def __init__(self, workflow: _Optional[str] = ..., steps: _Optional[_Iterable[str]] = ..., compensation: _Optional[bool] = ...) -> None: ...

class MembersExpectation(_message.Message):
    __slots__ = ("seen_by", "alive", "not_alive", "within_s", "with_capabilities", "at_s", "all_free")
    SEEN_BY_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    NOT_ALIVE_FIELD_NUMBER: _ClassVar[int]
    WITHIN_S_FIELD_NUMBER: _ClassVar[int]
    WITH_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    AT_S_FIELD_NUMBER: _ClassVar[int]
    ALL_FREE_FIELD_NUMBER: _ClassVar[int]
    seen_by: _containers.RepeatedScalarFieldContainer[str]
    alive: _containers.RepeatedScalarFieldContainer[str]
    not_alive: _containers.RepeatedScalarFieldContainer[str]
    within_s: float
    with_capabilities: bool
    at_s: float
    all_free: bool
    def __init__(self, seen_by: _Optional[_Iterable[str]] = ..., alive: _Optional[_Iterable[str]] = ..., not_alive: _Optional[_Iterable[str]] = ..., within_s: _Optional[float] = ..., with_capabilities: _Optional[bool] = ..., at_s: _Optional[float] = ..., all_free: _Optional[bool] = ...) -> None: ...

class AuditExpectation(_message.Message):
    __slots__ = ("domains", "at_least_records")
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    AT_LEAST_RECORDS_FIELD_NUMBER: _ClassVar[int]
    domains: _containers.RepeatedScalarFieldContainer[str]
    at_least_records: int
    def __init__(self, domains: _Optional[_Iterable[str]] = ..., at_least_records: _Optional[int] = ...) -> None: ...
