"""One workflow's coordinator core, driven: its actions in order, its timer, its inputs.

Built by Coordination (agent/runtime/coordination.py) for each workflow whose core
still has work: its admission, then (Paxos Commit) resending COMMIT until every
participant has it. The driver owns the core's event queue; what comes in (a vote, a
consensus reply, an acknowledgement, a step result, a decision query, a cancel, the
workflow's end) is put there by the shells that learn it.

Timers, not ticks: the driver sleeps until its core's timer, or until an event. A
committed workflow's core often has no timer (its COMMIT is out; a participant has not
acknowledged it yet, and its step may run for hours): the driver then sleeps with no
deadline. What it waits for then is the workflow's end, which Coordination turns into
an event (ENDED, from AgentContext's on_settled hooks: every end goes through
AgentContext.finished), not something it looks for every so often. From the end on,
participants still silent get ACK_GRACE_S to acknowledge: that is a deadline of its own.
Every return from a wait is counted in fedorch_loop_wakeups_total{loop="coordinator
driver"}, and `deadline`/`parked` say what the driver sleeps towards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedorch.core.negotiation.coordinator import (
    Coordinator,
    PersistProposal,
    Phase,
    Send,
    VoteIn,
)
from fedorch.core.negotiation.errors import ProtocolError
from fedorch.core.negotiation.messages import Accept
from fedorch.runtime.context import Active
from fedorch.runtime.coordination_log import NO_ANSWER

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext
    from fedorch.runtime.coordination_log import DecisionLog

log = logging.getLogger("fedorch.coordinator")

CANCEL = object()  # the client cancels the workflow
ENDED = object()  # the workflow ended here (see Coordination._settled)
# How long a committed workflow's core outlives the workflow while participants have not
# acknowledged the COMMIT: past a participant's delayed DecisionAck (ACK_AFTER_S) and the
# first COMMIT notice (commit_notice_s). After it the record is kept (keeping is safe) and
# the certificate sweep (CoordinatorLog.sweep_certificates) offers it to them again.
ACK_GRACE_S = 2.0
ADMITTING = frozenset({Phase.IDLE, Phase.PREPARING, Phase.DECIDING})


@dataclass(frozen=True)
class ProposeAndAccept:
    """The core's COMMIT proposal cell and its Accept to our own acceptor, which follows
    it: written in one transaction (Consensus.accept_own)."""

    proposal: PersistProposal
    accept: Accept


def own_accepts(actions: list, me: str) -> list:
    """`actions` with each PersistProposal(COMMIT) that is followed by the Send of its
    Accept to our own acceptor (the proposer asks its own acceptor first) made one."""
    out: list = []
    for action in actions:
        if isinstance(action, Send) and action.to == me and isinstance(action.msg, Accept) \
                and out and isinstance(out[-1], PersistProposal) and out[-1].value.commit:
            out[-1] = ProposeAndAccept(out[-1], action.msg)
        else:
            out.append(action)
    return out


# Runs one action: (action, the driver's task group, the PREPARE calls in flight).
Act = Callable[[object, asyncio.TaskGroup, dict], Awaitable[None]]


class CoreDriver:
    """Drives one core until it has nothing left to do. `act` runs an action (it is
    Coordination's: it persists and sends); `detach` stops routing events here (called
    once, first thing when the driver stops, so that no query is put after the last
    look at the queue)."""

    def __init__(self, agent: AgentContext, decision_log: DecisionLog, active: Active,
                 core: Coordinator, events: asyncio.Queue, *, act: Act,
                 detach: Callable[[], None]) -> None:
        self.agent = agent
        self.decision_log = decision_log
        self.active = active
        self.core = core
        self.events = events
        self._act = act
        self._detach = detach
        # Set once the core is past admission (or the driver stopped): a cancel waits on it.
        self.admitted = asyncio.Event()
        if core.phase not in ADMITTING:  # restored with its decision
            self.admitted.set()
        self.deadline: float | None = None  # what the current (or last) wait runs towards
        self.parked = False  # waiting right now
        self.wakeups = 0
        self._counter = agent.metrics.loop_wakeups.labels("coordinator driver")

    async def run(self, first: list | None = None) -> None:
        """Run the core until it has nothing left to do. `first`: actions already taken
        from it (its start), run before any other."""
        a = self.agent
        core = self.core
        wf = core.workflow_id
        answers: list[tuple[asyncio.Future, object]] = []
        calls: dict[tuple[str, int], asyncio.Task] = {}  # PREPAREs in flight
        ended_at: float | None = None  # when the committed workflow was seen ended
        try:
            async with asyncio.TaskGroup() as tg:
                pending = list(first or ())
                while True:
                    for action in own_accepts([*pending, *core.next_actions()], a.domain):
                        await self._act(action, tg, calls)
                    pending.clear()
                    for future, answer in answers:  # only once what they say is on disk
                        if not future.done():
                            future.set_result(answer)
                    answers.clear()
                    if core.phase not in ADMITTING:
                        self.admitted.set()
                    if core.awaiting_acks() and wf not in a.active:
                        # It ended before every acknowledgement came: a participant
                        # whose step succeeded had learned the COMMIT to run it.
                        self.decision_log.acks_from_results(self.active, core)
                        await self.decision_log.collect(self.active, core)
                        ended_at = a.now() if ended_at is None else ended_at
                    if self._over(ended_at):
                        break
                    event = await self._next_event(self._deadline(ended_at))
                    if event is None:
                        core.handle_timer(a.now())
                        continue
                    try:
                        answer = self._apply(event)
                    except ProtocolError as e:
                        log.warning("%s: %s", wf, e)
                        answer = NO_ANSWER
                    if isinstance(event, tuple) and event[0] == "query":
                        answers.append((event[2], answer))
                    elif isinstance(event, tuple) and event[0] in ("ack", "result"):
                        await self.decision_log.collect(self.active, core)
                for call in calls.values():  # late replies can only be for a decided round
                    call.cancel()
        finally:
            self._detach()
            self.admitted.set()
            while not self.events.empty():  # queries that came too late: the log answers
                event = self.events.get_nowait()
                if isinstance(event, tuple) and event[0] == "query":
                    answers.append((event[2], None))
            for future, _ in answers:
                if not future.done():
                    future.set_result(None)

    def _deadline(self, ended_at: float | None) -> float | None:
        """The core's timer; and, once the workflow ended with participants silent, the
        end of their grace. None: only an event ends the wait."""
        timer = self.core.get_timer()
        if ended_at is not None and self.core.awaiting_acks():
            grace = ended_at + ACK_GRACE_S
            timer = grace if timer is None else min(timer, grace)
        return timer

    async def _next_event(self, deadline: float | None) -> object | None:
        """The next event, or None when `deadline` came first."""
        self.deadline = deadline
        wait = None if deadline is None else max(0.0, deadline - self.agent.now())
        self.parked = True
        try:
            async with asyncio.timeout(wait):  # no task per wait, unlike wait_for
                return await self.events.get()
        except TimeoutError:
            return None
        finally:
            self.parked = False
            self.wakeups += 1
            self._counter.inc()

    def _over(self, ended_at: float | None) -> bool:
        core = self.core
        if core.phase is Phase.ABORTED:
            return True
        if core.phase is Phase.COMMITTED:
            # Every participant holds the COMMIT; or the workflow ended and those that
            # have not said so (their steps never ran) had ACK_GRACE_S to do it: their
            # DecisionAck, or their answer to the COMMIT notice, lets the record go.
            return not core.awaiting_acks() or (
                core.workflow_id not in self.agent.active and ended_at is not None
                and self.agent.now() - ended_at >= ACK_GRACE_S)
        return False

    def _apply(self, event: object) -> object:
        core = self.core
        now = self.agent.now()
        if event is CANCEL:
            core.cancel(now, "by request")
        elif event is ENDED:
            pass  # nothing for the core: the loop looks at the end
        elif isinstance(event, VoteIn):
            core.receive_vote(now, event)
        elif isinstance(event, tuple) and event[0] == "paxos":
            core.receive_paxos(now, event[1])
        elif isinstance(event, tuple) and event[0] == "ack":
            core.receive_ack(now, event[1], event[2])
        elif isinstance(event, tuple) and event[0] == "result":
            core.receive_result(now, event[1])
        elif isinstance(event, tuple) and event[0] == "query":
            return core.answer_query(now, event[1])
        return None
