"""Workflow lifecycle core: the states one workflow passes through, on one table.

Theory of operation
-------------------
Every agent that knows a workflow keeps one row for it, and the row's state is
one of the proto's `WorkflowState` values. The coordinator records a submitted
workflow as NEGOTIATING; admission then either commits it (RUNNING) or ends it
without a commit: ABORTED when the rounds ran out, were refused or presumed
aborted, CANCELLED when a cancel request ended the round. A participant has no
row before it learns the COMMIT (PENDING, "not on record"): its row is born
RUNNING, or already ended when the coordinator's end notice came first (the row
is kept so that a late COMMIT cannot start the workflow here). A running
workflow ends SUCCEEDED when every step has, FAILED as soon as one step has,
CANCELLED on request; a participant takes its end from the coordinator's notice.

Nothing leaves a terminal state. The inputs that can come late or twice (a
repeated COMMIT, a second end notice, a cancel or a step outcome after the end)
leave the state as it is; a shell learns from `step` returning the same state
that there is nothing to do. A cancel is its own input (`Cancelled`), never
read out of an abort's reason.

Transitions (one table, `_TABLE`, keyed by (state, input type)); "final" is the
terminal state an end notice carries:

    (state,       input)      -> state
    (PENDING,     Submitted)  -> NEGOTIATING  the coordinator records a submission
    (PENDING,     Committed)  -> RUNNING      a participant sets the workflow up
    (PENDING,     Ended)      -> final        the end notice came before the COMMIT
    (NEGOTIATING, Committed)  -> RUNNING      the COMMIT is on record
    (NEGOTIATING, Aborted)    -> ABORTED      refused, timed out or presumed aborted
    (NEGOTIATING, Cancelled)  -> CANCELLED    a cancel ended the round
    (RUNNING,     Committed)  -> RUNNING      a repeated COMMIT
    (RUNNING,     Succeeded)  -> SUCCEEDED    every step succeeded
    (RUNNING,     Failed)     -> FAILED       a step failed
    (RUNNING,     Cancelled)  -> CANCELLED    cancelled on request
    (RUNNING,     Ended)      -> final        the coordinator's end notice
    (terminal,    Committed | Succeeded | Failed | Cancelled | Ended) -> same

Any pair missing from the table is a protocol error at this one input boundary:
RemoteProtocolError for an end notice (a peer's input: refuse it, change
nothing), LocalProtocolError for the others (this agent's own shell drove the
lifecycle wrongly: a bug here).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar

from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.gen.fedorch.v1 import status_pb2


class WorkflowState(enum.IntEnum):
    """The proto's WorkflowState values (UNSPECIFIED is not a state a workflow is in);
    a member's name is the state's name on disk and in the CLI."""

    PENDING = status_pb2.WORKFLOW_STATE_PENDING
    NEGOTIATING = status_pb2.WORKFLOW_STATE_NEGOTIATING
    RUNNING = status_pb2.WORKFLOW_STATE_RUNNING
    SUCCEEDED = status_pb2.WORKFLOW_STATE_SUCCEEDED
    FAILED = status_pb2.WORKFLOW_STATE_FAILED
    ABORTED = status_pb2.WORKFLOW_STATE_ABORTED
    CANCELLED = status_pb2.WORKFLOW_STATE_CANCELLED


# The one terminal set: every other module imports it (or its names) from here.
TERMINAL = frozenset({WorkflowState.SUCCEEDED, WorkflowState.FAILED,
                      WorkflowState.ABORTED, WorkflowState.CANCELLED})
TERMINAL_NAMES = frozenset(s.name for s in TERMINAL)
# The ends whose SUCCEEDED steps a saga compensates (the saga parts and their checks).
OWING = frozenset({WorkflowState.FAILED, WorkflowState.CANCELLED})


# ---- inputs --------------------------------------------------------------------------

@dataclass(frozen=True)
class Event:
    # Whether the input comes from a peer: a missing pair is then the peer's fault.
    remote: ClassVar[bool] = False
    # The row's reason after the change; None keeps the reason it has.
    reason: str | None = None


@dataclass(frozen=True)
class Submitted(Event):
    """The coordinator records a new submission."""


@dataclass(frozen=True)
class Committed(Event):
    """The COMMIT of the workflow is on record here."""


@dataclass(frozen=True)
class Aborted(Event):
    """Admission ended without a commit, for a reason other than a cancel."""

    reason: str = ""


@dataclass(frozen=True)
class Cancelled(Event):
    """A cancel request ended the workflow (or its admission round)."""

    reason: str = ""


@dataclass(frozen=True)
class Succeeded(Event):
    """Every step succeeded."""

    reason: str = ""


@dataclass(frozen=True)
class Failed(Event):
    """A step failed (reason: which, and why)."""

    reason: str = ""


@dataclass(frozen=True)
class Ended(Event):
    """The coordinator's end notice: the workflow ended there in `final`."""

    remote: ClassVar[bool] = True
    final: WorkflowState = WorkflowState.CANCELLED
    reason: str = ""

    def __post_init__(self) -> None:
        if self.final not in TERMINAL:
            raise RemoteProtocolError(
                f"an end notice must carry a terminal state, not {_name(self.final)}")
        object.__setattr__(self, "final", WorkflowState(self.final))

    @classmethod
    def from_wire(cls, final_state: int, reason: str) -> Ended:
        """An end notice's state as received: RemoteProtocolError unless terminal."""
        return cls(final=final_state, reason=reason)  # type: ignore[arg-type]


def _name(value: int) -> str:
    try:
        return status_pb2.WorkflowState.Name(value)
    except ValueError:
        return f"unknown state {value}"


class _Final:
    """Table target: the terminal state the input carries (an end notice's)."""


class _Same:
    """Table target: the state does not change (a late or repeated input)."""


FINAL = _Final()
SAME = _Same()
Target = WorkflowState | _Final | _Same

_P, _N, _R = WorkflowState.PENDING, WorkflowState.NEGOTIATING, WorkflowState.RUNNING

_TABLE: dict[tuple[WorkflowState, type[Event]], Target] = {
    (_P, Submitted): _N,
    (_P, Committed): _R,
    (_P, Ended): FINAL,
    (_N, Committed): _R,
    (_N, Aborted): WorkflowState.ABORTED,
    (_N, Cancelled): WorkflowState.CANCELLED,
    (_R, Committed): SAME,
    (_R, Succeeded): WorkflowState.SUCCEEDED,
    (_R, Failed): WorkflowState.FAILED,
    (_R, Cancelled): WorkflowState.CANCELLED,
    (_R, Ended): FINAL,
    **{(t, kind): SAME for t in TERMINAL
       for kind in (Committed, Succeeded, Failed, Cancelled, Ended)},
}
EVENT_TYPES: tuple[type[Event], ...] = (Submitted, Committed, Aborted, Cancelled, Succeeded,
                                        Failed, Ended)


def target(state: WorkflowState, kind: type[Event]) -> Target | None:
    """The table's entry for (state, input type); None if the pair is not allowed."""
    return _TABLE.get((state, kind))


def step(state: WorkflowState, event: Event) -> WorkflowState:
    """The state after `event`; ProtocolError (nothing changes) if not allowed."""
    to = _TABLE.get((WorkflowState(state), type(event)))
    if to is None:
        error = RemoteProtocolError if event.remote else LocalProtocolError
        raise error(f"workflow {WorkflowState(state).name}: {type(event).__name__} "
                    "is not allowed")
    if to is SAME:
        return WorkflowState(state)
    if to is FINAL:
        assert isinstance(event, Ended)
        return event.final
    assert isinstance(to, WorkflowState)
    return to
