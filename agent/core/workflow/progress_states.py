"""The states a workflow's progress is made of: step states, outcomes, a step's record.

The values of the progress core (progress.py, whose header tells how a step moves
through them): a step's state and which states are terminal, a workflow's or fan-out
step's outcome, the progress of one step, and the attempt Progress hands its shell to
start. They are their own module because every part of the Node, the simulator and the
runtime reads them, apart from the rules that move them; progress.py imports them, and
they stay importable from there. The Node's codec registers this module's types
(runtime/node_codec.py), by name as before.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from fedorch.core.workflow.domain_loss import DEAD


class StepState(enum.StrEnum):
    PENDING = "PENDING"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    CANCELLED = "CANCELLED"
    # Sagas: set only by a workflow's compensation (core/workflow/compensation.py) on a
    # step that SUCCEEDED, after the workflow ended; Progress itself never moves to them.
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


TERMINAL_STEP_STATES = frozenset(
    {StepState.SUCCEEDED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED,
     StepState.COMPENSATED, StepState.COMPENSATION_FAILED}
)


class Outcome(enum.StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


@dataclass
class StepProgress:
    id: str
    capability: str
    needs: tuple[str, ...]
    domain: str
    max_attempts: int
    timeout_s: float | None
    params: dict
    idempotent: bool = False
    # Domain loss: the spec's on_domain_loss, the placement's epoch (fencing token) and
    # the domain a loss took the step from, and the state that made it lost (DEAD or
    # LEFT: its reason says which).
    on_domain_loss: str = "replace"
    epoch: int = 0
    lost_to: str = ""
    lost_as: str = DEAD
    # The domains this step was placed on before, oldest first (each lost, then the step
    # placed again by a new round: domain_lost, placed_again).
    replaced_from: list[str] = field(default_factory=list)
    state: StepState = StepState.WAITING
    attempts: int = 0
    outputs: dict = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True)
class StartAttempt:
    step_id: str
    attempt: int
    params: dict
    inputs: dict[str, dict]
    timeout_s: float | None
