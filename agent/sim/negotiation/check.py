"""The invariant checker of the negotiation simulation.

Theory of operation
-------------------
The checker watches a run from outside the agents (nothing it holds is lost in a
crash) through hooks the simulated shells call, and checks:

* consensus: for each transaction, never two different values chosen, where a
  value is chosen when a majority of the acceptors durably accepted it in one
  ballot (computed from every acceptor's persisted records, not from what
  anyone learned);
* atomicity: all decisions anyone made, learned or saw chosen for one
  (workflow, round) agree; at most one round of a workflow commits;
* no duplicate step start: the idempotency key (workflow, step, attempt) is
  started at most once in the whole federation, and only after COMMIT;
* results and ends come from their authority (a trusted domain may lie, see
  agent.sim.negotiation.liar): every step result any agent holds is of an attempt
  that was started, and every participant ended a workflow as its coordinator did;
* after healing and quiescence (`finish`): no reservation leaked (every hold
  left belongs to a committed workflow that is still running, and none is in
  doubt), every workflow whose domains are all up again is terminal, and
  non-blocking: for a transaction whose coordinator died forever, every live
  YES voter learned the decision within two lease periods after the last lease
  (counted from when the network had healed and the acceptors and the voter were up;
  for a classic 2PC round, decided in its coordinator's log alone, the coordinator
  and the voter: up and not paused),
  or, for a re-placement round, released its YES as the workflow ended there or as
  the holder of a later epoch answered the round void; a voter in doubt past its
  round's life (`past_life`: an acceptor refused its ballot as past the round's life
  or forgotten, or a majority of them answered it PAST_LIFE, core/negotiation/
  acceptor.py) stays in doubt, its reservation held, and is exempt from this and from
  the leak check (counted: `in doubt past the round's life`); under classic 2PC
  (`Timing.classic`) a voter whose coordinator died for good before any live agent
  learned the decision blocks, as 2PC does (`_blocked_2pc`: counted, not a failure;
  with membership views, one that another live agent could tell is held to it);
* with membership views on (runs with takeover): an in-doubt YES voter whose view
  says its coordinator is DEAD learns the decision within one recovery of being
  told, not a lease (`_check_undecided_recovery`; its times to resolve are the
  run's `undecided after coordinator DEAD` stats).
* cancels (`check_cancels`, cancel_check.py): a workflow whose coordinator (of any
  epoch) took a client's cancel ends CANCELLED, the same everywhere it ended, unless
  the caller was told why not: a cancel of an ended one, or of one whose other end is told, is
  refused, so the end it had stands; a taker overtaken by a later epoch before its
  end was made notes the cancel void (`cancel_void`; the client sends it on to that
  epoch's holder, cancels.py), and a taker dead for good carries nothing out. No step
  attempt of it starts at a domain after that domain learned the cancel (took it and
  drives the workflow, or ended the workflow); no reservation is left (the leak
  check above).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from fedorch.core.negotiation.acceptor import AcceptorRecord, RoundPastLife
from fedorch.core.negotiation.messages import Ballot, Key, TxInfo, Value
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.sim.negotiation.cancel_check import CancelCheck

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World




# The undecided after their coordinator's DEAD, while the network still loses and
# delays messages: the questions (every query_interval_s) and a ballot's messages (every
# resend_s) each sent this many times more at most.
CHAOS_RECOVERY_QUERIES = 2

# A takeover's end: its claim round, then the steps left (each up to 0.6 s, retried) and
# results resent with backoff to the successor; bounded by two leases of the simulation.
TAKEOVER_SLACK_LEASES = 2


def _bucket(seconds: float | None) -> str:
    """A time-to-resolve as a bucket of the run's stats (a histogram over seeds)."""
    if seconds is None:
        return "never"
    for edge in (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0):
        if seconds < edge:
            return f"resolved in < {edge:g} s"
    return "resolved in >= 16 s"


