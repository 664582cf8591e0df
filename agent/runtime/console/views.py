"""What the console shows, read from the agent the way its Client service reads it.

Members come from the membership view; a workflow's status from its coordinator
(forwarded there as `fedorch status` is, with this agent's own copy when the
coordinator cannot be reached). Nothing here writes: the console is a reader.

The workflows are the Node's: the list, the local status and the follow read the node
engine's read view (node_engine/status.py, `agent.node_view`), the spec comes from the
Node's tables, and since its statuses carry no times, a workflow's creation time is
read from its id (the coordinator names it by the wall millisecond it took it) and its
last change is the time of this domain's last audit record of it
(node_engine/audit.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import grpc
from fedorch.core.workflow import values
from fedorch.core.workflow.lifecycle import TERMINAL_NAMES
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc, spec_pb2, status_pb2
from fedorch.runtime.console.rounds import RoundView, node_decisions
from fedorch.runtime.convert import step_state_name, workflow_state_name

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.console")

FORWARD_TIMEOUT_S = 5.0
FOLLOW_HEARTBEAT_S = 5.0
WORKFLOW_STATES = ("PENDING", "NEGOTIATING", "RUNNING", "SUCCEEDED", "FAILED", "ABORTED",
                   "CANCELLED")
LIST_LIMIT = 200
UNPLACED = ""  # the domain of a step not placed yet


# ---- the federation map ---------------------------------------------------------------

@dataclass(frozen=True)
class CapabilityView:
    name: str
    capacity: int
    available: int
    cost: float


@dataclass(frozen=True)
class MemberView:
    domain: str
    address: str
    state: str
    labels: tuple[tuple[str, str], ...]
    capabilities: tuple[CapabilityView, ...]
    incarnation: int
    is_self: bool


def members(agent: AgentContext) -> list[MemberView]:
    """Every member this agent knows, itself included, sorted by domain. The values are
    hashable and leave out when each was last heard: two equal lists mean the map has
    nothing new to show."""
    if agent.membership is None:  # not started yet
        return []
    out = []
    for m in agent.membership.members():
        # Its own record is the one it would publish now: free slots without gossip delay.
        record = agent.current_record() if m.domain == agent.domain else m.record
        out.append(MemberView(
            domain=m.domain, address=m.address, state=m.state,
            labels=tuple(sorted(record.labels.items())),
            capabilities=tuple(CapabilityView(c.name, c.capacity, c.available, c.cost)
                               for c in record.capabilities),
            incarnation=m.incarnation, is_self=m.domain == agent.domain,
        ))
    return sorted(out, key=lambda v: v.domain)


# ---- the workflow list -----------------------------------------------------------------

@dataclass(frozen=True)
class WorkflowSummary:
    id: str
    name: str
    state: str
    coordinator: str
    rounds: int
    reason: str
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class ListFilter:
    state: str = ""
    text: str = ""  # a part of the id or the name
    coordinator: str = ""

    @classmethod
    def of(cls, query: dict[str, str]) -> ListFilter:
        state = query.get("state", "").strip().upper()
        if state and state not in WORKFLOW_STATES:
            raise ValueError(f"state must be one of {', '.join(WORKFLOW_STATES)}, got {state!r}")
        return cls(state=state, text=query.get("q", "").strip(),
                    coordinator=query.get("coordinator", "").strip())

    def matches(self, w: WorkflowSummary) -> bool:
        return ((not self.state or w.state == self.state)
                and (not self.coordinator or w.coordinator == self.coordinator)
                and (not self.text or self.text in w.id or self.text in w.name))


async def workflows(agent: AgentContext, wanted: ListFilter,
                    limit: int = LIST_LIMIT) -> tuple[list[WorkflowSummary], int]:
    """The workflows this agent knows that match, newest first (at most `limit`), and how
    many matched in all."""
    return await _node_workflows(agent, agent.node_view, wanted, limit)


# ---- one workflow ------------------------------------------------------------------------

@dataclass(frozen=True)
class StepView:
    id: str
    capability: str
    domain: str
    state: str
    attempts: int
    outputs: str  # JSON text, "" when none
    error: str
    needs: tuple[str, ...]
    retries: int
    compensate: str  # the declared compensation's params as JSON text, "" when none
    instance_of: str = ""  # an instance of a fan-out step: that step, and its wave
    wave: int = 0
    # Its compensation as the coordinator drives it (known where this agent coordinates):
    # PENDING | RUNNING | COMPENSATED | COMPENSATION_FAILED, "" when none is owed.
    compensation_state: str = ""
    compensation_attempts: int = 0
    compensation_max: int = 0


@dataclass(frozen=True)
class AuditView:
    """One record of this domain's audit log about the workflow."""

    seq: int
    time_ms: int
    kind: str
    fields: str  # its data, short values as key=JSON
    holds: str  # the signed documents it carries (spec, certificate, ...), by name
    hash: str


# Record fields that hold whole signed documents: named, not shown (`fedorch audit show`
# leaves them out the same way).
LONG_AUDIT_FIELDS = frozenset({"certificate", "evidence", "attestation", "spec"})


