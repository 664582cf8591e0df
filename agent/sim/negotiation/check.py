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
  that was started (or, FAILED, one its domain refused to start, self-fenced), and
  every participant ended a workflow as its coordinator did; no honest domain admitted
  a submission the liar replayed, and no forged key record changed a view of keys
  (liar_check.py);
* after healing and quiescence (`finish`): no reservation leaked (every hold
  left belongs to a committed workflow that is still running, and none is in
  doubt), every workflow whose domains are all up again is terminal, and
  non-blocking: for a transaction whose coordinator died forever, every live
  YES voter learned the decision within two lease periods after the last lease
  (counted from when the network had healed and the acceptors and the voter were up;
  for a classic 2PC round, decided in its coordinator's log alone, the coordinator
  and the voter: up and not paused; that log dead with it, the voter is told by a
  participant that learned it, so one such, up, too; blocking_check.py),
  or, for a re-placement round, released its YES as the workflow ended there or as
  the holder of a later epoch answered the round void; a voter in doubt past its
  round's life (`past_life`: an acceptor refused its ballot as past the round's life
  or forgotten, or a majority of them answered it PAST_LIFE, core/negotiation/
  acceptor.py) stays in doubt, its reservation held, and is exempt from this, from
  the leak check and from the takeover deadline (takeover_check.py; counted: `in
  doubt past the round's life`), and so is its workflow from the terminal check when
  that voter is its coordinator (its row stays NEGOTIATING) if it stopped its ballot
  (core/negotiation/coordinator_doubt.py; else it fails); under classic 2PC
  (`Timing.classic`) a voter whose coordinator died for good before any live agent
  learned the decision blocks, as 2PC does (`blocked_2pc`: counted, not a failure;
  with membership views, one that another live agent could tell is held to it);
