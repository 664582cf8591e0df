"""Participant core: this domain's votes and reservations, sans I/O.

Theory of operation
-------------------
A PREPARE asks this domain to take some steps of a workflow in one round.
The domain's own policy decides (agent.policy.engine), counting the slots its
reservations already hold. A YES creates a reservation in state PREPARED with
a lease; the shell must make it durable before the vote leaves the agent.
A NO creates nothing.

The round's decision moves the reservation on:

    (state,    input)    -> next state   effect
    (none,     prepare)  -> PREPARED     vote YES (policy allows) / none, vote NO
    (PREPARED, prepare)  -> PREPARED     same vote again (duplicate)
    (PREPARED, commit)   -> COMMITTED    steps may run; slots held until each ends
    (PREPARED, abort)    -> none         slots released
    (COMMITTED, commit)  -> COMMITTED    duplicate
    (COMMITTED, abort)   -> error        a coordinator contradicting itself
    (none,     abort)    -> none         we voted NO, released, or the ABORT overtook
                                         its PREPARE (remembered: it cannot reserve later)
    (none,     commit)   -> error        we never voted YES in that round (or it aborted)
    (COMMITTED, step end)-> COMMITTED    slot released; none when the last ends

A YES voter never releases on a timer: when its lease passes without a
decision it is *in doubt* and asks (due_queries), again every query interval,
until a decision arrives. Decided rounds are remembered so that a PREPARE
delivered late, after its round was decided, cannot reserve again.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.gen.fedorch.v1 import config_pb2
from agent.negotiation.errors import RemoteProtocolError
from agent.policy.engine import evaluate_prepare

Key = tuple[str, int]  # (workflow_id, round)


class HoldState(enum.Enum):
    PREPARED = "prepared"
    COMMITTED = "committed"


@dataclass
class Hold:
    """A reservation: the slots of `steps` held for (workflow, round)."""

    workflow_id: str
    round: int
    coordinator: str
    state: HoldState
    steps: list[tuple[str, str]]  # (step_id, capability) still holding a slot
    lease_expires: float          # seconds, same clock as `now`
    coordinator_endpoint: str = ""
    next_query: float = field(default=0.0, compare=False)

    @property
    def key(self) -> Key:
        return (self.workflow_id, self.round)


@dataclass(frozen=True)
class VoteOut:
    yes: bool
    reason: str
    lease_expires: float
    hold: Hold | None   # to persist before the vote is sent (YES only)
    fresh: bool         # False when this repeats an earlier vote


class DecisionEffect(enum.Enum):
    COMMITTED = "committed"    # persist the hold as committed, start the steps
    RELEASED = "released"      # delete the hold
    NOTHING = "nothing"        # duplicate or nothing held


_DECIDED_MEMORY = 100_000


class Participant:
    def __init__(
        self,
        domain: str,
        policy: config_pb2.Policy,
        capacities: Mapping[str, int],
        *,
        lease_s: float,
        query_interval_s: float,
    ) -> None:
        self.domain = domain
        self._policy = policy
        self._capacities = dict(capacities)
        self._lease_s = lease_s
        self._query_interval_s = query_interval_s
        self._holds: dict[Key, Hold] = {}
        # How each closed round ended ("refused" with our reason, "aborted" or
        # "committed"), oldest first: late PREPAREs cannot reserve, and a decision
        # contradicting an earlier one is detected.
        self._closed: OrderedDict[Key, tuple[str, str]] = OrderedDict()

    def reconfigure(self, policy: config_pb2.Policy, capacities: Mapping[str, int]) -> None:
        """New policy and capacities (config reload); holds already granted stay valid."""
        self._policy = policy
        self._capacities = dict(capacities)

    # ---- state restored from disk ---------------------------------------------

    def restore(self, holds: Sequence[Hold]) -> None:
        for h in holds:
            self._holds[h.key] = h

    def holds(self) -> list[Hold]:
        return list(self._holds.values())

    def in_use(self) -> dict[str, int]:
        used: dict[str, int] = {}
        for h in self._holds.values():
            for _, cap in h.steps:
                used[cap] = used.get(cap, 0) + 1
        return used

    def available(self) -> dict[str, int]:
        used = self.in_use()
        return {c: max(0, n - used.get(c, 0)) for c, n in self._capacities.items()}

    # ---- inputs ------------------------------------------------------------------

    def prepare(
        self,
        now: float,
        *,
        workflow_id: str,
        round: int,
        coordinator: str,
        data_labels: Mapping[str, str],
        steps: Sequence[tuple[str, str]],
        coordinator_endpoint: str = "",
    ) -> VoteOut:
        key = (workflow_id, round)
        held = self._holds.get(key)
        if held is not None:
            return VoteOut(True, "", held.lease_expires, None, fresh=False)
        closed = self._closed.get(key)
        if closed is not None:
            how, reason = closed
            if how == "refused":
                return VoteOut(False, reason, now, None, fresh=False)
            return VoteOut(False, "round already decided", now, None, fresh=False)
        if not steps:
            raise RemoteProtocolError("PREPARE asks this domain for no steps")
        coordinator_in_use = sum(
            len(h.steps) for h in self._holds.values() if h.coordinator == coordinator
        )
        verdict = evaluate_prepare(
            self._policy,
            coordinator=coordinator,
            data_labels=data_labels,
            steps=list(steps),
            capacities=self._capacities,
            in_use=self.in_use(),
            coordinator_in_use=coordinator_in_use,
        )
        if not verdict.yes:
            self._close(key, "refused", verdict.reason)
            return VoteOut(False, verdict.reason, now, None, fresh=True)
        lease = now + self._lease_s
        hold = Hold(
            workflow_id, round, coordinator, HoldState.PREPARED, list(steps), lease,
            coordinator_endpoint, next_query=lease,
        )
        self._holds[key] = hold
        return VoteOut(True, "", lease, hold, fresh=True)

    def decide(self, now: float, workflow_id: str, round: int, commit: bool) -> DecisionEffect:
        key = (workflow_id, round)
        held = self._holds.get(key)
        if held is None:
            how = self._closed.get(key, ("", ""))[0]
            if commit and how != "committed":
                raise RemoteProtocolError(
                    f"COMMIT for {workflow_id} round {round}, where this domain holds no YES vote"
                )
            if not commit and how == "committed":
                raise RemoteProtocolError(f"ABORT after COMMIT for {workflow_id} round {round}")
            if not commit and not how:
                self._close(key, "aborted", "aborted before its PREPARE arrived")
            return DecisionEffect.NOTHING
        if held.state is HoldState.COMMITTED:
            if not commit:
                raise RemoteProtocolError(f"ABORT after COMMIT for {workflow_id} round {round}")
            return DecisionEffect.NOTHING
        if commit:
            held.state = HoldState.COMMITTED
            return DecisionEffect.COMMITTED
        del self._holds[key]
        self._close(key, "aborted", "aborted")
        return DecisionEffect.RELEASED

    def step_ended(self, workflow_id: str, step_id: str) -> Hold | None:
        """Release one step's slot. Returns the hold (possibly with no steps left)."""
        for h in self._holds.values():
            if h.workflow_id == workflow_id and h.state is HoldState.COMMITTED:
                before = len(h.steps)
                h.steps = [(s, c) for s, c in h.steps if s != step_id]
                if len(h.steps) != before:
                    if not h.steps:
                        del self._holds[h.key]
                        self._close(h.key, "committed", "finished")
                    return h
        return None

    def release_workflow(self, workflow_id: str) -> list[Hold]:
        """The workflow ended (cancelled, failed): release whatever it still holds."""
        gone = [h for h in self._holds.values() if h.workflow_id == workflow_id
                and h.state is HoldState.COMMITTED]
        for h in gone:
            del self._holds[h.key]
            self._close(h.key, "committed", "finished")
        return gone

    # ---- timers ------------------------------------------------------------------

    def get_timer(self) -> float | None:
        pending = [h.next_query for h in self._holds.values() if h.state is HoldState.PREPARED]
        return min(pending) if pending else None

    def due_queries(self, now: float) -> list[Hold]:
        """In-doubt holds whose lease (or last query) has passed: ask for the decision."""
        due = []
        for h in self._holds.values():
            if h.state is HoldState.PREPARED and h.next_query <= now:
                h.next_query = now + self._query_interval_s
                due.append(h)
        return due

    def _close(self, key: Key, how: str, reason: str) -> None:
        self._closed[key] = (how, reason)
        self._closed.move_to_end(key)
        while len(self._closed) > _DECIDED_MEMORY:
            self._closed.popitem(last=False)