@dataclass
class WorkflowView:
    id: str
    name: str
    state: str
    coordinator: str
    reason: str
    created_ms: int
    updated_ms: int
    steps: list[StepView]
    rounds: list[RoundView]
    spec_known: bool  # the dependencies are known (this agent holds the spec)
    compensation: str = "NONE"  # the summary: NONE | DONE | FAILED (and PENDING, RUNNING)
    audit: list[AuditView] = field(default_factory=list)

    @property
    def has_waves(self) -> bool:
        """Has the workflow fan-out steps (a wave column is then shown)?"""
        return any(s.instance_of for s in self.steps)

    @property
    def domains(self) -> list[str]:
        return sorted({s.domain for s in self.steps})

    def graph(self) -> dict:
        """The DAG as the page's graph library takes it: steps inside their domains."""
        return {
            "workflow": self.id,
            "state": self.state,
            "domains": self.domains,
            "steps": [{"id": s.id, "domain": s.domain, "state": s.state,
                       "capability": s.capability, "attempts": s.attempts,
                       "wave": s.wave}
                      for s in self.steps],
            "edges": [[need, s.id] for s in self.steps for need in s.needs],
        }


def _coordinator_of(workflow_id: str) -> str:
    return workflow_id.rpartition(".")[0]


def _remote_stub(agent: AgentContext, workflow_id: str) -> client_pb2_grpc.ClientStub | None:
    """A Client stub for the workflow's coordinator when that is another agent."""
    coordinator = _coordinator_of(workflow_id)
    if not coordinator or coordinator == agent.domain:
        return None
    endpoint = agent.endpoint_of(coordinator)
    if endpoint is None:
        return None
    return client_pb2_grpc.ClientStub(agent.peers.channel(endpoint))


async def status(agent: AgentContext, workflow_id: str) -> status_pb2.WorkflowStatus | None:
    """The workflow's status as its coordinator has it (this agent's own copy when the
    coordinator cannot be reached); None when nobody knows it."""
    remote = _remote_stub(agent, workflow_id)
    if remote is not None:
        try:
            return await remote.GetWorkflow(
                client_pb2.GetWorkflowRequest(id=workflow_id, local_only=True),
                timeout=FORWARD_TIMEOUT_S)
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                log.info("coordinator of %s unreachable (%s); showing this agent's copy",
                         workflow_id, e.code().name)
    return await _local_status(agent, workflow_id)


def _final(s: status_pb2.WorkflowStatus) -> bool:
    """Nothing more will change: the workflow ended and so did its compensations (they
    run after a FAILED or CANCELLED end, and the page shows them as they go)."""
    return (workflow_state_name(s.state) in TERMINAL_NAMES
            and s.compensation != status_pb2.COMPENSATION_SUMMARY_RUNNING)


async def follow(agent: AgentContext, workflow_id: str) -> AsyncIterator[status_pb2.WorkflowStatus]:
    """The workflow's statuses as they change, until it ends or the agent stops: from its
    coordinator's Watch stream, or from this agent's change notification (as the Client
    service's Watch does) when this agent coordinates it or the coordinator is gone.
    Followed locally, it goes on until the workflow's compensations have ended too; the
    coordinator's Watch ends with the workflow."""
    remote = _remote_stub(agent, workflow_id)
    if remote is not None:
        try:
            async for s in remote.Watch(client_pb2.GetWorkflowRequest(id=workflow_id,
                                                                      local_only=True),
                                        timeout=24 * 3600):
                yield s
            return
        except grpc.aio.AioRpcError as e:
            log.info("watch of %s: coordinator unreachable (%s); following locally",
                     workflow_id, e.code().name)
    async for s in _node_follow(agent, agent.node_view, workflow_id):
        yield s


async def workflow_view(agent: AgentContext, s: status_pb2.WorkflowStatus) -> WorkflowView:
    """A status with what this agent's store adds: dependencies and declared compensation
    from the spec, and the signed decision of each round with its votes."""
    spec = _node_spec(agent.node_view, s.id)
    specs = {st.id: st for st in spec.steps} if spec is not None else {}
    steps = []
    for st in s.steps:
        declared = specs.get(st.id)
        outputs = _json_text(st, "outputs")
        compensate = (_json_text(declared.compensate, "params")
                      if declared is not None and declared.HasField("compensate") else None)
        steps.append(StepView(
            id=st.id, capability=st.capability, domain=st.domain or UNPLACED,
            state=step_state_name(st.state), attempts=st.attempts,
            outputs=outputs if outputs != "{}" else "", error=st.error,
            needs=tuple(declared.needs) if declared is not None else (),
            retries=declared.retries if declared is not None else 0,
            compensate=compensate if compensate is not None else "",
            instance_of=st.instance_of, wave=st.wave,
        ))
    rounds = {r: RoundView(r) for r in range(1, s.rounds + 1)}
    for refusal in s.refusals:
        rounds.setdefault(refusal.round, RoundView(refusal.round)).refusals.append(refusal)
    records = await agent.store.audit_records(s.id)
    node_decisions(agent, s, rounds, records)  # its decisions are in its audit log
    return WorkflowView(
        id=s.id, name=s.name, state=workflow_state_name(s.state), coordinator=s.coordinator,
        reason=s.reason, created_ms=s.created_at_ms, updated_ms=s.updated_at_ms,
        steps=steps, rounds=[rounds[r] for r in sorted(rounds)], spec_known=spec is not None,
        compensation=status_pb2.CompensationSummary.Name(s.compensation).removeprefix(
            "COMPENSATION_SUMMARY_") if s.compensation else "NONE",
        audit=_audit(records),
    )


