"""What a Node takes in: `Node.step(now, input)` with one of these."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from fedorch.gen.fedorch.v1 import spec_pb2


class Message(NamedTuple):
    """A peer's message, its sender verified and its authority checked. A named tuple,
    not a frozen dataclass: as immutable, built for every message a Node takes, and
    a tuple is built without a store through object.__setattr__ per field."""

    src: str
    msg: object


@dataclass(frozen=True)
class Acks:
    """Acknowledgements from one peer, taken in one step (negotiation.py, `take_acks`):
    the `AckMsg`s and `DecisionAck`s of one run of consecutive messages of one envelope,
    in their order, its sender verified once and each checked against the authority table
    (authority.check_acks). Nothing an acknowledgement does depends on a message between
    it and the next one of the run (there is none), so one step does what one step per
    acknowledgement did, for one pass of the driver's layers and one step of the Node."""

    src: str
    acks: tuple[object, ...]


@dataclass(frozen=True)
class Submit:
    """A client's workflow, taken here: this agent coordinates it."""

    workflow_id: str
    spec: spec_pb2.WorkflowSpec
    submission: spec_pb2.SignedSpec | None = None
    placement: dict[str, str] | None = None  # the placer's first choice, if any
    # The steps that placer found no domain for, each with why: the workflow is taken
    # and ends ABORTED with them at once, no round (submitting.py).
    unplaceable: dict[str, str] | None = None
    # The client's request id: kept with the workflow's row (Disk.requests), so that a
    # retry after a restart is answered with the same workflow (cancel.py, "Request ids").
    request_id: str = ""


@dataclass(frozen=True)
class Cancel:
    """A client's cancel of a workflow this agent coordinates (cancel.py): its round
    aborted while it negotiates, its steps stopped and its participants told while it
    runs; an ended workflow keeps its end."""

    workflow_id: str
    reason: str = "by request"


@dataclass(frozen=True)
class StepEnded:
    """An executor finished an attempt the Node started (start_steps)."""

    workflow_id: str
    step_id: str
    attempt: int
    ok: bool
    outputs: dict = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class CompensationEnded:
    """An executor finished a compensation attempt the Node started (a start_steps
    entry (workflow, step, attempt, "compensate"): compensating.py)."""

    workflow_id: str
    step_id: str
    attempt: int
    ok: bool
    error: str = ""


@dataclass(frozen=True)
class Tick:
    """The deadline `get_timer()` named has come."""


@dataclass(frozen=True)
class MemberState:
    """The driver's membership view of `domain` changed (ALIVE, SUSPECT, DEAD, LEFT; ""
    when it knows the domain no more). A driver posts every member's state once after a
    restore (the view a restarted agent has is its membership's, not its disk's), then
    each change; coordinator takeover reads it (takeover.py)."""

    domain: str
    state: str


@dataclass(frozen=True)
class MemberViews:
    """Several members' states changed at one look at the membership view (none, when
    the look only heard a doubt of this domain: `doubted`): every one is applied before
    anything acts on them, so no decision reads a view half told (a takeover watch
    woken by one member's DEAD must not read the coordinator's state as it was before
    the same look found it ALIVE again)."""

    changes: tuple[MemberState, ...]
    # Membership heard a doubt of this domain since its last look: a SUSPECT or DEAD
    # claim about us, which it refuted (or which named an incarnation we had moved past
    # already). Whoever holds that doubt may not have heard the refutation: a cut one
    # way, where our messages do not get out, looks like this from inside. Starts here
    # ask their coordinator first until it answers (start_asks.py).
    doubted: bool = False
