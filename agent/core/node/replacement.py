"""A step lost with its domain, placed again by a new negotiation round, in the Node.

Theory of operation
-------------------
domain_loss.py resolves the steps of a gone domain through the loss table; a step the
table would place again (not started, or started and `idempotent: true`, with
`on_domain_loss: replace`, the default) comes here instead of failing. The
coordinator of the workflow's current epoch (the one that `drives` it: the original,
epoch 0, RUNNING; or a successor acting in the epoch it won) runs, one step at a
time, a negotiation round for that step only; a successor only once a fresh majority
of its electorate granted its epoch again (replacement_successor.py, which says why,
and what else differs: its epoch's own round numbers, its certificate on the PREPARE):

- the Coordinator core in classic mode (one participant: the new domain), its rounds
  numbered after every round it used (the committed one, and every re-placement round
  before: `replaced_rounds`, written before the first PREPARE, so a restart never
  reuses a number: `Mandates.first_round`), a placer that keeps every other step where
  it is and leaves out every domain the step was lost on, every member the view says
  is gone, and this Node (replacement_placer.py). The PREPARE is the workflow's own
  (its signed spec, WfInfo.lost naming the lost domain, WfInfo.coordinator the
  original's): the candidate's policy votes as usual and its YES holds a reservation;
- on COMMIT the decision is written with the step's new placement (`placements`:
  epoch, domain, lost); the coordinator's progress takes it (Progress.placed_again: the
  step's placement epoch, its fencing token, becomes the round's number); every
  participant, and the new domain, is told (PlacedMsg, resent until acknowledged:
  they write it, re-report the results the step needs, and the coordinator's copy of
  the needs' outputs rides along for needs whose own domain is gone), and, with
  takeover, the COMMIT goes to the new domain only once the placement is told to
  every live member and held by enough of the electorate to meet every majority of it (replacement_telling.py:
  told before made, and why that is safe in any epoch);
- on ABORT (refusals, silence, no candidate left after `max_rounds`) the step FAILS,
  naming the lost domain and why (Progress.replacement_failed), and the workflow goes
  on as after any failed step. A failure to place again is a verdict like a loss's:
  with takeover its end is told before it is made (DomainLoss.hold_end).

The round is classic 2PC, decided by its coordinator's log alone (replacement_log.py:
what it owns, answers and refuses, and when its records are collected).

Its life. The round states when it began (TxInfo.created_ms, signed with it: this
Node's wall clock, a successor's own, as the horizons are per TxInfo.coordinator), as
a Paxos round does: the new domain's record of its own recovery ballots of it (the
acceptors are this Node and the new domain) goes by the round's life (retention.py).

Acting. A coordinator that starts acting in an epoch it won (takeover.py's Act) starts
the round of each step still waiting to be placed again (`acting`): a round of its own
that ended while it followed another's epoch (`failed` and `start` do nothing then)
left the step waiting, and its lost domain may be back, so no loss would start one.
Safe as any round of a driver is: the step's lost placement is over already (its epoch
moved on when it was sent back, and its results are fenced), a successor's round waits
for its fresh majority (replacement_successor.py), and its COMMIT is told before made.

Deadlines. `timer`, asked after every turn, reads the earliest of a DeadlineTable
(deadlines.py), not every core: a core's deadline is set again after each of its steps
(`_run` follows every call that moves it) and dropped with it.

Fencing. Every result carries its placement's epoch (ResultMsg.epoch); a result from an
older placement than the one known here is refused (running.py, `on_result`), counted
in `stats` and noted ("placement_refused") for the driver to log.

Handed over: a COMMIT an original following a later epoch never sent, by a successor
told the placement; a new domain in doubt asks (replacement_handover.py: why safe).

A later epoch granted. A driver that granted (or follows) a later epoch held by
another decides no COMMIT: the YES of its round under way ABORTS the round (`on_vote`:
the ABORT goes to the new domain, and is the log's answer), and it starts no round
(`start`) until it acts in an epoch of its own. That COMMIT could never leave
(replacement_telling.py), and the later holder, knowing no placement of the round, may
answer it void: kept, the placement would ride on this Node's grants of still later
epochs, whose holder would wait for the step at a new domain that released its YES
(takeover soak seed 47000184; replacement_handover.py, "Void").
A YES at a Node that no longer drives in the epoch its round began in (a claimant,
or acting in a newer one) ABORTS it too, and a step sent back in an older epoch is
judged again before its next round (replacement_epochs.py: seed 154001212).

Restore. The placements on record are applied again as the progress is rebuilt
(placed_here.py, every participant's side: told, or the new domain). A round cut short
by a crash has no decision on record: its candidate's query is answered ABORT
(presumed: replacement_log.py), and the step, still on its lost domain in the rebuilt
progress, is resolved again when the view is posted, in a new round. The placements
on record are told again (replacement_telling.py, `retell`).

With takeover, the domains of the new placements are the workflow's like the others
(`domains_of`, every Node's view): a successor's claim and end reach them, the told
PlacedMsg carries the electorate for a new domain new to the workflow, and the
takeover part counts them (takeover.py, `placed`).

Not done here (docs/architecture.md): a downstream participant that heard a late
result of the lost placement before it was told the new one keeps it. (The new domain
of a round whose coordinator died for good mid-round asks the workflow's members, and
the holder of a later epoch answers: the COMMIT handed out, the end, or the round void:
replacement_handover.py.)
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from fedorch.core.negotiation.coordinator import (
    Coordinator,
    Finished,
    PersistDecision,
    Phase,
    SendDecision,
    SendPrepare,
)
from fedorch.core.negotiation.messages import (
    Decision,
    DecisionAnswer,
    Key,
    TxInfo,
    VoteIn,
)
from fedorch.core.node.authority_steps import earlier_for
from fedorch.core.node.deadlines import DeadlineTable
from fedorch.core.node.domain_loss import was_lost
from fedorch.core.node.records import FinalMsg, PrepareMsg, VoteMsg, WfInfo
from fedorch.core.node.replacement_epochs import judged_again, sent_back, stale
from fedorch.core.node.replacement_handover import Handover
from fedorch.core.node.replacement_heard import not_again
from fedorch.core.node.replacement_log import RoundLog
from fedorch.core.node.replacement_placer import round_placer
from fedorch.core.node.replacement_successor import Mandates
from fedorch.core.node.replacement_telling import TOLD_KINDS, Telling
from fedorch.core.workflow.domain_loss import not_replaced_reason
from fedorch.core.workflow.progress import Outcome, StepState


class Replacements:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node
        # A successor's part: it hands out a told placement's COMMIT.
        self.handover = Handover(self)
        # Told before made (replacement_telling.py).
        self.told = Telling(self)
        # A successor's fresh majority before each of its rounds (replacement_successor.py).
        self.mandates = Mandates(self)
        # What its log owns, answers, refuses and collects (replacement_log.py).
        self.log = RoundLog(self)
        self.reset()

    def reset(self) -> None:
        """A restore: rounds under way are gone (see the header)."""
        # Workflow -> (core, step, lost domain) of the round under way.
        self.cores: dict[str, tuple[Coordinator, str, str]] = {}
        # Workflow -> its core's deadline (see Deadlines above).
        self.due = DeadlineTable()
        # (workflow, round) -> (new domain, COMMIT) told and not yet sent to it (None:
        # a successor's handover, replacement_handover.py).
        self.telling: dict[Key, tuple[str, Any]] = {}
        # (workflow, round) -> the domains that acknowledged its PlacedMsg.
        self.acked: dict[Key, set[str]] = {}
        # Workflow -> (round, creation time) of the round under way (see "Its life").
        self.created: dict[str, tuple[int, int]] = {}
        # (workflow, step) -> the epoch it was sent back in (replacement_epochs.py).
        self.sent_back_in: dict[tuple[str, str], int] = {}
        self.handover.early.clear()
        self.told.resending.clear()
        self.mandates.reset()

    # ---- what the Node asks ------------------------------------------------------------

    def domains_of(self, wf: str) -> set[str]:
        """Every domain of the workflow as known here: the committed placement's, each
        new placement's on record and the one it was lost on (a new domain's placement
        is its round's: the lost one is named only so; stalled schedule seed 135)."""
        d = self.n.state
        row = d.rows.get(wf)
        out = set(row.info.placement.values()) if row is not None else set()
        if row is None and wf in d.committed:
            info = self.n.running.info(wf)
            # And the domain its round replaced, when that is how this Node came in:
            # a participant as everywhere (authority.py's `_epoch_of` says why).
            out.update((*info.placement.values(), info.lost))
        for step, (_, dom, lost) in d.placements.get(wf, {}).items():
            # The lost domain too: a new domain new to the workflow knows of it only so,
            # and, as a successor, must tell it the end (back, it may hold the old
            # round's COMMIT and follow this epoch, refusing the original's end); and
            # every domain the step was placed on before (a step placed again three
            # times: its middle ones), whose run may owe a compensation it reports at
            # the end (saga_runs.py).
            out.update((dom, lost, *d.earlier_domains.get(wf, {}).get(step, ())))
        out.discard("")
        return out

    def timer(self) -> float | None:
        return min((t for t in (self.due.earliest(), self.mandates.timer(),
                                self.told.timer()) if t is not None), default=None)

    def tick(self, now: float) -> None:
        due = self.due.due(now)
        if len(due) > 1:  # in the order of the cores, as they were walked
            order = {wf: i for i, wf in enumerate(self.cores)}
            due.sort(key=order.__getitem__)
        for wf in due:
            core = self.cores[wf][0]  # a due key's core is there (`_deadline`, `ended`)
            t = core.get_timer()
            if t is not None and t <= now:
                core.handle_timer(now)
                self._run(now, wf)
        self.mandates.tick(now)
        for key in list(self.telling):
            self.told.send_if_told(key)
        self.told.resend(now)  # our COMMITs still owed an answer (replacement_telling.py)

    # ---- the coordinator: a lost step, its round ---------------------------------------

    def step_lost(self, wf: str, step: str, domain: str, state: str) -> None:
        """The loss table sent `step` back to be placed again (on a copy of the progress,
        with takeover): the workflow's own progress takes it too (a placement no longer
        reported from: its epoch moves on), unless it already did."""
        p = self.n.progress[wf]
        s = p.steps[step]
        if s.state is StepState.PENDING and not s.domain:
            return
        s.epoch += 1
        s.lost_to, s.lost_as = domain, state
        s.state, s.domain, s.error = StepState.PENDING, "", ""
        sent_back(self.n, wf, step)

    def start(self, now: float, wf: str, *, mandated: bool = False) -> None:
        """A round for the first step of `wf` waiting to be placed again, if none runs.
        A successor's only once a fresh majority of its electorate granted its epoch
        again (`mandated`: replacement_successor.py asks first, then calls back)."""
        n = self.n
        d = n.state
        if wf in self.cores or not n.domain_loss.drives(wf) or n.domain_loss.holds(wf) \
                or self.handover.later_holder(wf):  # its COMMIT would never leave (`on_vote`)
            return
        p = n.progress[wf]
        waiting = p.awaiting_placement()
        if waiting and (why := not_again(p.steps[waiting[0]])) is not None:  # started
            return self.failed(now, wf, waiting[0], p.steps[waiting[0]].lost_to, why)
        if waiting and (why := judged_again(n, wf, waiting[0])) is not None:
            return self.failed(now, wf, waiting[0], p.steps[waiting[0]].lost_to, why)
        if not waiting:
            return
        if n.domain_loss.epoch(wf) >= 1 and not mandated:
            self.mandates.ask(now, wf)
            return
        step = waiting[0]
        s = p.steps[step]
        first = self.mandates.first_round(wf)
        if first is None:
            self.failed(now, wf, step, s.lost_to, "this coordinator epoch has no round"
                                                   " numbers left")
            return
        n.point("re-placement round")
        d.replaced_rounds[wf] = first + n.t.max_rounds - 1
        core = Coordinator(wf, placer=round_placer(n, wf, step, {*s.replaced_from, s.lost_to}),
                           max_rounds=n.t.max_rounds, prepare_timeout_s=n.t.prepare_timeout_s,
                           first_round=first)
        self.cores[wf] = (core, step, s.lost_to)
        n.stats["re-placement round started"] += 1
        core.start(now)
        self._run(now, wf)

    def acting(self, now: float, wf: str) -> None:
        """This Node starts acting in an epoch of `wf` it won (takeover.py). A placement
        told before it won, whose COMMIT its new domain may never have had, is handed
        out, told everywhere again first (replacement_handover.py). A step still waiting
        to be placed again gets its round: one of ours cut short when our drive lapsed
        (we granted or followed a later epoch meanwhile: `failed` and `start` did
        nothing then) waits for no loss to come, as its lost domain may be back by now
        (2PC takeover soak seed 4920841: the step waited for ever, its domain told it
        was placed nowhere)."""
        self.handover.adopt(wf)
        self.handover.asked_early(wf)
        self.start(now, wf)

    def lost(self, now: float, domains: list[str]) -> None:
        """The view says `domains` are gone: a round asking one of them aborts now, and
        a COMMIT told need not wait for them."""
        for wf, (core, _, _) in list(self.cores.items()):
            if core.phase is Phase.PREPARING:
                for domain in domains:
                    if domain in core.placement.values():
                        core.domain_lost(now, domain, self.n.members.get(domain, "DEAD"))
                self._run(now, wf)
        for key in list(self.telling):
            self.told.send_if_told(key)

    def on_vote(self, now: float, src: str, msg: VoteMsg) -> None:
        entry = self.cores.get(msg.key[0])
        if entry is None:
            return  # a round ended (or cut short by a restart): its ABORT was sent
        if msg.yes and entry[0].round == msg.key[1] and entry[0].phase is Phase.PREPARING \
                and (why := "a later epoch granted here" if self.handover.later_holder(
                    msg.key[0]) else stale(self.n, msg.key[0], msg.key[1])):
            # The YES would make a COMMIT that could never leave, and that the later
            # holder's void must outlive (see the header, "A later epoch"), or one on
            # the verdict of an epoch that is over (replacement_epochs.py): ABORTED.
            self.n.stats[f"re-placement round aborted: {why}"] += 1
            entry[0].cancel(now, why)
            self._run(now, msg.key[0], cut_short=True)
            return
        # A YES's evidence, as received (the boundary checked it: authority.py).
        entry[0].receive_vote(now, VoteIn(msg.key[1], src, msg.yes, msg.reason,
                                          msg.evidence))
        self._run(now, msg.key[0])

    # ---- running the core's actions ----------------------------------------------------

    def _run(self, now: float, wf: str, *, cut_short: bool = False) -> None:
        """`cut_short`: the round is cancelled (the workflow ended here, or a later epoch
        was granted here: `on_vote`), no timer fired."""
        n = self.n
        d = n.state
        core, step, lost = self.cores[wf]
        for a in core.next_actions():
            if isinstance(a, SendPrepare):
                caps = {s.id: s.capability for s in n.running.info(wf).spec.steps}
                held = n.domain_loss.epoch(wf)  # a successor's: shown with its certificate
                won = n.takeover.proof.own_certificate(wf, held) \
                    if held >= 1 and n.takeover is not None else ()
                n.send(a.domain, PrepareMsg(self._tx(now, wf, a.round, a.domain),
                                            ((step, caps[step]),),
                                            self._info(wf, step, a.domain, lost), held, won))
            elif isinstance(a, PersistDecision):
                value = core.decision(a.round)
                if value.commit:  # an ABORT is presumed: no COMMIT of its number can come
                    n.point("re-placement decision")
                    d.records[(wf, a.round)] = value
                    self._placed(now, wf, step, a.placement[step], a.round, lost, value)
                if not cut_short:  # no timer, no verdict (observers)
                    n.note("decided", (wf, a.round), value, now)
            elif isinstance(a, SendDecision):
                value = core.decision(a.round)
                if value is not None and (wf, a.round) not in self.telling:
                    n.send(a.domain, Decision((wf, a.round), value, n.name))
            elif isinstance(a, Finished):
                # Its COMMIT is on record (answered, told, collected at the new domain's
                # acknowledgement): the core is done either way.
                self.cores.pop(wf, None)
                self.created.pop(wf, None)
                if not a.committed and not a.cancelled:
                    self.failed(now, wf, step, lost,
                                f"no domain could take it after {lost} was lost ({a.reason})")
                self.start(now, wf)
        self._deadline(wf)

    def _deadline(self, wf: str) -> None:
        """The table takes the deadline of `wf`'s core now (none: no core, or no timer)."""
        entry = self.cores.get(wf)
        t = entry[0].get_timer() if entry is not None else None
        if t is None:
            self.due.pop(wf, None)
        else:
            self.due[wf] = t

    def _tx(self, now: float, wf: str, round_: int, domain: str) -> TxInfo:
        # Classic 2PC (see the header); the acceptors only make a well-formed round, and
        # the new domain's recovery ballots, which this Node refuses.
        made = self.created.get(wf)
        if made is None or made[0] != round_:  # its first PREPARE: the round begins
            made = self.created[wf] = (round_, max(1, self.n.wall_ms(now)))  # 0: none
        return TxInfo(wf, round_, self.n.name, (domain,), tuple(sorted({self.n.name, domain})),
                      created_ms=made[1])

    def _info(self, wf: str, step: str, domain: str, lost: str) -> WfInfo:
        # `coordinator` stays the original's (the one the workflow id names, whom the
        # submission was signed for), a successor's round too: the round's TxInfo names
        # who runs it.
        info = self.n.running.info(wf)
        p = self.n.progress[wf]
        placement = {sid: s.domain or info.placement.get(sid, "")
                     for sid, s in p.steps.items()}
        placement[step] = domain
        return replace(info, placement=placement, lost=lost, stated=None,
                       before=earlier_for(self.n.state, wf, step, lost, domain=domain))

    def _placed(self, now: float, wf: str, step: str, domain: str, epoch: int, lost: str,
                value: Any) -> None:
        """The round committed (its decision in this write): the new placement is
        written, taken here, and told."""
        n = self.n
        d = n.state
        before = earlier_for(d, wf, step, lost, domain=domain)  # every domain before
        d.placements[wf] = {**d.placements.get(wf, {}), step: (epoch, domain, lost)}
        d.earlier_domains[wf] = {**d.earlier_domains.get(wf, {}), step: before}
        p = n.progress[wf]
        p.placed_again(step, domain, epoch, lost)
        verdict = d.results.get(wf, {}).get(step)
        if verdict is not None and was_lost(lost, verdict[1], verdict[3]) \
                and not n.domain_loss.holds(wf):
            # A verdict of ours on the lost placement whose end was never made (void:
            # this Node followed a later epoch, then drove again) is over with it: left
            # on record, it would refuse the new placement's result as one after a
            # terminal one, and the workflow would wait for ever (takeover soak seed
            # 8101707). A verdict still held keeps its end told.
            d.results[wf] = {k: v for k, v in d.results[wf].items() if k != step}
        n.stats["step placed again"] += 1
        n.note("placed_again", (wf, step), domain, epoch, p.steps[step].idempotent, now)
        if n.takeover is not None:
            self.telling[(wf, epoch)] = (domain, value)
            n.takeover.placed(wf, domain)
        self.told.tell(wf, step)
        for other, (e, _, _) in d.placements[wf].items():
            # A placement still told waits for every live domain of the workflow: the
            # new one too (seeds 4200157, 4200171: it was never told, and that COMMIT
            # waited for it for ever).
            if (wf, e) in self.telling and e != epoch and domain != n.name:
                n.reliable(domain, ("placed", wf, other, e, domain), self.told.message(wf, other))
        n.running.report_needs(wf, step)  # the needs run here, to the new domain
        n.running.start_ready(now, wf)
        if (wf, epoch) in self.telling:
            self.told.send_if_told((wf, epoch))

    def failed(self, now: float, wf: str, step: str, lost: str, why: str) -> None:
        """No domain took the step, or a successor had no fresh majority to run its
        round (`why`): it FAILS naming the lost domain (a verdict of this coordinator's:
        with takeover, its end is told before it is made)."""
        n = self.n
        p = n.progress.get(wf)
        if p is None or not n.domain_loss.drives(wf):
            return
        s = p.steps[step]
        reason = not_replaced_reason(lost, p.may_have_started(step), why, s.lost_as)
        judged = p if n.takeover is None else copy.deepcopy(p)
        if not judged.replacement_failed(step, reason):
            return
        n.stats["re-placement failed"] += 1
        n.point("step lost")
        js = judged.steps[step]
        n.state.results[wf] = {**n.state.results.get(wf, {}),
                               step: (js.attempts, js.state, {}, js.error)}
        n.compensating.results.ran_in(wf, step, js.state, lost)  # saga_results.py
        if judged is not p and judged.outcome() is Outcome.FAILED:
            n.domain_loss.hold_end(wf)
            return
        if judged is not p:
            p.replacement_failed(step, reason)
        n.running.check_outcome(now, wf)

    def ended(self, now: float, wf: str) -> None:
        """`wf` ended here: a round under way is aborted, nothing more is told."""
        self.mandates.drop(wf)
        self.handover.early.pop(wf, None)
        entry = self.cores.pop(wf, None)
        if entry is not None and entry[0].phase is Phase.PREPARING:
            self.cores[wf] = entry
            entry[0].cancel(now, "the workflow ended")
            self._run(now, wf, cut_short=True)
            self.cores.pop(wf, None)
        self.created.pop(wf, None)
        self.due.pop(wf, None)
        self.sent_back_in = {k: e for k, e in self.sent_back_in.items() if k[0] != wf}
        later = self.handover.later_holder(wf)
        for key in [k for k in self.telling if k[0] == wf]:
            # Decided, never told, never sent: the new domain hears the end instead
            # (from the later epoch's holder, where one is: it follows it, or was
            # answered void; or from us when it asks, `answer`).
            domain, _ = self.telling.pop(key)
            if domain != self.n.name and not later:
                self.n.reliable(domain, ("final", wf, domain),
                                FinalMsg(wf, self.n.state.final[wf]))
        for key in [k for k in self.acked if k[0] == wf]:
            del self.acked[key]
        n = self.n
        n.pending.drop(wf, lambda k, v: k[0] in TOLD_KINDS)  # each told hears the end
        n.placed_here.ended(now, wf)  # a YES of a round here, undecided, goes

    # ---- told before made (replacement_telling.py), as the Node's parts ask -----------

    def placed_acked(self, now: float, src: str, msg_id: tuple, void: bool = False) -> None:
        if void and self.handover.void_acked(now, src, msg_id):
            return  # its new domain holds nothing of it: dropped (replacement_handover.py)
        self.told.placed_acked(now, src, msg_id)

    def may_send_commit(self, wf: str, domain: str) -> bool:
        return self.told.may_send_commit(wf, domain)

    def retell(self, wf: str) -> None:
        self.told.retell(wf)

    # ---- the log (replacement_log.py), as the Node's parts ask ------------------------

    def owns(self, key: Key) -> bool:
        return self.log.owns(key)

    def answer(self, key: Key, src: str) -> DecisionAnswer:
        return self.log.answer(key, src)

    def refuses_paxos(self, key: Key) -> bool:
        return self.log.refuses_paxos(key)

    def on_decision_ack(self, now: float, src: str, key: Key) -> None:
        self.log.on_decision_ack(now, src, key)

    def end_acked(self, wf: str, src: str) -> None:
        self.log.end_acked(wf, src)

    def restored(self, now: float) -> None:
        self.log.restored(now)