* with membership views on (runs with takeover): an in-doubt YES voter whose view
  says its coordinator is DEAD learns the decision within one recovery of being
  told, not a lease (`check_undecided_recovery`, takeover_check.py; its times to
  resolve are the run's `undecided after coordinator DEAD` stats); a committed
  workflow whose coordinator died for good ends at every live participant in time
  (`check_takeovers`, takeover_check.py);
* sagas (`check_sagas`, saga_check.py): every compensation owed is ended.
* statuses told (status_check.py): never back, and a RUNNING told before its write
  only once its COMMIT was chosen.
* cancels (`check_cancels`, cancel_check.py): a workflow whose coordinator (of any
  epoch) took a client's cancel ends CANCELLED, the same everywhere it ended, unless
  the caller was told why not: a cancel of an ended one, or of one whose other end is told, is
  refused, so the end it had stands; a taker overtaken by a later epoch before its
  end was made notes the cancel void (`cancel_void`; the client sends it on to that
  epoch's holder, cancels.py), and a taker dead for good carries nothing out. No step
  attempt of it starts at a domain after that domain learned the cancel (took it and
  drives the workflow, or ended the workflow); no reservation is left (the leak
  check above).
* end notices settle (`unsettled_ends`, settle_check.py): none still told at the
  end between two live domains that both ended the workflow, once it had time to
  settle and the network lets it through.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from fedorch.core.negotiation.acceptor import AcceptorRecord, RoundPastLife
from fedorch.core.negotiation.messages import Ballot, Key, TxInfo, Value
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.sim.negotiation.blocking_check import blocked_2pc, check_blocking
from fedorch.sim.negotiation.cancel_check import CancelCheck
from fedorch.sim.negotiation.liar_check import check_keys_unchanged, check_no_replayed_submission
from fedorch.sim.negotiation.past_life_check import coordinator_past_life
from fedorch.sim.negotiation.saga_check import check_sagas
from fedorch.sim.negotiation.settle_check import unsettled_ends
from fedorch.sim.negotiation.status_check import StatusCheck
from fedorch.sim.negotiation.takeover_check import (
    check_takeovers,
    check_undecided_recovery,
    network_hit,
)

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World




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
        self.fenced_unstarted: set[tuple[str, str, int]] = set()  # FAILED, never started
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
        # The workflows whose end a successor told in its epoch (1 or later), made or not.
        self.told_later: set[str] = set()
        # Retention (core/node/retention.py): each coordinator row as it was forgotten.
        self.compacted_rows: dict[str, object] = {}
        # Cancels (core/node/cancel.py): who took, gave up and was refused each
        # (cancel_check.py); `cancelled`: workflow -> the coordinator that first took it.
        self.cancels = CancelCheck(self)
        self.cancelled = self.cancels.cancelled
        self.status = StatusCheck(self)  # what watchers are told (status_check.py)
        # Sagas (core/node/compensating.py): each compensation attempt started, by whom;
        # each saga's summary as its driver ended it.
        self.comp_runs: dict[tuple[tuple[str, str, int], str], str] = {}
        self.sagas_ended: dict[str, str] = {}
        self._sim: World | None = None
        self._forgotten: list[tuple[str, str, object, dict]] = []  # (agent, wf, end, results)
        # (voter, key): in doubt past the round's life, refused by its acceptors
        # (core/negotiation/acceptor.py): it stays in doubt, never decided wrongly.
        self.past_life: set[tuple[str, Key]] = set()
        # (agent, key) -> (when, the other side, delay or None: lost) of the network's
        # hits on its recovery messages (takeover_check.network_hit).
        self.hits: dict[tuple[str, Key], list[tuple[float, str, float | None]]] = {}
        # wf -> (when, sender, receiver, delay or None) of the hits on its end notices
        # and its takeover's exchange before them (takeover_check.TAKEOVER_EXCHANGE).
        self.end_hits: dict[str, list[tuple[float, str, str, float | None]]] = {}

    def fail(self, what: str) -> None:
        if len(self.violations) < 20:
            self.violations.append(what)

    # ---- hooks the simulated shells call ------------------------------------------

    def network_hit(self, src: str, dst: str, msg: object, now: float,
                    delay: float | None = None) -> None:
        network_hit(self.hits, src, dst, msg, now, delay, self.end_hits)

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

    def step_fenced(self, agent: str, run: tuple[str, str, int]) -> None:
        """`agent`, cut off past its step lease, never started `run` and ended it FAILED
        (core/node/self_fencing.py): the step's domain's own word of an attempt that
        never ran, not a forged one (takeover soak seed 88000784: a retry due while cut
        off, its FAILED named as of an attempt that never ran)."""
        self.fenced_unstarted.add(run)

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
        # The attempt number is the idempotency key at its domain: a step that ran in
        # two domains (placed again) has a compensation in each (saga_runs.py).
        if (run, agent) in self.comp_runs:
            self.fail(f"saga: compensation attempt {run} started twice at {agent}")
        self.comp_runs[(run, agent)] = agent

    def compensation_ended(self, agent: str, wf: str, summary: str) -> None:
        """A driver's saga ended: it compensated every step its results show SUCCEEDED
        with a `compensate` block (a result still on its way joins later: judged at the
        end of the run, saga_check.py, while retention has not forgotten the saga)."""
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
        if epoch >= 1:
            self.told_later.add(wf)

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
        if row.committed and not any(e >= 1 for e in self.ends.get(wf, {})) \
                and wf not in self.told_later:
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
                if h.state is HoldState.PREPARED and self.blocked_2pc(sim, h.key):
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
            if coordinator_past_life(self, sim, coord, (wf, row.round)):
                continue  # its coordinator in doubt past the round's life: stays so
            self.fail(f"terminal: {wf} is still {row.state.name} at {coord} after healing")
        self._check_results_and_ends(sim)
        check_sagas(self, sim)  # saga_check.py
        check_no_replayed_submission(self, sim)  # liar_check.py
        check_keys_unchanged(self, sim)
        if sim.config.timing.takeover_after_s is not None:
            check_takeovers(self, sim)  # takeover_check.py
            check_undecided_recovery(self, sim)
        self.check_cancels(sim)
        check_blocking(self, sim, dead, lease)  # blocking_check.py
        for line in unsettled_ends(sim):  # settle_check.py: end notices settle
            self.fail(f"settle: {line}")

    def blocked_2pc(self, sim: World, key: Key) -> bool:
        return blocked_2pc(self, sim, key)  # blocking_check.py

    def check_cancels(self, sim: World) -> None:
        self.cancels.check(sim)  # cancel_check.py

    def _check_results_and_ends(self, sim: World) -> None:
        """Every result an agent holds is of an attempt that ran, and every participant
        ended a workflow as its coordinator did: nobody else's word counts."""
        held = [(name, wf, agent.disk.final.get(wf), agent.disk.results.get(wf, {}))
                for name, agent in sim.agents.items()
                for wf in sorted({*agent.disk.final, *agent.disk.results})]
        for name, wf, state, steps in [*held, *self._forgotten]:
            for step, (attempt, step_state, _, _) in steps.items():
                run = (wf, step, attempt)
                if step_state.value in ("SUCCEEDED", "FAILED") and attempt >= 1 \
                        and run not in self.runs and not (
                            step_state.value == "FAILED" and run in self.fenced_unstarted):
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
