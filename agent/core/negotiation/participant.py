"""Participant core: this domain's votes and reservations, sans I/O.

Theory of operation
-------------------
A PREPARE asks this domain to take some steps of a workflow in one round.
The domain's own policy decides (agent.policy.engine), counting the slots its
reservations already hold. A NO creates no hold (the round is remembered as
refused: `voted_no`, and a PREPARE of it again gets the same NO; a classic NO its
owner keeps as the round's ABORT too). A YES creates a reservation
with a lease, and the shell makes it durable before the vote leaves the agent:

* prepare(): one record, state PREPARED (the prepare record: "voted YES");
* reserve() then confirm_yes(): two records, RESERVED (capacity held, no vote
  yet) and then PREPARED, forced before the YES is sent. A shell that crashes
  in between leaves a RESERVED hold: it never voted YES, so it ends with its
  lease (expire()). A YES voter never releases on a timer.

With consensus (the PREPARE carries a TxInfo), an in-doubt YES voter is handed
to agent.negotiation.termination.Termination; without it, due_queries() asks
the coordinator every query interval (classic 2PC).

Transitions (decisions in `_DECIDE`; any pair not listed is RemoteProtocolError):

    (state,     input)       -> next state   effect
    (none,      prepare)     -> PREPARED     vote YES (policy allows) / none, vote NO
    (none,      reserve)     -> RESERVED     policy allows (no vote yet) / none, vote NO
    (RESERVED,  confirm_yes) -> PREPARED     the YES may now leave (lease not passed)
    (RESERVED,  prepare|reserve) -> same     repeat (the shell confirms again)
    (RESERVED,  lease ends)  -> none         released ("expired"; a later PREPARE gets NO)
    (PREPARED,  prepare)     -> PREPARED     same vote again (duplicate)
    (PREPARED,  commit)      -> COMMITTED    steps may run; slots held until each ends
    (PREPARED,  abort)       -> none         slots released
    (RESERVED,  abort)       -> none         slots released
    (RESERVED,  commit)      -> error        no YES was ever sent
    (COMMITTED, commit)      -> COMMITTED    duplicate
    (COMMITTED, abort)       -> error        a coordinator contradicting itself
    (none,      abort)       -> none         we voted NO, released, or the ABORT overtook
                                             its PREPARE (remembered: it cannot reserve later)
    (none,      commit)      -> error        we never voted YES in that round (or it aborted)
    (COMMITTED, step end)    -> COMMITTED    slot released; none when the last ends

Decided rounds are remembered (and restored from the shell's log with
restore(..., decided=...)) so that a PREPARE delivered late, after its round was
decided, cannot reserve again.

Timers without a scan: the leases of RESERVED holds (expiry_timer, expire) and the
next queries of classic PREPARED holds (get_timer, due_queries) are kept in heaps
(participant_timers), not found by walking every hold on each driver turn.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import ROUND_DECIDED, Key, TxInfo
from fedorch.core.negotiation.participant_timers import HoldTimers
from fedorch.core.policy.engine import PolicyContext, evaluate_prepare
from fedorch.gen.fedorch.v1 import config_pb2


class HoldState(enum.Enum):
    RESERVED = "reserved"    # capacity held, no YES recorded: ends with its lease
    PREPARED = "prepared"    # YES recorded (and maybe sent): never released on a timer
    COMMITTED = "committed"


@dataclass
class Hold:
    """A reservation: the slots of `steps` held for (workflow, round)."""

    workflow_id: str
    round: int
    coordinator: str
    state: HoldState
    steps: list[tuple[str, str]]  # (step_id, capability) still holding a slot
    # Seconds on the clock of `now`: a monotonic clock, meaningless after a reboot
    # (restarted() below counts it again from a restore).
    lease_expires: float
    coordinator_endpoint: str = ""
    next_query: float = field(default=0.0, compare=False)
    tx: TxInfo | None = field(default=None, compare=False)  # consensus: who decides

    @property
    def key(self) -> Key:
        return (self.workflow_id, self.round)


def restarted(hold: Hold, now: float, lease_s: float) -> Hold:
    """`hold` as read back from disk by an agent restarted at `now`: its lease (and the
    first query of a classic 2PC hold) counted again from the restore.

    The stored `lease_expires` is an instant of the monotonic clock of the run that
    wrote it; after a reboot that clock started again, so the instant is far in the
    future or long past on the clock of `now`, and nothing tells which. What each
    state needs of its lease, and why a whole lease from the restore gives it:

    * RESERVED (no YES recorded): ends with its lease. Counted from the restore it ends
      no earlier than its lease would have (it was written before the restart), so
      nothing is released early; it ends at most the agent's downtime late, and no YES
      of it was ever sent: the round aborts without it.
    * PREPARED (YES recorded): never released on a timer; the lease only says when to
      first ask about the decision (Termination.track, due_queries). A later first ask
      is safe, and it comes within one lease of the restore.
    * COMMITTED: the lease is not used (its slots go as its steps end).
    """
    lease = now + lease_s
    return replace(hold, steps=list(hold.steps), lease_expires=lease, next_query=lease)


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
        # Counts kept as holds come, shrink and go (only through _add, _shrink and _drop;
        # a hold's steps change nowhere else), so that a PREPARE or a step's end does not
        # walk every hold: at the peak an agent holds hundreds, and at 512 submitters
        # those walks drew a tenth of a participant's samples of Python code.
        self._used: dict[str, int] = {}            # capability -> slots held
        self._held_for: dict[str, int] = {}        # coordinator -> slots held for it
        self._keys_of: dict[str, set[Key]] = {}    # workflow -> its holds' keys
        # How each closed round ended ("refused" with our reason, "aborted",
        # "expired" or "committed"), oldest first: late PREPAREs cannot reserve,
        # and a decision contradicting an earlier one is detected.
        self._closed: OrderedDict[Key, tuple[str, str]] = OrderedDict()
        # RESERVED holds by lease, classic PREPARED holds by next query (see the header).
        self._timers = HoldTimers(self._holds, _leased, _queried)

    def reconfigure(self, policy: config_pb2.Policy, capacities: Mapping[str, int]) -> None:
        """New policy and capacities (config reload); holds already granted stay valid."""
        self._policy = policy
        self._capacities = dict(capacities)

    # ---- state restored from disk ---------------------------------------------

    def restore(self, holds: Sequence[Hold], decided: Mapping[Key, bool] | None = None) -> None:
        """Holds from disk, and the decisions on record (True: COMMIT) for closed rounds."""
        for key, commit in (decided or {}).items():
            if key not in self._holds:
                self._close(key, "committed" if commit else "aborted", "restored")
        for h in holds:
            self._add(h)
            self._closed.pop(h.key, None)

    def holds(self) -> list[Hold]:
        return list(self._holds.values())

    def hold(self, key: Key) -> Hold | None:
        return self._holds.get(key)

    def keys_of(self, workflow_id: str) -> list[Key]:
        """The keys of the holds this domain has in `workflow_id` (any round)."""
        return sorted(self._keys_of.get(workflow_id, ()))

    def status(self, key: Key) -> str | None:
        """The hold's state (reserved, prepared, committed), or how the round closed, or None."""
        held = self._holds.get(key)
        if held is not None:
            return held.state.value
        closed = self._closed.get(key)
        return closed[0] if closed is not None else None

    def voted_no(self, key: Key) -> bool:
        """Did this domain refuse round `key` with no YES of it ever recorded (the
        policy's or a constraint's NO, or a reservation whose lease passed before its
        YES)? Such a round can never commit: a COMMIT needs our YES. False once the
        memory of the round is gone (then its owner's record says it: core/node/
        no_votes.py keeps a classic NO as the round's ABORT)."""
        closed = self._closed.get(key)
        return closed is not None and closed[0] in ("refused", "expired")

    def in_use(self) -> dict[str, int]:
        return dict(self._used)

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
        tx: TxInfo | None = None,
        context: PolicyContext | None = None,
        principal: str = "",
    ) -> VoteOut:
        """Vote; a YES hold is PREPARED at once (persist it, then send the vote)."""
        out = self.reserve(now, workflow_id=workflow_id, round=round, coordinator=coordinator,
                           data_labels=data_labels, steps=steps,
                           coordinator_endpoint=coordinator_endpoint, tx=tx, context=context,
                           principal=principal)
        if out.hold is None or out.hold.state is not HoldState.RESERVED:
            return out
        hold = self.confirm_yes(now, out.hold.key)
        if hold is None:
            return VoteOut(False, "lease expired", now, None, fresh=False)
        return VoteOut(True, "", hold.lease_expires, hold, out.fresh)

    def reserve(
        self,
        now: float,
        *,
        workflow_id: str,
        round: int,
        coordinator: str,
        data_labels: Mapping[str, str],
        steps: Sequence[tuple[str, str]],
        coordinator_endpoint: str = "",
        tx: TxInfo | None = None,
        context: PolicyContext | None = None,
        principal: str = "",
        refusal: str = "",
    ) -> VoteOut:
        """First half of a YES: a RESERVED hold; confirm_yes() makes it PREPARED. The
        daemon persists once after both (no await between them); the simulator persists
        each, so that a crash can fall between them. `refusal`: a reason this domain
        refuses the steps whatever its policy says (a step's own constraints:
        core/node/votes.py), voted as the policy's NO: a round already held or closed
        keeps its vote."""
        key = (workflow_id, round)
        if tx is not None and (tx.key != key or tx.coordinator != coordinator
                               or self.domain not in tx.participants):
            raise RemoteProtocolError("the PREPARE's transaction does not match it")
        held = self._holds.get(key)
        if held is not None and held.state is HoldState.RESERVED and now >= held.lease_expires:
            self._expire(held)
            held = None
        if held is not None:
            if held.state is HoldState.RESERVED:
                return VoteOut(True, "", held.lease_expires, held, fresh=False)
            return VoteOut(True, "", held.lease_expires, None, fresh=False)
        closed = self._closed.get(key)
        if closed is not None:
            how, reason = closed
            if how == "refused":
                return VoteOut(False, reason, now, None, fresh=False)
            return VoteOut(False, ROUND_DECIDED, now, None, fresh=False)
        if not steps:
            raise RemoteProtocolError("PREPARE asks this domain for no steps")
        if refusal:
            self._close(key, "refused", refusal)
            return VoteOut(False, refusal, now, None, fresh=True)
        verdict = evaluate_prepare(
            self._policy,
            coordinator=coordinator,
            data_labels=data_labels,
            steps=list(steps),
            capacities=self._capacities,
            in_use=self._used,
            coordinator_in_use=self._held_for.get(coordinator, 0),
            context=context,  # the data-flow checks: labels along the DAG, egress
            principal=principal,  # the submitter, as its signed spec and coordinator say
        )
        if not verdict.yes:
            self._close(key, "refused", verdict.reason)
            return VoteOut(False, verdict.reason, now, None, fresh=True)
        lease = now + self._lease_s
        hold = Hold(
            workflow_id, round, coordinator, HoldState.RESERVED, list(steps), lease,
            coordinator_endpoint, next_query=lease, tx=tx,
        )
        self._add(hold)
        return VoteOut(True, "", lease, hold, fresh=True)

    def confirm_yes(self, now: float, key: Key) -> Hold | None:
        """Record the YES (the hold becomes PREPARED: persist it before the vote leaves).

        None when the reservation's lease passed first: it was released; vote NO.
        """
        held = self._holds.get(key)
        if held is None:
            raise LocalProtocolError(f"no reservation for {key} to confirm")
        if held.state is not HoldState.RESERVED:
            return held
        if now >= held.lease_expires:
            self._expire(held)
            return None
        held.state = HoldState.PREPARED
        self._timers.timed(held)
        return held

    def decide(self, now: float, workflow_id: str, round: int, commit: bool) -> DecisionEffect:
        key = (workflow_id, round)
        held = self._holds.get(key)
        state = held.state if held is not None else None
        return _DECIDE[(state, commit)](self, key, held)

    def step_ended(self, workflow_id: str, step_id: str) -> Hold | None:
        """Release one step's slot. Returns the hold (possibly with no steps left)."""
        for key in sorted(self._keys_of.get(workflow_id, ())):
            h = self._holds[key]
            if h.state is HoldState.COMMITTED:
                kept = [(s, c) for s, c in h.steps if s != step_id]
                if len(kept) != len(h.steps):
                    self._shrink(h, kept)
                    if not h.steps:
                        self._drop(h)
                        self._close(h.key, "committed", "finished")
                    return h
        return None

    def release_workflow(self, workflow_id: str) -> list[Hold]:
        """The workflow ended (cancelled, failed): release whatever it still holds."""
        gone = [self._holds[key] for key in sorted(self._keys_of.get(workflow_id, ()))
                if self._holds[key].state is HoldState.COMMITTED]
        for h in gone:
            self._drop(h)
            self._close(h.key, "committed", "finished")
        return gone

    # ---- decisions (the `_DECIDE` table) -------------------------------------------

    def _commit_prepared(self, key: Key, held: Hold | None) -> DecisionEffect:
        assert held is not None
        held.state = HoldState.COMMITTED
        return DecisionEffect.COMMITTED

    def _release(self, key: Key, held: Hold | None) -> DecisionEffect:
        assert held is not None
        self._drop(held)
        self._close(key, "aborted", "aborted")
        return DecisionEffect.RELEASED

    def _duplicate(self, key: Key, held: Hold | None) -> DecisionEffect:
        return DecisionEffect.NOTHING

    def _abort_after_commit(self, key: Key, held: Hold | None) -> DecisionEffect:
        raise RemoteProtocolError(f"ABORT after COMMIT for {key[0]} round {key[1]}")

    def _commit_unvoted(self, key: Key, held: Hold | None) -> DecisionEffect:
        raise RemoteProtocolError(
            f"COMMIT for {key[0]} round {key[1]}, where this domain sent no YES vote"
        )

    def _commit_unheld(self, key: Key, held: Hold | None) -> DecisionEffect:
        if self._closed.get(key, ("", ""))[0] != "committed":
            return self._commit_unvoted(key, held)
        return DecisionEffect.NOTHING

    def _abort_unheld(self, key: Key, held: Hold | None) -> DecisionEffect:
        how = self._closed.get(key, ("", ""))[0]
        if how == "committed":
            return self._abort_after_commit(key, held)
        if not how:
            self._close(key, "aborted", "aborted before its PREPARE arrived")
        return DecisionEffect.NOTHING

    # ---- timers ------------------------------------------------------------------

    def get_timer(self) -> float | None:
        pending = [t for t in (self._timers.first_query(), self.expiry_timer())
                   if t is not None]
        return min(pending) if pending else None

    def expiry_timer(self) -> float | None:
        """When the first RESERVED hold (never voted YES) ends with its lease."""
        return self._timers.first_lease()

    def expire(self, now: float) -> list[Hold]:
        """Release RESERVED holds whose lease passed (delete them); YES voters stay.
        Earliest lease first (holds made at once: in the order they were made)."""
        gone = self._timers.due_leases(now)
        for h in gone:
            self._expire(h)
        return gone

    def due_queries(self, now: float) -> list[Hold]:
        """In-doubt holds whose lease (or last query) has passed: ask for the decision.

        Classic 2PC only: holds that carry a TxInfo are Termination's.
        """
        due = self._timers.due_queries(now)
        for h in due:
            h.next_query = now + self._query_interval_s
            self._timers.timed(h)
        return due

    def _expire(self, held: Hold) -> None:
        self._drop(held)
        self._close(held.key, "expired", "lease expired before the vote")

    # ---- the holds and their counts ---------------------------------------------

    def _count(self, h: Hold, sign: int) -> None:
        for _, cap in h.steps:
            _bump(self._used, cap, sign)
        _bump(self._held_for, h.coordinator, sign * len(h.steps))

    def _add(self, h: Hold) -> None:
        old = self._holds.get(h.key)
        if old is not None:
            self._drop(old)
        self._holds[h.key] = h
        self._count(h, +1)
        self._keys_of.setdefault(h.workflow_id, set()).add(h.key)
        self._timers.timed(h)

    def _shrink(self, h: Hold, kept: list[tuple[str, str]]) -> None:
        self._count(h, -1)
        h.steps = kept
        self._count(h, +1)

    def _drop(self, h: Hold) -> None:
        del self._holds[h.key]
        self._count(h, -1)
        keys = self._keys_of[h.workflow_id]
        keys.discard(h.key)
        if not keys:
            del self._keys_of[h.workflow_id]

    def _close(self, key: Key, how: str, reason: str) -> None:
        self._closed[key] = (how, reason)
        self._closed.move_to_end(key)
        while len(self._closed) > _DECIDED_MEMORY:
            self._closed.popitem(last=False)