def _json_text(message, name: str) -> str:
    """A message's JSON object field as canonical text, with its exact values (integers
    stay integers, however big); what a peer sent that is not a JSON object is named so."""
    try:
        return values.dumps(values.read_object(message, name))
    except values.JsonValueError as e:
        return f"(not a JSON object: {e})"


def _audit(records: list) -> list[AuditView]:
    """This domain's audit records of the workflow (store.audit_records), in log order."""
    out = []
    for record in records:
        body = record.decoded()
        data = body.get("data", {}) if isinstance(body, dict) else {}
        out.append(AuditView(
            seq=record.seq, time_ms=int(body.get("time_ms") or 0), kind=record.kind,
            fields=" ".join(f"{k}={json.dumps(v, sort_keys=True)}"
                            for k, v in sorted(data.items()) if k not in LONG_AUDIT_FIELDS),
            holds=", ".join(sorted(k for k in LONG_AUDIT_FIELDS if data.get(k))),
            hash=record.hash.hex()[:16]))
    return out


# ---- the Node's read view ------------------------------------------------------------------

def created_ms(workflow_id: str) -> int:
    """When its coordinator took the workflow: the wall millisecond its id begins with
    (`DOMAIN.` then 12 hex digits; 0 for an id not made so)."""
    stamp = workflow_id.rpartition(".")[2][:12]
    try:
        return int(stamp, 16) if len(stamp) == 12 else 0
    except ValueError:
        return 0


async def _last_record_ms(agent: AgentContext, workflow_id: str) -> int:
    """The time of this domain's last audit record of the workflow (0: none)."""
    rows = await agent.store.select(
        "SELECT body FROM audit WHERE workflow_id=? ORDER BY seq DESC LIMIT 1",
        (workflow_id,))
    if not rows:
        return 0
    try:
        return int(json.loads(rows[0][0]).get("time_ms") or 0)
    except (ValueError, AttributeError):
        return 0


async def _with_times(agent: AgentContext,
                      s: status_pb2.WorkflowStatus) -> status_pb2.WorkflowStatus:
    """A copy of a node-engine status (shared with other readers: never changed in
    place) with the times it does not carry."""
    if s.created_at_ms:
        return s
    out = status_pb2.WorkflowStatus()
    out.CopyFrom(s)
    out.created_at_ms = created_ms(s.id)
    out.updated_at_ms = await _last_record_ms(agent, s.id) or out.created_at_ms
    return out


async def _local_status(agent: AgentContext,
                        workflow_id: str) -> status_pb2.WorkflowStatus | None:
    s = await agent.node_view.read(workflow_id)
    return await _with_times(agent, s) if s is not None else None


async def _node_follow(agent: AgentContext, node_view,
                       workflow_id: str) -> AsyncIterator[status_pb2.WorkflowStatus]:
    """As `follow`, from the node engine's view: woken by each durable turn."""
    last = None
    while not agent.stopping:
        s = await node_view.read(workflow_id)
        if s is None:
            return
        if s != last:
            last = s
            yield await _with_times(agent, s)
            if _final(s):
                return
        await node_view.wait(workflow_id, steps=True, timeout=FOLLOW_HEARTBEAT_S)


async def _node_workflows(agent: AgentContext, node_view, wanted: ListFilter,
                          limit: int) -> tuple[list[WorkflowSummary], int]:
    found = [w for w in (
        WorkflowSummary(s.id, s.name, workflow_state_name(s.state), s.coordinator,
                        s.rounds, s.reason, created_ms(s.id), 0)
        for s in await node_view.read_all()) if wanted.matches(w)]
    found.sort(key=lambda w: (w.created_ms, w.id), reverse=True)
    shown = [replace(w, updated_ms=await _last_record_ms(agent, w.id) or w.created_ms)
             for w in found[:limit]]
    return shown, len(found)


def _node_spec(node_view, workflow_id: str) -> spec_pb2.WorkflowSpec | None:
    """The workflow's spec as the Node holds it: its row (coordinated here) or the
    PREPARE of its committed round (taken part in)."""
    d = node_view.node.state
    row = d.rows.get(workflow_id)
    if row is not None:
        return row.info.spec
    committed = d.committed.get(workflow_id)
    info = d.info.get((workflow_id, committed)) if committed is not None else None
    return info.spec if info is not None else None
