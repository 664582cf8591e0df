"""What the Python client returns: plain, frozen dataclasses built from the agent's answers.

States are plain strings ("SUCCEEDED", "ALIVE", ...), outputs plain JSON values with
their types kept (an integer output is an ``int``). ``to_dict()`` gives the same JSON
shapes as the CLI's ``--json`` (ARCHITECTURE §6), so scripts can switch between the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fedorch.core.workflow import values
from fedorch.core.workflow.lifecycle import TERMINAL_NAMES
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2

# The workflow lifecycle core's terminal set, by name (as statuses carry them here).
TERMINAL_STATES = TERMINAL_NAMES


def _name(enum: Any, value: int, prefix: str) -> str:
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:  # a newer agent's state this client does not know
        return f"UNKNOWN_{value}"


@dataclass(frozen=True)
class StepStatus:
    id: str
    domain: str
    state: str  # PENDING, WAITING, RUNNING, SUCCEEDED, FAILED, SKIPPED, CANCELLED, ...
    attempts: int
    outputs: dict[str, Any]
    error: str
    capability: str
    # An instance of a fan-out step: the step it is an instance of and its wave (1, 2,
    # ...); "" and 0 for other steps (docs/workflow-spec.md).
    instance_of: str = ""
    wave: int = 0
    # The domains the step was placed on before, each lost (docs/failures.md).
    replaced_from: tuple[str, ...] = ()

    @classmethod
    def from_proto(cls, step: status_pb2.StepStatus) -> StepStatus:
        return cls(id=step.id, domain=step.domain,
                   state=_name(status_pb2.StepState, step.state, "STEP_STATE_"),
                   attempts=step.attempts, outputs=values.read_object(step, "outputs"),
                   error=step.error, capability=step.capability,
                   instance_of=step.instance_of, wave=step.wave,
                   replaced_from=tuple(step.replaced_from))

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "domain": self.domain, "state": self.state,
               "attempts": self.attempts, "outputs": self.outputs, "error": self.error}
        if self.instance_of:  # as the CLI's --json
            out["instance_of"], out["wave"] = self.instance_of, self.wave
        if self.replaced_from:
            out["replaced_from"] = list(self.replaced_from)
        return out


@dataclass(frozen=True)
class Refusal:
    round: int
    domain: str
    steps: list[str]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"round": self.round, "domain": self.domain, "steps": list(self.steps),
                "reason": self.reason}


@dataclass(frozen=True)
class Compensation:
    """One compensation of a FAILED or CANCELLED workflow (docs/sagas.md): a step's run
    in one domain (a step that ran in two domains has one in each)."""

    step: str
    domain: str
    state: str  # PENDING, RUNNING, COMPENSATED or COMPENSATION_FAILED
    attempts: int
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "domain": self.domain, "state": self.state,
                "attempts": self.attempts, "error": self.error}


@dataclass(frozen=True)
class WorkflowStatus:
    id: str
    name: str
    state: str  # PENDING, NEGOTIATING, RUNNING, SUCCEEDED, FAILED, ABORTED, CANCELLED
    coordinator: str
    reason: str
    steps: list[StepStatus] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    rounds: int = 0
    created_at_ms: int = 0
    updated_at_ms: int = 0
    # Sagas: NONE, RUNNING, DONE or FAILED (docs/sagas.md).
    compensation: str = "NONE"
    # The epoch of `coordinator`: 0 unless a participant took the workflow over.
    epoch: int = 0
    # Each compensation (empty when nothing is compensated).
    compensations: list[Compensation] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        """The workflow has ended (SUCCEEDED, FAILED, ABORTED or CANCELLED)."""
        return self.state in TERMINAL_STATES

    def step(self, step_id: str) -> StepStatus:
        """The step named ``step_id``; KeyError if the workflow has none."""
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    @classmethod
    def from_proto(cls, status: status_pb2.WorkflowStatus) -> WorkflowStatus:
        return cls(
            id=status.id, name=status.name,
            state=_name(status_pb2.WorkflowState, status.state, "WORKFLOW_STATE_"),
            coordinator=status.coordinator, reason=status.reason,
            steps=[StepStatus.from_proto(s) for s in status.steps],
            refusals=[Refusal(r.round, r.domain, list(r.steps), r.reason)
                      for r in status.refusals],
            rounds=status.rounds, created_at_ms=status.created_at_ms,
            updated_at_ms=status.updated_at_ms,
            compensation="NONE" if not status.compensation else _name(
                status_pb2.CompensationSummary, status.compensation, "COMPENSATION_SUMMARY_"),
            epoch=status.epoch,
            compensations=[Compensation(c.step, c.domain, c.state, c.attempts, c.error)
                           for c in status.compensations])

    def to_dict(self) -> dict[str, Any]:
        """The status JSON of `fedorch status --json`."""
        return {"id": self.id, "name": self.name, "state": self.state,
                "coordinator": self.coordinator, "epoch": self.epoch, "reason": self.reason,
                "compensation": self.compensation,
                "steps": [s.to_dict() for s in self.steps],
                "refusals": [r.to_dict() for r in self.refusals], "rounds": self.rounds,
                **({"compensations": [c.to_dict() for c in self.compensations]}
                   if self.compensations else {})}


@dataclass(frozen=True)
class Capability:
    name: str
    capacity: int
    available: int


@dataclass(frozen=True)
class Member:
    domain: str
    address: str
    state: str  # ALIVE, SUSPECT, DEAD, LEFT
    labels: dict[str, str]
    capabilities: list[Capability]
    incarnation: int
    version: int
    last_heard_ms: int
    is_self: bool  # the agent that answered ("self" in the JSON)

    @classmethod
    def from_proto(cls, member: client_pb2.MemberInfo) -> Member:
        return cls(
            domain=member.domain, address=member.address,
            state=_name(client_pb2.MemberState, member.state, "MEMBER_STATE_"),
            labels=dict(sorted(member.labels.items())),
            capabilities=[Capability(c.name, c.capacity, c.available)
                          for c in member.capabilities],
            incarnation=member.incarnation, version=member.version,
            last_heard_ms=member.last_heard_ms, is_self=member.self)

    def to_dict(self) -> dict[str, Any]:
        """The members JSON of `fedorch members --json` (one member)."""
        return {"domain": self.domain, "address": self.address, "state": self.state,
                "labels": dict(self.labels),
                "capabilities": [{"name": c.name, "capacity": c.capacity,
                                  "available": c.available} for c in self.capabilities],
                "incarnation": self.incarnation, "version": self.version,
                "last_heard_ms": self.last_heard_ms, "self": self.is_self}


__all__ = ["Capability", "Member", "Refusal", "StepStatus", "Submitted", "TERMINAL_STATES",
           "WorkflowStatus"]


@dataclass(frozen=True)
class Submitted:
    """One spec of ``submit_many``, in the order given: the id of the workflow it
    started (or, for a repeated request id, found), its final status with
    ``wait=True``, or ``error`` if the agent refused this spec (the others go on)."""

    index: int
    id: str = ""
    status: WorkflowStatus | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "id": self.id}
        if self.status is not None:
            out["status"] = self.status.to_dict()
        if self.error is not None:
            out["error"] = str(self.error)
        return out