class Checker:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.refusals: Counter[str] = Counter()
        self._decisions: dict[Key, set[bool]] = {}
        self._chosen: dict[Key, set[Value]] = {}
        self._accepts: dict[Key, dict[tuple[Ballot, Value], set[str]]] = {}
        self._committed_rounds: dict[str, set[int]] = {}
        self._commit_known: set[tuple[str, str]] = set()  # (agent, workflow)
        self.learned_at: dict[tuple[str, Key], float] = {}
        # A re-placement round's YES in doubt, released as its workflow ended there
        # (core/node/placed_here.py): nothing can run under it, so it blocks nothing.
        self.released_at: dict[tuple[str, Key], float] = {}
        self.yes: dict[Key, dict[str, float]] = {}  # key -> YES voter -> lease
        self.yes_at: dict[tuple[str, Key], float] = {}  # (voter, key) -> its first YES
        self.txs: dict[Key, TxInfo] = {}
        self.runs: dict[tuple[str, str, int], str] = {}
        # Coordinator takeover: who acted in which epoch, each coordinator's end, and
        # when each agent ended each workflow.
        self.acting_in: dict[tuple[str, int], str] = {}
        self.acting_at: dict[tuple[str, int], float] = {}  # when it first acted
        self.ends: dict[str, dict[int, object]] = {}
        self.ended_at: dict[tuple[str, str], float] = {}
        # Steps a coordinator failed as lost with their domain: (agent, (wf, step),
        # domain, action, now).
        self.steps_lost: list[tuple[str, tuple[str, str], str, str, float]] = []
        # Re-placement (core/node/replacement.py): (wf, step) -> the domains it was
        # placed again on; the rounds that placed one (committed beside the first).
        self.placed: dict[tuple[str, str], set[str]] = {}
        self.replacement_rounds: set[Key] = set()
        self.idempotent: dict[tuple[str, str], bool] = {}
        self.placements_refused = 0
        # The ends loss verdicts told before their coordinator made them: wf -> states.
        self.told_ends: dict[str, set[object]] = {}
        # Retention (core/node/retention.py): each coordinator row as it was forgotten.
        self.compacted_rows: dict[str, object] = {}
        # Cancels (core/node/cancel.py): who took, gave up and was refused each
        # (cancel_check.py); `cancelled`: workflow -> the coordinator that first took it.
        self.cancels = CancelCheck(self)
        self.cancelled = self.cancels.cancelled
        # Sagas (core/node/compensating.py): each compensation attempt started, by whom;
        # each saga's summary as its driver ended it.
        self.comp_runs: dict[tuple[str, str, int], str] = {}
        self.sagas_ended: dict[str, str] = {}
        self._sim: World | None = None
        self._forgotten: list[tuple[str, str, object, dict]] = []  # (agent, wf, end, results)
        # (voter, key): in doubt past the round's life, refused by its acceptors
        # (core/negotiation/acceptor.py): it stays in doubt, never decided wrongly.
        self.past_life: set[tuple[str, Key]] = set()

    def fail(self, what: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(what)

    # ---- hooks the simulated shells call ------------------------------------------

    def acceptor_state(self, agent: str, rec: AcceptorRecord) -> None:
        if rec.accepted_ballot is None or rec.accepted_value is None:
            return
        key = rec.tx.key
        pair = (rec.accepted_ballot, rec.accepted_value)
        voters = self._accepts.setdefault(key, {}).setdefault(pair, set())
        voters.add(agent)
        if len(voters) >= rec.tx.majority:
            chosen = self._chosen.setdefault(key, set())
            if rec.accepted_value not in chosen:
                chosen.add(rec.accepted_value)
                if len(chosen) > 1:
                    self.fail(f"consensus: {key} has two chosen values")
                self._decide(key, rec.accepted_value.commit, f"chosen in ballot {pair[0]}")

    def decided(self, agent: str, key: Key, value: Value, now: float) -> None:
        self._decide(key, value.commit, f"coordinator {agent} at {now:.3f}")
        if value.commit:
            self._commit_known.add((agent, key[0]))

    def learned(self, agent: str, key: Key, value: Value, now: float) -> None:
        self._decide(key, value.commit, f"learned by {agent} at {now:.3f}")
        self.learned_at.setdefault((agent, key), now)
        if value.commit:
            self._commit_known.add((agent, key[0]))

    def released_at_end(self, agent: str, key: Key, now: float) -> None:
        self.released_at.setdefault((agent, key), now)

    def released_void(self, agent: str, key: Key, now: float) -> None:
        """A re-placement YES released on a later epoch's holder's word that it knows no
        placement of that round (core/node/replacement_handover.py): resolved, as at
        the end, never learned."""
        self.released_at.setdefault((agent, key), now)

    def yes_voted(self, agent: str, tx: TxInfo, lease: float, now: float) -> None:
        self.yes.setdefault(tx.key, {})[agent] = lease
        self.yes_at.setdefault((agent, tx.key), now)
        self.txs[tx.key] = tx

    def step_started(self, agent: str, run: tuple[str, str, int], now: float) -> None:
        if run in self.runs and (self.runs[run] == agent or run[:2] not in self.placed
                                 or not self.idempotent.get(run[:2], False)):
            # The attempt numbers of a step placed again start anew in its new domain
            # (one attempt per placement), and an idempotent step's lost domain, in doubt
            # and back, may still run its own before it hears (its result is refused);
            # anywhere else, a number is started once.
            self.fail(f"step attempt {run} started twice ({self.runs[run]}, then {agent})")
        self.runs[run] = agent
        if (agent, run[0]) not in self._commit_known:
            self.fail(f"{agent} started {run} without knowing a COMMIT of {run[0]}")
        if self.cancels.learned(agent, run[0]) \
                or run[0] in self.cancelled and (agent, run[0]) in self.ended_at:
            self.fail(f"cancel: {agent} started {run} after it learned the cancel")

    def compensation_started(self, agent: str, run: tuple[str, str, int],
                             now: float) -> None:
        if run in self.comp_runs:
            self.fail(f"saga: compensation attempt {run} started twice"
                      f" ({self.comp_runs[run]}, then {agent})")
        self.comp_runs[run] = agent

    def compensation_ended(self, agent: str, wf: str, summary: str) -> None:
        """A driver's saga ended: it compensated every step its results show SUCCEEDED
        with a `compensate` block (a result still on its way joins later: judged at the
        end of the run, _check_sagas, while retention has not forgotten the saga)."""
        self.sagas_ended[wf] = summary
        if self._sim is None:
            return
        node = self._sim.agents[agent].node
        info = node.running.info(wf)
        results = node.state.results.get(wf, {})
        planned = {s.id for s in info.spec.steps if (wf, s.id) in node.state.compensations}
        owed = {s.id for s in info.spec.steps if s.HasField("compensate") and getattr(
            results.get(s.id, (0, None))[1], "value", None) == "SUCCEEDED"}
        if owed - planned:
            self.fail(f"saga: {agent} ended the saga of {wf} ({summary}) without"
                      f" {sorted(owed - planned)}, SUCCEEDED in its results")
        self._sim.stats["saga judged at its end"] += 1

    def cancel_taken(self, agent: str, wf: str) -> None:
        self.cancels.taken(agent, wf)

    def cancel_void(self, agent: str, wf: str, epoch: int, holder: str) -> None:
        self.cancels.void(agent, wf)

    def cancel_refused(self, agent: str, wf: str, why: str) -> None:
        self.cancels.refused += 1

    def acting(self, agent: str, wf: str, epoch: int, now: float) -> None:
        other = self.acting_in.setdefault((wf, epoch), agent)
        self.acting_at.setdefault((wf, epoch), now)
        if other != agent:
            self.fail(f"takeover: {wf} has two coordinators in epoch {epoch}: {other} and"
                      f" {agent} (at {now:.3f})")

    def coordinator_ended(self, agent: str, wf: str, epoch: int, state: object) -> None:
        ends = self.ends.setdefault(wf, {})
        ends.setdefault(epoch, state)
        if len(set(ends.values())) > 1:
            self.fail(f"takeover: coordinators of {wf} ended it differently: {ends}")

    def ended_here(self, agent: str, wf: str, now: float) -> None:
        self.ended_at.setdefault((agent, wf), now)

    def end_told(self, agent: str, wf: str, epoch: int, state: object) -> None:
        """`agent`, coordinator of `wf` at `epoch`, told its participants the end a
        loss verdict decided before making it (core/node/domain_loss.py)."""
        self.told_ends.setdefault(wf, set()).add(state)

    def placed_again(self, agent: str, step: tuple[str, str], domain: str, epoch: int,
                     idempotent: bool, now: float) -> None:
        """`agent` took a new placement of `step` on `domain` (core/node/replacement.py).
        That a step that is not idempotent runs once is checked where it counts, at each
        start (`step_started`): a coordinator back from a crash may place again a step
        that ran while it was down, which then never starts again (the workflow ended)."""
        self.replacement_rounds.add((step[0], epoch))
        self.placed.setdefault(step, set()).add(domain)
        self.idempotent[step] = idempotent

    def placement_refused(self, agent: str, step: tuple[str, str], src: str, epoch: int,
                          current: int) -> None:
        """`agent` refused a result of an older placement (fencing)."""
        self.placements_refused += 1

    def step_lost(self, agent: str, step: tuple[str, str], domain: str, action: str,
                  now: float) -> None:
        """`agent`, the workflow's coordinator, failed a step on `domain`, gone in its
        view (core/node/domain_loss.py): kept for the run's report and for tests."""
        self.steps_lost.append((agent, step, domain, action, now))

    def attach(self, sim: World) -> None:
        """The run whose agents `compacted` looks at (each agent attaches it)."""
        self._sim = sim

    def compacted(self, agent: str, wf: str, row: object, final: object,
                  results: dict | None) -> None:
        """`agent` forgot `wf` (retention). Never while it holds a reservation of it;
        as its coordinator, never before every participant of a committed workflow
        ended it (acknowledged the end: none may still ask), unless the end was told
        in a later coordinator epoch: its holder tells it until every domain
        acknowledged it, and the original follows that holder (core/node/retention.py,
        `_taken_over_kept`). Its end and results here are checked at the finish, as
        those still held are."""
        if final is not None or results:
            self._forgotten.append((agent, wf, final, results or {}))
        sim = self._sim
        if sim is not None and sim.agents[agent].participant.keys_of(wf):
            self.fail(f"retention: {agent} forgot {wf} while holding a reservation of it")
        if row is None:
            return
        self.compacted_rows[wf] = row
        if row.committed and not any(e >= 1 for e in self.ends.get(wf, {})):
            for p in set(row.info.placement.values()) - {agent}:
                if (p, wf) not in self.ended_at:
                    self.fail(f"retention: {agent} forgot {wf} before {p} ended it")

    def row(self, sim: World, wf: str) -> object | None:
        """The coordinator's row of `wf`, or the one retention forgot."""
        coord = sim.workflows.get(wf)
        row = sim.agents[coord].disk.rows.get(wf) if coord in sim.agents else None
        return row if row is not None else self.compacted_rows.get(wf)

    def refused(self, agent: str, error: Exception) -> None:
        self.refusals[type(error).__name__] += 1
        if isinstance(error, RoundPastLife):  # the sender's ballot of a round past its life
            self.past_life.add((error.sender, error.key))

    def in_doubt_past_life(self, agent: str, key: Key) -> None:
        """`agent`'s Node heard a majority of the round's acceptors answer PAST_LIFE."""
        self.past_life.add((agent, key))

    def _exempt_past_life(self, sim: World, voter: str, key: Key) -> bool:
        """`voter` is in doubt on `key` past the round's life (refused by its acceptors,
        see `past_life`) and never learned it: exempt from the blocking and leak
        checks, counted."""
        if (voter, key) not in self.past_life or (voter, key) in self.learned_at:
            return False
        sim.stats["in doubt past the round's life"] += 1
        return True

    def _decide(self, key: Key, commit: bool, who: str) -> None:
        seen = self._decisions.setdefault(key, set())
        seen.add(commit)
        if len(seen) > 1:
            self.fail(f"atomicity: {key} decided both COMMIT and ABORT ({who})")
        if commit and key not in self.replacement_rounds:
            rounds = self._committed_rounds.setdefault(key[0], set())
            rounds.add(key[1])
            if len(rounds) > 1:
                self.fail(f"atomicity: {key[0]} committed in rounds {sorted(rounds)}")

    # ---- after healing and quiescence ---------------------------------------------

    def committed(self, wf: str) -> int | None:
        rounds = self._committed_rounds.get(wf)
        return min(rounds) if rounds else None

    def finish(self, sim: World) -> None:
        dead = sim.dead_forever
        lease = sim.config.timing.lease_s
        for name, agent in sim.agents.items():
            if not agent.alive:
                continue
            for h in agent.participant.holds():
                if h.state is HoldState.PREPARED and self._blocked_2pc(sim, h.key):
                    continue  # counted below, with the voters' check
                if h.state is HoldState.PREPARED \
                        and self._exempt_past_life(sim, name, h.key):
                    continue
                if h.state is not HoldState.COMMITTED:
                    self.fail(f"leak: {name} still holds {h.key} {h.state.value} at the end")
                    continue
                coord = h.coordinator
                if coord in dead:
                    continue
                row = self.row(sim, h.workflow_id)
                if row is not None and row.state in TERMINAL:
                    self.fail(f"leak: {name} holds {h.key} after it ended {row.state.name}")
        for wf, coord in sim.workflows.items():
            if coord in dead:
                continue
            row = self.row(sim, wf)
            if row is None or row.state in TERMINAL:
                continue
            gone = set(row.info.placement.values()) & dead
            if gone and row.committed and (sim.config.timing.takeover_after_s is None
                                           or self.cancels.unacknowledgeable(sim, wf)):
                # A domain it needs is gone for good, and either no view says so (runs
                # without takeover: no membership views), or the electors left are no
                # majority: a held end waits for one to acknowledge it
                # (core/node/domain_loss.py). Otherwise its steps there failed, naming
                # the domain, and the workflow ended: at its original coordinator, or,
                # taken over, at the successor whose end it follows (an original back
                # after its successor ended it and died is answered with that end).
                continue
            self.fail(f"terminal: {wf} is still {row.state.name} at {coord} after healing")
        self._check_results_and_ends(sim)
        self._check_sagas(sim)
        self._check_no_replayed_submission(sim)
        self._check_keys_unchanged(sim)
        if sim.config.timing.takeover_after_s is not None:
            self._check_takeovers(sim)
            self._check_undecided_recovery(sim)
        self.check_cancels(sim)
        for key, voters in self.yes.items():
            tx = self.txs[key]
            if tx.coordinator not in dead:
                continue
            if self._blocked_2pc(sim, key):
                sim.stats["2PC blocked: coordinator dead for good, nobody told"] += 1
                continue
            for voter in voters:
                if voter in dead or not sim.agents[voter].alive \
                        or (voter, key) in self.past_life and (voter, key) not in self.learned_at:
                    continue
                # From the voter's own last start too: a restored hold's lease counts
                # again from the restore (core/negotiation/participant.restarted). A
                # classic 2PC round (no acceptors) is decided in its coordinator's log
                # alone: its voters wait while it is down or stalled, as 2PC does
                # (docs/failures.md), so from its own last return too (restart, pause).
                calm = sim.calm_since((*(tx.acceptors or (tx.coordinator,)), voter))
                deadline = max(max(voters.values()), calm) + 2 * lease
                # A re-placement round (classic 2PC, decided by its coordinator's log
                # alone) is resolved for its new domain by the workflow's end too, or
                # by a later epoch's holder answering it void.
                at = self.learned_at.get((voter, key), self.released_at.get((voter, key)))
                if at is None or at > deadline:
                    when = "never" if at is None else f"at {at:.2f}"
                    self.fail(f"blocking: {voter} learned {key} {when}, "
                              f"deadline {deadline:.2f} (coordinator dead)")

    def _blocked_2pc(self, sim: World, key: Key) -> bool:
        """A classic 2PC round (no acceptors) whose coordinator died for good, that no
        live agent but it learned: its YES voters wait for ever, as 2PC does
        (docs/limits.md). Without membership views (runs without takeover) a voter asks
        nobody but the coordinator, so any such round blocks. A re-placement round (a
        round after the workflow's committed one: classic 2PC too, its two acceptors
        only making a well-formed round) blocks the same way where no successor can
        ever answer its new domain: the workflow's electorate has no live majority
        (the workflow is left undecided then too: `_check_takeovers`)."""
        tx = self.txs.get(key)
        if tx is None or tx.coordinator not in sim.dead_forever:
            return False
        if tx.acceptors and not self._no_successor_for(sim, key):
            return False
        if sim.config.timing.takeover_after_s is None:
            return True
        return not any((a, key) in self.learned_at for a, agent in sim.agents.items()
                       if agent.alive and a not in sim.dead_forever)

    def _no_successor_for(self, sim: World, key: Key) -> bool:
        """Is `key` a re-placement round of a workflow whose takeover electorate has
        fewer live members than a majority (so none is ever elected)?"""
        committed = self.committed(key[0])
        tx = self.txs.get((key[0], committed)) if committed is not None else None
        if tx is None or key[1] <= committed:
            return False
        electorate = set(tx.acceptors) or set(tx.participants) | {tx.coordinator}
        return len(electorate - sim.dead_forever) < len(electorate) // 2 + 1

    def check_cancels(self, sim: World) -> None:
        self.cancels.check(sim)  # cancel_check.py

    def _check_takeovers(self, sim: World) -> None:
        """A committed workflow whose coordinator died for good ends at every live
        participant within takeover_after_s (+ DEAD's delay) + TAKEOVER_SLACK_LEASES
        leases after the last fault (the electorate's, or that participant's own
        restart, or the death of a participant gone for good), if a majority of its
        electorate (the committed round's acceptors; a workflow on two domains too)
        lives. A participant gone for good (a coordinator that ran steps itself counts
        as one) has its steps failed by the successor's loss verdict, whose end, told
        to every elector, is made once enough acknowledged it (domain_loss.py): the
        live majority is enough."""
        t = sim.config.timing
        for wf, coord in sim.workflows.items():
            round_ = self.committed(wf)
            tx = self.txs.get((wf, round_)) if round_ is not None else None
            if coord not in sim.dead_forever or tx is None \
                    or self._blocked_2pc(sim, tx.key):  # nobody knows it committed
                continue
            # The takeover electorate: the round's acceptors (Paxos Commit), else these.
            # An extra acceptor that never heard of the round (its Accept was lost, the
            # coordinator died) grants on the claimant's proof of it: every member counts.
            electorate = set(tx.acceptors) or set(tx.participants) | {coord}
            live = tuple(sorted(electorate - sim.dead_forever))
            if len(live) < len(electorate) // 2 + 1:
                continue
            lost = set(tx.participants) & sim.dead_forever
            calm = max(sim.calm_since(live), sim.died_at.get(coord, 0.0),
                       *(sim.died_at.get(p, 0.0) for p in lost))
            for p in tx.participants:
                if p == coord or not sim.agents[p].alive:
                    continue
                # From the participant's own last restart too (its last fault): a
                # participant back late, outside the electorate, learns the end by its
                # own look at the dead coordinator (takeover_after_s after its restart).
                deadline = max(calm, sim.last_restart.get(p, 0.0)) + t.takeover_after_s \
                    + t.dead_after_s + TAKEOVER_SLACK_LEASES * t.lease_s
                at = self.ended_at.get((p, wf))
                if at is None or at > deadline:
                    when = "never" if at is None else f"at {at:.2f}"
                    self.fail(f"takeover: {p} ended {wf} {when}, deadline {deadline:.2f}"
                              f" (coordinator {coord} dead for good)")

    def undecided_after_death(self, sim: World) -> list[tuple[str, Key, float, float | None]]:
        """Each YES voter left in doubt when its Node was told its coordinator is DEAD
        (or LEFT), as (voter, key, when it could start: the later of that telling, its
        YES and the calm of its acceptors and itself, when it learned or None), where
        the bound applies: its view said so until it learned (a coordinator back
        ALIVE may compete with the recovery), the voter did not restart since, and a
        majority of the acceptors but the coordinator lives."""
        samples = []
        for key, voters in self.yes.items():
            tx = self.txs[key]
            live = [a for a in tx.acceptors if a != tx.coordinator
                    and a not in sim.dead_forever]
            if len(live) < tx.majority:
                continue
            for voter in voters:
                if voter in sim.dead_forever or not sim.agents[voter].alive:
                    continue
                yes = self.yes_at[(voter, key)]
                learned = self.learned_at.get((voter, key))
                restart = sim.last_restart.get(voter, 0.0)
                for start, end in sim.membership.gone_told.get((voter, tx.coordinator), ()):
                    told = max(start, yes)
                    if start < restart or learned is not None and learned <= told \
                            or end is not None and end <= told:
                        continue
                    if end is not None and (learned is None or end < learned):
                        break  # back ALIVE in its view before it learned
                    calm = sim.calm_since((*live, voter))
                    samples.append((voter, key, max(told, calm), learned))
                    break
        return samples

    def _check_undecided_recovery(self, sim: World) -> None:
        """Non-blocking, and fast (core/node/member_loss.py): an in-doubt YES voter
        whose view says its coordinator is DEAD learns the decision within one recovery
        of being told (`dead_after_s` after the death, or its YES or the calm of its
        acceptors if later), not after its whole lease: its turn to propose (its rank
        among the participants × `stagger_s`, + up to `backoff_s`), then one ballot,
        its two phases each resent once; while the network still loses or delays
        messages (before `chaos_end`), each hop may need resending too:
        CHAOS_RECOVERY_QUERIES repeats of the questions and as many of a ballot."""
        t = sim.config.timing
        c = sim.config
        for voter, key, start, learned in self.undecided_after_death(sim):
            if learned is None and (voter, key) in self.past_life:
                continue  # refused past the round's life: in doubt (see the header)
            took = None if learned is None else learned - start
            sim.stats[f"undecided after coordinator DEAD: {_bucket(took)}"] += 1
            tx = self.txs[key]
            others = sorted((p for p in tx.participants if p != tx.coordinator),
                            key=lambda p: (p not in tx.acceptors, p))
            rank = others.index(voter) if voter in others else len(others)
            bound = rank * t.stagger_s + t.backoff_s + 2 * t.resend_s
            if start < c.chaos_end and (c.loss or c.slow):
                bound += CHAOS_RECOVERY_QUERIES * (t.query_interval_s + t.resend_s)
            if took is None or took > bound:
                when = "never" if learned is None else f"at {learned:.2f}"
                self.fail(f"undecided: {voter} learned {key} {when}, told its coordinator"
                          f" {tx.coordinator} DEAD and calm at {start:.2f}, bound"
                          f" {bound:.2f} s (one recovery)")

    def _check_results_and_ends(self, sim: World) -> None:
        """Every result an agent holds is of an attempt that ran, and every participant
        ended a workflow as its coordinator did: nobody else's word counts."""
        held = [(name, wf, agent.disk.final.get(wf), agent.disk.results.get(wf, {}))
                for name, agent in sim.agents.items()
                for wf in sorted({*agent.disk.final, *agent.disk.results})]
        for name, wf, state, steps in [*held, *self._forgotten]:
            for step, (attempt, step_state, _, _) in steps.items():
                if step_state.value in ("SUCCEEDED", "FAILED") and attempt >= 1 \
                        and (wf, step, attempt) not in self.runs:
                    self.fail(f"result: {name} holds {wf} {step} attempt {attempt}"
                              f" {step_state.value}, an attempt that never ran")
            if state is not None:
                coord = sim.workflows.get(wf)
                row = self.row(sim, wf)
                ends = set(self.ends.get(wf, {}).values())  # of every coordinator epoch
                # A loss verdict's end, told before it is made: the participants' end
                # while no coordinator made one (its coordinator died for good first).
                told = self.told_ends.get(wf, set()) if not ends else set()
                if name != coord and state not in ends | told \
                        and (row is None or row.state != state):
                    self.fail(f"end: {name} ended {wf} {state}, its coordinators"
                              f" {sorted(e.name for e in ends) if ends else None}, its"
                              f" original {row.state if row else 'never had it'}")

    def _check_sagas(self, sim: World) -> None:
        """Each compensation attempt starts once (compensation_started, throughout).
        At the end: a workflow ended SUCCEEDED has no compensation anywhere; one its
        coordinator (of any epoch) ended FAILED or CANCELLED has every SUCCEEDED step
        with a `compensate` block (as a coordinator's results or the step's own domain
        show it) COMPENSATED or COMPENSATION_FAILED at some coordinator (two epochs may
        both have ended it: either may have run it), and the coordinator that drives it
        now has no compensation left unended. Judged only while an agent that ended it
        as its coordinator still holds it (retention forgets a saga once it is over);
        not judged when a domain of an owed compensation is dead for good, or down."""
        dead = sim.dead_forever
        for summary in self.sagas_ended.values():
            sim.stats[f"saga ended {summary}"] += 1
        alive = {name: a for name, a in sim.agents.items() if a.alive}
        for wf in sim.workflows:
            holders = [(name, a) for name, a in alive.items() if wf in a.disk.final
                       and (wf in a.disk.rows or wf in a.disk.committed)]
            drivers = [(name, a) for name, a in holders
                       if a.node.compensating.driver(wf) == name]
            if not drivers:
                continue
            sagas = sorted((a.disk.epochs.get(wf, (0, name))[0], name) for name, a in drivers
                           if any(k[0] == wf for k in a.disk.compensations))
            if len({epoch for epoch, _ in sagas}) < len(sagas):
                # Two claimants of one epoch that both told the end on: one drives the
                # saga, the other yields it to it (saga_plans.rival_end).
                self.fail(f"saga: {wf} has two drivers of one epoch at the end of the"
                          f" run: {sagas}")
            info = drivers[0][1].node.running.info(wf)
            rows = {(name, k[1]): r for name, a in holders
                    for k, r in a.disk.compensations.items() if k[0] == wf}
            state = getattr(drivers[0][1].disk.final[wf], "name", None)
            if state == "SUCCEEDED":
                if rows:
                    self.fail(f"saga: {wf} SUCCEEDED and is compensated: {sorted(rows)}")
                continue
            if state not in ("FAILED", "CANCELLED"):
                continue
            owed = set()
            for st in info.spec.steps:
                domain = alive.get(info.placement.get(st.id, ""))
                views = [a.disk.results.get(wf, {}) for _, a in drivers]
                if domain is not None:
                    views.append(domain.disk.results.get(wf, {}))
                if st.HasField("compensate") and any(
                        getattr(v.get(st.id, (0, None))[1], "value", None) == "SUCCEEDED"
                        for v in views):
                    owed.add(st.id)
            if {info.placement.get(st) for st in owed} & (dead | (set(sim.agents) - set(alive))):
                continue
            sim.stats["saga judged"] += 1
            ended = {step for (_, step), r in rows.items()
                     if r.state in ("COMPENSATED", "COMPENSATION_FAILED")}
            if owed - ended:
                self.fail(f"saga: {wf} ended {state}, {sorted(owed - ended)} SUCCEEDED and"
                          f" not compensated (rows {sorted(rows)})")
            for name, _ in drivers:
                left = {step: r.state for (holder, step), r in rows.items() if holder == name
                        and r.state not in ("COMPENSATED", "COMPENSATION_FAILED")}
                if left:
                    self.fail(f"saga: {name} drives {wf}, compensations not ended at the"
                              f" end of the run: {left}")

    def _check_no_replayed_submission(self, sim: World) -> None:
        """No honest domain voted YES in a workflow the liar coordinates: the liar takes
        part in no workflow, so any such workflow is a client's signed submission it
        replayed (liar.py)."""
        liar = sim.config.liar
        if liar is None:
            return
        for key, voters in self.yes.items():
            if self.txs[key].coordinator == liar:
                self.fail(f"replay: {', '.join(sorted(voters))} admitted {key}, a signed"
                          f" submission {liar} replayed as a new workflow")

    def _check_keys_unchanged(self, sim: World) -> None:
        """Every honest domain's view of every other domain's keys is the genuine one:
        whatever records the liar forged or relayed (keyring.py) changed none."""
        expected = sim.keyring.expected
        for name, agent in sim.agents.items():
            for domain, keys in expected.items():
                if domain != name and agent.trust.keys_of(domain) != keys:
                    self.fail(f"keys: {name}'s view of {domain}'s keys changed")

# ---- re-placement after a domain is lost (agent/sim/negotiation/replacement.py) ------------


class ReplacementFailure(AssertionError):
    """An invariant of a re-placement schedule failed; the message names the seed."""


# A fence falls exactly at its deadline (the attempt's start plus the lease, for one that
# started while cut off), so an overlap of exactly one lease, allowed, can come out a
# float rounding above it.
_ROUNDING_S = 1e-9


def check_replacement(world) -> None:
    """At the end of a re-placement schedule (ReplacementWorld): at most once where it
    must be, one placement at a time, everything terminal, nothing held."""
    def fail(what: str) -> None:
        raise ReplacementFailure(f"seed {world.seed}: {what}")

    attempts = Counter((r.workflow, r.step, r.domain, r.attempt) for r in world.runs)
    for key, n in attempts.items():
        if n > 1:
            fail(f"attempt run {n} times: {key}")
    by_step: dict[tuple[str, str], list] = {}
    for r in world.runs:
        by_step.setdefault((r.workflow, r.step), []).append(r)
    for (wf, step), runs in by_step.items():
        domains = sorted({r.domain for r in runs})
        if not runs[0].idempotent and len(domains) > 1:
            fail(f"{wf} {step} is not idempotent and ran on {domains}")
        for a in runs:  # never two placements at once beyond one lease
            for b in runs:
                if a.domain >= b.domain:
                    continue
                end_a = a.end if a.end is not None else float("inf")
                end_b = b.end if b.end is not None else float("inf")
                overlap = min(end_a, end_b) - max(a.start, b.start)
                if overlap > world.lease_s + _ROUNDING_S:
                    fail(f"{wf} {step} ran on {a.domain} and {b.domain} at once for"
                         f" {overlap:.2f}s")
    for wf, flow in world.flows.items():
        if not flow.ended:
            fail(f"{wf} not terminal at the coordinator")
        due = replacement_deadline(world, flow)
        if flow.ended_at is not None and flow.ended_at > due:
            fail(f"{wf} ended at the coordinator at {flow.ended_at:.2f}, deadline {due:.2f}")
    for name, worker in world.workers.items():
        if not worker.alive:
            continue
        for wf, progress in worker.progress.items():
            open_steps = [s.id for s in progress.steps.values()
                          if s.state.value not in _TERMINAL_STEPS]
            if open_steps:
                fail(f"{name}: {wf} steps {open_steps} not terminal")
        held = [h.key for h in worker.participant.holds()]
        if held:
            fail(f"{name}: reservations leaked: {held}")


# Re-placement rounds: max_rounds (2) PREPAREs each waiting up to prepare_timeout_s (1 s);
# messages: each delayed at most 0.08 s, a handful per step (vote, decision, result).
_ROUNDS_S = 2 * 1.0
_MESSAGES_S = 6 * 0.08


def replacement_deadline(world, flow) -> float:
    """When a workflow must be terminal at the coordinator: after the later of its
    submission and the last fault (a death, a cut, a heal), the DEAD verdict, then for
    each step in turn one negotiation and every attempt at its longest, and the
    messages between them (the steps are a chain; each may be re-placed once more)."""
    steps = flow.spec.steps
    per_step = _ROUNDS_S + _MESSAGES_S + max(1 + s.retries for s in steps) \
        * world.step_time_s[1]
    return max(world.last_fault, flow.submitted_at) + world.dead_after_s \
        + _ROUNDS_S + _MESSAGES_S + 2 * len(steps) * per_step


_TERMINAL_STEPS = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "COMPENSATED",
                             "COMPENSATION_FAILED"})
