"""Acceptor core: this agent's votes in every transaction's consensus instance, sans I/O.

Theory of operation
-------------------
Every agent runs one Acceptor. For each transaction (workflow, round) it keeps
one record: the highest ballot it promised, the ballot and value it accepted
last, and, once known, the chosen decision. The record must be durable before
any reply leaves: every state change is emitted as PersistAcceptor *before* the
Send that answers (the shell runs actions in order). A restarted agent restores
its records and answers exactly as before.

Transitions (one table, `_TABLE`); b is the incoming ballot, p the promise:

    (state,   input)              -> state    effect
    (NEW,     PaxosPrepare b)     -> OPEN     promise b (nothing accepted)
    (OPEN,    PaxosPrepare b>=p)  -> OPEN     promise b, with the accepted ballot/value
    (OPEN,    PaxosPrepare b<p)   -> OPEN     reject, telling p
    (NEW,     Accept b, v)        -> OPEN     accept
    (OPEN,    Accept b>=p, v)     -> OPEN     accept (p := b)
    (OPEN,    Accept b<p, v)      -> OPEN     reject, telling p
    (DECIDED, PaxosPrepare|Accept)-> DECIDED  answer with the Decision instead
    (any,     learn v)            -> DECIDED  remember the decision (not persisted:
                                              the learner's log holds it, see restore)

An Accepted goes to the proposer and, with `notify_learners`, to every
participant too: each counts them and learns a value the moment a majority
accepted it in one ballot, even if the proposer dies right then. The acceptors
are the coordinator and at most `max_acceptors` of them in all (messages), so
this is A·N messages for A acceptors and N participants, not N². Two messages are
spared on the way. A proposer that is an acceptor of its transaction (the
coordinator always is) sends its Accept to its own acceptor first, and to the
others once that accepted, saying so (`Accept.proposer_accepted`), or, unsaid, once
its own stayed silent past a resend (proposer.py, "Own acceptor first"); its own
acceptor therefore answers only the proposer, and the participants that are no
acceptors (who get no Accept to learn from). A receiver counts that statement as
the proposer's Accepted, and when the two of them are a majority (three
acceptors or fewer) each participant that is an acceptor learns from its own
Accept and sends no Accepted to the other acceptors; the participants that are
none still get its Accepted. A participant that misses its Accept (the proposer
died first) is left in doubt and ends it by the termination protocol, as if no
Accept had left. A proposer that is no acceptor (a participant beyond the bound,
recovering) sends its Accept to every acceptor at once and vouches for nothing.

Records only of stated rounds. A PaxosPrepare or Accept states its transaction, and a
recovery proposer is any participant the transaction names, as the transaction itself
says: a trusted domain that lies could state a round of its own making (or a real
round's key with other parties, before the real one arrives) and leave a record that
later refuses the honest takeover claimant's proof. So a record is made only of a round
its coordinator stated: before the first record of a transaction, the injected check
`stated(sender, tx)` must pass (the shell verifies `tx.round_tx`, the coordinator's
signature over that very round, as received; the simulator compares with what the
coordinator sent). It raises to refuse, and nothing changes. The record keeps the
transaction with its signed round. Later messages must state the same transaction (a
different one is refused whatever it carries).

A COMMIT value is accepted only when it carries a YES of every participant of
the transaction (the participant list comes with the transaction); ballot 0
belongs to the coordinator and has no phase 1. Anything else is a
RemoteProtocolError: a refusal on the wire, never a state change. A decided
record is kept (with its decision), never dropped: a late Accept of ballot 0 must
not find a blank record. The shell bounds memory by evicting durable records and
restoring them from disk before any input about them (`evict`, `restore`).

A round's life (`round_life_ms`; None: rounds live for ever and nothing is forgotten).
A record is forgotten (`forget`) only once its round is past its life, and a forgotten
round must be refused, never blank: an acceptor with no record of a round promises any
ballot and reports nothing accepted, so a decision forgotten at a majority of the
acceptors could be chosen over (docs/retention.md). So, before anything else, a
PaxosPrepare or Accept of a round is refused (`RoundPastLife`, a refusal on the wire,
no state change) when
- it is a recovery ballot (n > 0) of a round this acceptor holds a record of, older
  than its life: created (TxInfo.created_ms, the time its coordinator stated, signed
  with the round) longer than the life ago by this agent's wall clock (`now_ms`), and
  its record held longer than that in this life by its monotonic clock (`now`; from
  the first record here, or the restore). Every acceptor that recorded the round
  refuses it alike then, so forgetting the record changes no answer. Not the
  coordinator's ballot 0, sent as the round begins, and not at an acceptor that never
  recorded the round: neither can change a decision a later ballot reached (ballot 0
  is refused where a later one was promised; an acceptor with no record of the round
  never accepted anything of it, and a majority of such could have chosen nothing).
  The monotonic bound keeps a wall clock stepped by an hour (this agent's, or a
  coordinator's behind: hosts the daemon's replay window would cut off, which the
  simulator keeps talking) from ageing a round in its first life here; or
- no record of it is held and it is no newer than the *horizon* of its coordinator:
  the newest creation time among that coordinator's rounds forgotten here (kept
  durably by the shell, given back by `restore`), so that a round forgotten here is
  never taken for one never seen (blank), whatever this agent's wall clock says: a
  step back of it cannot make a forgotten round look young again. This alone is what
  safety rests on; the age rule above makes the answers alike before and after.
Answering PAST_LIFE (`past_life`). A DecisionQuery of a round is answered PAST_LIFE,
unless a decision is held, exactly where every recovery ballot of that round is
refused here: by age, as above (a record held, old by both clocks: refused from then
on while this agent runs; a restart makes the record young again by its monotonic
clock, for its ballots and its answers alike); or forgotten, for good: no record
held, and the
round as the query states it (its coordinator and creation time, copied from the
TxInfo the asker holds, signed with the round) no newer than that coordinator's
horizon here. Then the second rule above refuses every PaxosPrepare and Accept of the
round so stated, and no record of it can be made (only a ballot accepted here makes
one; a decision learned makes one that answers DECIDED), while the horizon only
rises (`forget`, `restore` keep the newest): so no acceptor answers PAST_LIFE of a
round it could still promise or accept. A query stating another round than the real
one (a liar's) is answered about the round it states, to the asker alone: the real
round's ballots are judged by the TxInfo they carry, and nobody else hears the answer.
A query stating no creation time (0) is answered by the age rule alone.
A round stated without a creation time (0: a record an older release wrote; every
round a Node makes with acceptors states one, a re-placement round's too, whose new
domain's recovery ballots its own acceptor records) has no life, and is never
forgotten. A participant in doubt longer than the life is refused by every acceptor
that recorded or forgot the round: it stays in doubt (its reservation held), never
decided wrongly (termination.py, PAST_LIFE).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from fedorch.core.identity.authority import ballot_in_reach
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Ballot,
    Decision,
    Key,
    PaxosPrepare,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
    check_tx,
    check_value,
)


@dataclass(frozen=True)
class AcceptorRecord:
    """What an acceptor knows of one transaction; immutable, replaced on change."""

    tx: TxInfo
    promised: Ballot | None = None
    accepted_ballot: Ballot | None = None
    accepted_value: Value | None = None
    decided: Value | None = None


@dataclass(frozen=True)
class PersistAcceptor:
    """Make this record durable before the replies that follow it."""

    key: Key
    record: AcceptorRecord


class AcceptorState(enum.Enum):
    NEW = "new"
    OPEN = "open"
    DECIDED = "decided"


AcceptorAction = PersistAcceptor | Send


class RoundPastLife(RemoteProtocolError):
    """A ballot of a round past its life here, or forgotten here: refused (see the
    header). `sender` sent it about `key`; `why`: "past its life" or "forgotten"."""

    def __init__(self, key: Key, sender: str, why: str, detail: str) -> None:
        super().__init__(detail)
        self.key = key
        self.sender = sender
        self.why = why

# `stated(sender, tx)`: returns if `tx` is a round its coordinator stated, raises
# (RemoteProtocolError, or authority.Refused with a reason) if not. None: no check (a
# caller that checked every message before, or a test of the Paxos rules alone).
Stated = Callable[[str, TxInfo], None]


class Acceptor:
    def __init__(self, me: str, *, notify_learners: bool = True,
                 stated: Stated | None = None, round_life_ms: int | None = None) -> None:
        self.me = me
        self.notify_learners = notify_learners
        self._stated = stated
        self.round_life_ms = round_life_ms
        # Monotonic time (s) since which each record is held in this life: its first
        # record here, or the restore (see the header).
        self._held_since: dict[Key, float] = {}
        self._now = 0.0  # the monotonic time of the input being handled
        self._records: dict[Key, AcceptorRecord] = {}
        self._horizons: dict[str, int] = {}  # coordinator -> newest forgotten creation
        self._outbox: list[AcceptorAction] = []

    # ---- state ---------------------------------------------------------------------

    def restore(self, records: Iterable[AcceptorRecord],
                learned: Mapping[Key, Value] | None = None,
                horizons: Mapping[str, int] | None = None, now: float = 0.0) -> None:
        """Take records back from disk (at start, or one that was evicted), with the
        decisions this agent learned: `learn` keeps a decision in memory only, since the
        shell wrote it to its learned log before telling the acceptor; and the horizons
        of the rounds forgotten here (see the header), the newest of each kept; each
        record is held since `now` (monotonic) in this life."""
        for coordinator, horizon in (horizons or {}).items():
            if horizon > self._horizons.get(coordinator, 0):
                self._horizons[coordinator] = horizon
        for r in records:
            decided = learned.get(r.tx.key) if learned and r.decided is None else None
            self._records[r.tx.key] = r if decided is None else replace(r, decided=decided)
            self._held_since.setdefault(r.tx.key, now)

    def evict(self, key: Key) -> None:
        """Drop a record from memory. Only for a record the shell knows is durable in its
        latest state, and which it will `restore` before passing on any input about that
        transaction: a blank record in its place could accept what it promised not to."""
        self._records.pop(key, None)

    def forget(self, key: Key, tx: TxInfo | None) -> int | None:
        """Forget a round past its life (the shell deletes its record and learned
        decision in the same write): the record goes, and the horizon of its
        coordinator rises to the round's creation time. `tx`: the round, as its record
        (or this agent) holds it; None if none is known (no record was ever made here,
        so nothing accepted or promised is lost). Returns the coordinator's new horizon
        for the shell to write with the deletes, or None if it did not rise."""
        if tx is None:
            self._records.pop(key, None)
            self._held_since.pop(key, None)
            return None
        if self.round_life_ms is None or tx.created_ms <= 0:
            raise ValueError(f"{key}: a round without a life is never forgotten")
        self._records.pop(key, None)
        self._held_since.pop(key, None)
        if tx.created_ms <= self._horizons.get(tx.coordinator, 0):
            return None
        self._horizons[tx.coordinator] = tx.created_ms
        return tx.created_ms

    def horizon(self, coordinator: str) -> int:
        return self._horizons.get(coordinator, 0)

    def past_life(self, key: Key, now_ms: int, now: float,
                  coordinator: str = "", created_ms: int = 0) -> bool:
        """Does this acceptor refuse every ballot of round `key` as past its life, to
        answer a DecisionQuery PAST_LIFE (see the header, "Answering PAST_LIFE")? By
        age: it holds a record of it, the round was created longer than its life ago
        by this agent's wall clock (`now_ms`), and the record has been held longer than
        that in this life (`now`, monotonic). Or forgotten: it holds no record of it,
        and the round as the query states it (`coordinator`, `created_ms`: its
        TxInfo's) is no newer than that coordinator's horizon here. False for a round
        with no creation time (stated or recorded), or no life here."""
        rec = self._records.get(key)
        if rec is None:
            return created_ms > 0 and created_ms <= self._horizons.get(coordinator, 0)
        life = self.round_life_ms
        return life is not None and rec.tx.created_ms > 0 \
            and now_ms - rec.tx.created_ms > life \
            and (now - self._held_since.get(key, now)) * 1000 > life

    def record(self, key: Key) -> AcceptorRecord | None:
        return self._records.get(key)

    def records(self) -> list[AcceptorRecord]:
        return list(self._records.values())

    def state(self, key: Key) -> AcceptorState:
        r = self._records.get(key)
        if r is None:
            return AcceptorState.NEW
        return AcceptorState.DECIDED if r.decided is not None else AcceptorState.OPEN

    def next_actions(self) -> list[AcceptorAction]:
        actions, self._outbox = self._outbox, []
        return actions

    # ---- inputs --------------------------------------------------------------------

    def receive(self, sender: str, msg: PaxosPrepare | Accept,
                now_ms: int | None = None, now: float = 0.0) -> None:
        """A phase 1a or 2a message from `sender` (the proposer, as authenticated), at
        `now_ms` by this agent's wall clock and `now` by its monotonic one (now_ms None:
        no age is judged, as without a life; the horizons still hold)."""
        check_tx(msg.tx)
        if self.me not in msg.tx.acceptors:
            raise RemoteProtocolError(f"{self.me} is not an acceptor of {msg.tx.key}")
        if msg.ballot.proposer != sender:
            raise RemoteProtocolError(f"{sender} sent a ballot of {msg.ballot.proposer}")
        if msg.ballot.n == 0 and msg.ballot.proposer != msg.tx.coordinator:
            raise RemoteProtocolError("ballot 0 belongs to the coordinator")
        if msg.ballot.n < 0:
            raise RemoteProtocolError("ballots are not negative")
        current = self._records.get(msg.tx.key)
        if current is not None and current.tx != msg.tx:
            raise RemoteProtocolError(f"{msg.tx.key}: the transaction differs from the one known")
        self._check_life(sender, msg, current, now_ms, now)
        self._now = now
        if current is None and self._stated is not None:
            self._stated(sender, msg.tx)  # raises unless the coordinator stated this round
        held = max((b.n for b in (current.promised, current.accepted_ballot) if b is not None),
                   default=0) if current is not None else 0
        if not ballot_in_reach(msg.ballot.n, held):
            raise RemoteProtocolError(f"ballot {msg.ballot.n} of {msg.tx.key} is out of reach"
                                      f" (held {held}): it would exhaust the ballots")
        handler = _TABLE.get((self.state(msg.tx.key), type(msg)))
        if handler is None:  # pragma: no cover - the table is total over its inputs
            raise LocalProtocolError(f"no transition for {type(msg).__name__}")
        handler(self, sender, msg, current)

    def learn(self, tx: TxInfo, value: Value) -> None:
        """A decision is known to be chosen: keep it, answer with it from now on."""
        current = self._records.get(tx.key)
        if current is not None and current.decided is not None:
            if current.decided != value:
                raise RemoteProtocolError(f"{tx.key}: a decision contradicting the known one")
            return
        # In memory only: the caller's log of learned decisions is durable already, and
        # `restore` merges it back. A record is not needed for safety once decided; its
        # promise and accepted value, which are, were persisted when they changed.
        base = current if current is not None else AcceptorRecord(tx)
        self._records[tx.key] = AcceptorRecord(base.tx, base.promised, base.accepted_ballot,
                                               base.accepted_value, value)  # not replace(): hot

    def _check_life(self, sender: str, msg: PaxosPrepare | Accept,
                    current: AcceptorRecord | None, now_ms: int | None, now: float) -> None:
        """Refuse a round past its life, or forgotten here (see the header)."""
        tx = msg.tx
        created = tx.created_ms
        if created <= 0:
            return
        if msg.ballot.n > 0 and now_ms is not None and self.past_life(tx.key, now_ms, now):
            assert self.round_life_ms is not None
            raise RoundPastLife(tx.key, sender, "past its life",
                                f"{tx.key} is {(now_ms - created) / 1000:.1f} s old, past"
                                f" its life ({self.round_life_ms / 1000:g} s): refused")
        if current is None and created <= self._horizons.get(tx.coordinator, 0):
            raise RoundPastLife(tx.key, sender, "forgotten",
                                f"{tx.key} is no newer than the rounds of {tx.coordinator}"
                                " forgotten here: refused")

    # ---- handlers ------------------------------------------------------------------

    def _on_prepare(self, sender: str, msg: PaxosPrepare, cur: AcceptorRecord | None) -> None:
        if msg.ballot.n == 0:
            raise RemoteProtocolError("ballot 0 has no phase 1")
        rec = cur if cur is not None else AcceptorRecord(msg.tx)
        if rec.promised is not None and msg.ballot < rec.promised:
            self._reply(sender, Reject(msg.tx.key, msg.ballot, self.me, rec.promised))
            return
        if rec.promised != msg.ballot:
            rec = replace(rec, promised=msg.ballot)
            self._store(rec)
        self._reply(sender, Promise(msg.tx.key, msg.ballot, self.me, rec.accepted_ballot,
                                    rec.accepted_value))

    def _on_accept(self, sender: str, msg: Accept, cur: AcceptorRecord | None) -> None:
        check_value(msg.tx, msg.value)
        rec = cur if cur is not None else AcceptorRecord(msg.tx)
        if not self._may_accept(rec, msg.ballot):
            assert rec.promised is not None
            self._reply(sender, Reject(msg.tx.key, msg.ballot, self.me, rec.promised))
            return
        if rec.accepted_ballot != msg.ballot or rec.accepted_value != msg.value:
            if rec.accepted_ballot == msg.ballot:
                raise RemoteProtocolError(f"two values proposed in ballot {msg.ballot}")
            rec = AcceptorRecord(rec.tx, msg.ballot, msg.ballot, msg.value, rec.decided)
            self._store(rec)
        accepted = Accepted(msg.tx.key, msg.ballot, self.me, msg.value)
        self._reply(sender, accepted)
        if not self.notify_learners:
            return
        tx = msg.tx
        # Participants beyond max_acceptors get no Accept: every acceptor's Accepted is
        # how they learn (the proposer's own too, which the others cannot stand in for).
        outsiders = [p for p in tx.participants if p not in tx.acceptors and p != sender]
        if sender == self.me:
            # Our own proposal: the proposer vouches for this in its Accepts.
            for learner in outsiders:
                self._reply(learner, accepted)
            return
        me_learning = self.me in tx.participants
        if msg.proposer_accepted and me_learning:
            # The proposer's signed word that it accepted too: its Accepted, by this Accept.
            self._reply(self.me, Accepted(tx.key, msg.ballot, sender, msg.value))
        if msg.proposer_accepted and 2 >= tx.majority:
            # The proposer and we are a majority: every participant that gets this Accept
            # learns the value from it and its own acceptance, with no Accepted from us;
            # one that is no acceptor gets none, so it gets ours.
            learners = [self.me] if me_learning else []
            learners += outsiders
        else:  # every participant learns the moment a majority accepted
            learners = [p for p in tx.participants if p != sender]
        for learner in learners:
            self._reply(learner, accepted)

    def _on_decided(self, sender: str, msg: PaxosPrepare | Accept,
                    cur: AcceptorRecord | None) -> None:
        assert cur is not None and cur.decided is not None
        self._reply(sender, Decision(msg.tx.key, cur.decided, self.me))

    @staticmethod
    def _may_accept(rec: AcceptorRecord, ballot: Ballot) -> bool:
        return rec.promised is None or ballot >= rec.promised

    # ---- helpers -------------------------------------------------------------------

    def _store(self, rec: AcceptorRecord) -> None:
        self._records[rec.tx.key] = rec
        self._held_since.setdefault(rec.tx.key, self._now)
        self._outbox.append(PersistAcceptor(rec.tx.key, rec))

    def _reply(self, to: str, msg: object) -> None:
        self._outbox.append(Send(to, msg))


_Handler = Callable[[Acceptor, str, object, "AcceptorRecord | None"], None]

_TABLE: dict[tuple[AcceptorState, type], _Handler] = {
    (AcceptorState.NEW, PaxosPrepare): Acceptor._on_prepare,
    (AcceptorState.OPEN, PaxosPrepare): Acceptor._on_prepare,
    (AcceptorState.DECIDED, PaxosPrepare): Acceptor._on_decided,
    (AcceptorState.NEW, Accept): Acceptor._on_accept,
    (AcceptorState.OPEN, Accept): Acceptor._on_accept,
    (AcceptorState.DECIDED, Accept): Acceptor._on_decided,
}