def _leased(h: Hold) -> float | None:
    """The deadline a RESERVED hold is in the lease heap for."""
    return h.lease_expires if h.state is HoldState.RESERVED else None


def _queried(h: Hold) -> float | None:
    """The deadline a classic (no TxInfo) PREPARED hold is in the query heap for."""
    return h.next_query if h.state is HoldState.PREPARED and h.tx is None else None


def _bump(counts: dict[str, int], name: str, by: int) -> None:
    """Add `by` to a count; a count that reaches zero leaves the map."""
    n = counts.get(name, 0) + by
    if n:
        counts[name] = n
    else:
        counts.pop(name, None)


_Decide = Callable[[Participant, Key, "Hold | None"], DecisionEffect]

_DECIDE: dict[tuple[HoldState | None, bool], _Decide] = {
    (None, True): Participant._commit_unheld,
    (None, False): Participant._abort_unheld,
    (HoldState.RESERVED, True): Participant._commit_unvoted,
    (HoldState.RESERVED, False): Participant._release,
    (HoldState.PREPARED, True): Participant._commit_prepared,
    (HoldState.PREPARED, False): Participant._release,
    (HoldState.COMMITTED, True): Participant._duplicate,
    (HoldState.COMMITTED, False): Participant._abort_after_commit,
}
