"""What membership's DEAD and LEFT do to a committed workflow's steps, in the Node.

Theory of operation
-------------------
member_loss.py acts on negotiations when the view says a member is gone (DEAD or
LEFT; SUSPECT changes nothing); this part acts on the steps of committed workflows.
A step placed on a gone domain will never report: its workflow would wait for it for
ever. So the coordinator of the workflow's current epoch (`drives`: its original
coordinator, epoch 0, RUNNING, no later epoch followed; or, after a takeover, the
successor acting in the epoch it won, its certificate on record, no later epoch
followed) resolves every step placed there that is not terminal through the pure
core's loss table (Progress.domain_lost, LOSS_TABLE in core/workflow/domain_loss.py),
the reasons naming the domain and whether it was DEAD or LEFT; the dead original's
own domain is one like any other to its successor:

- a step that had started there (or could have: it was ready as far as the lost
  domain could know: a restored coordinator counts a need's result it may have missed
  while down as there already, core/workflow/domain_loss.py) and is not idempotent, or
  whose spec says `on_domain_loss: fail`, FAILS;
- a step the table would place again (not started, or idempotent, with `replace`)
  is sent back to be placed again: a negotiation round of its own places it on
  another domain (replacement.py; a successor's only on a fresh majority of its
  electorate, replacement_successor.py), or, none taking it, it FAILS naming the domain
  (a verdict like the ones here: with takeover, its end told before it is made,
  `hold_end`). Nothing waits for a lost domain for ever.

When. On each change of the view that makes a member gone (`lost`, after member_loss),
when a round commits while a domain it placed a step on is already gone
(`resolve_gone`, from Running.resume), and when a successor starts acting
(`resolve_gone`, from the takeover part's Act: the original it took over from is
usually gone already). A restored Node knows no view until its driver
posts it again (node.py): the same changes then act as above.

Durable first. A resolved step's FAILED result is written in the results table, in the
Ready of the view change, under the point "step lost"; whatever it causes follows.

A verdict is one coordinator's, so its end is told before it is made (with coordinator
takeover composed, as the node engine runs it). A step's own result is the same
whoever collects it, so any two coordinators of a workflow (the original back from a
crash, a successor that took it over) end it alike on results; a loss verdict is not:
the lost domain may come back and report the step it ran, to a successor elected while
the original was down. So, with takeover:
- the verdict is worked out on a copy of the workflow's progress and written as the
  step's result (for status, restore and the fence below); the progress itself takes
  it only when the end is made (`_apply`; a restored one leaves it out: `deferred`);
- the coordinator tells the end (FinalMsg, FAILED, resent until acknowledged) to every
  participant and every elector (the committed round's acceptors: an extra acceptor
  holding no step keeps it, elector_ends.py; a successor tells the original too, in
  its epoch with its certificate, as it tells any end: takeover.py; who is told, and
  the notice: domain_loss_audience.py; a domain outside the electorate only once the
  count below holds, so none keeps an end a later epoch may not find) and makes it
  itself, as on any outcome (running.py, or takeover.py for a successor: its row, its
  saga, its notices), once every participant the view does not say is gone, and one
  other than itself, acknowledged it (`held`, `acked`), and the electors that have not
  acknowledged it, itself aside, are fewer than a majority of the electorate
  (`_release_if_told`); the electors outside the workflow's domains are then told no
  more, but by a successor, which shows its certificate (one may keep an older
  epoch's end, told and never made: told_ends.py). Until then its status shows the workflow RUNNING. An elector that ended the
  workflow (a participant, or one holding no step) answers a takeover claim with its
  end (takeover_claims.py), so a successor elected meanwhile takes that end instead of
  deciding one; only an elector that forgot the end since (retention, after
  keep_ended_s) could grant one that decides otherwise (docs/failures.md);
- why that is safe in any epoch k (0 or a successor's): a later coordinator must win
  epoch k+1 or above with the grants of a majority of the electorate, and that
  majority meets every set holding more than a minority, so it holds an elector that
  acknowledged the end (any elector: a participant or an extra acceptor), or this one. An elector acknowledges an end of epoch k only
  while it holds no later epoch (the authority table refuses an older epoch's end),
  and, once it ended the workflow, answers every claim with that end instead of a
  grant (takeover_claims.py): so a later claimant finds the end and announces it, or
  never wins. Once a member took its told end, or may have (told, it went gone without
  a word: `kept_elsewhere`), this Node answers claims with it as that member would
  (takeover_claims.py; seed 18100834); else it may grant one and follow it (`drives`
  is then false and the verdict void, below). The argument
  reads the same for k = 0 and k >= 1: it uses only that the told end is this epoch's
  and that electors refuse older epochs once they follow a later one.
- a coordinator that dies holding never made the end: a successor decides, on results
  and on its own verdicts. Back, it follows the later epoch, and its verdict is void
  (`tick`: told no more; the step's own result, refused until then, is taken). If
  that successor ended the workflow and died for good, the old coordinator's end
  notice reaches members that hold the later epoch: each that ended it there answers
  with its end and that end's proof (the successor's certificate, kept with the end
  in `end_proofs`; EndNotices.answer_overtaken; a result it reports to one is answered
  so too, EndNotices.tell_overtaken), and the old coordinator follows the proven holder
  and takes that end (takeover_claims.py); an extra acceptor that granted the later
  epoch and holds no end shows it that epoch instead (elector_ends.py). A coordinator that followed a later epoch
  and won one itself before its next look tells its held end anew in its own epoch
  if what made it stands, else drops it (`_retell`) and looks at its outcome again
  at once: the hold kept every outcome back, and the one its last result made may
  have come meanwhile, with nothing after it to look again. A workflow whose live
  electors are no majority, or with no other live participant or elector, waits for
  the first to come back and acknowledge (told the end at once then: running.py,
  `on_result`).
The hold is rebuilt on restore (`resumed`): a FAILED result whose error is the loss
table's for the step's own domain (`was_lost`) is a verdict; the acknowledgements are
durable (`final_acked`). Without takeover (no other coordinator can exist) the verdict
goes into the progress and the end is made at once.

Ends on results are told first too (`tell_end`, from Running.check_outcome and the
takeover part's successor_outcome), with takeover, while another domain may claim
(another participant, or the original: core/workflow/takeover_overtaken.py):
made at once, an end that reached no elector before its coordinator died could be
contradicted by a successor's verdict (a step whose result that coordinator alone
held, lost with it: the takeover soak's seed 1401911). The hold is the same (`held`
maps the workflow to the end told); once released, `released` lets the outcome path
make it. A participant that acknowledged the told end holds it (it takes the first end
it hears; only a later epoch's proven end replaces it, told_ends.py: one never made),
so the made end's notice is not told to it again (`acknowledged_as_made`): the
original's told notice says `settled` as the made one would, and the made one goes to
all only when it says settled and the told one did not. On restore such an end is
told again by that path (check_outcome), and made at once if enough acknowledged it.
A successor makes the end it released as told (`releasing`), not what its progress
says by then: a step its verdict failed, placed again on it by the epoch before (that
round in doubt at the verdict), may have run there since (takeover soak seed 117000348).

A cancel's end (CANCELLED, cancel.py) is told first the same way, by the coordinator
of the current epoch that took the cancel (`tell_end`, from Cancels.carry_out): held
as CANCELLED while the cancel is on record (`_hold`: no outcome or verdict replaces
it), made once released as any held end is, the outcome path going to the cancel
first (Running.check_outcome, the takeover part's successor_outcome). Made void by a
later epoch (`_void`), the cancel is noted void (Cancels.void) so that its caller is
answered what happened.

Fencing, what there is of it. While this Node drives the workflow, a step's terminal
result on record is never replaced by a later report (running.py, `on_result`): a lost
domain that comes back and reports the step it ran cannot turn the verdict into its
own result; it is refused, counted in `stats` ("result of a lost placement refused"),
and left unacknowledged (it comes again: taken if the verdict turns void). A step
placed again carries a placement epoch its results carry too (replacement.py): a
result of an older placement is refused by it.
"""

from __future__ import annotations

from typing import Any

# was_lost: running.py and replacement.py import it from here, as before it moved.
from fedorch.core.node.domain_loss_audience import end_notice, participants, told_to
from fedorch.core.node.domain_loss_verdict import placed, resolve, was_lost
from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.core.workflow.takeover_events import majority


class DomainLoss:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node
        # Workflows whose end (a loss verdict's, or one on results) is told and not yet
        # made here: workflow -> that end.
        self.held: dict[str, WorkflowState] = {}
        # Those whose told end may now be made (enough acknowledged it).
        self.released: set[str] = set()
        # The notice each held end is told with (one per hold, so every participant
        # hears the same), and the one being released while its end is made: those
        # that acknowledged it are not told the made end again (`acknowledged_as_made`).
        self.notices: dict[str, FinalMsg] = {}
        self._releasing: FinalMsg | None = None
        # Members told a held end, gone in the view since, not having acknowledged it
        # then: each may have taken it (`kept_elsewhere`). Workflow -> members.
        self.told_gone: dict[str, set[str]] = {}
        # The workflows known here at the last restore, not ended: results sent to this
        # Node while it was down may have reached other domains first (`resumed`).
        self.restored: set[str] = set()

    def reset(self) -> None:
        """A restore: rebuilt as each workflow is resumed (`resumed`, `tell_end`)."""
        self.held = {}
        self.released = set()
        self.notices = {}
        self._releasing = None
        self.told_gone = {}
        d = self.n.state
        self.restored = (set(d.committed) | set(d.rows)) - set(d.final)

    def drives(self, wf: str) -> bool:
        """Does this Node hold the current coordinator epoch of running `wf`: its
        original coordinator, RUNNING, at epoch 0, or a successor acting in the epoch
        it won (its certificate on record) and follows no later one?"""
        n = self.n
        d = n.state
        if wf not in n.progress or wf in d.final:
            return False
        epoch, holder = d.epochs.get(wf, (0, ""))
        if epoch == 0:
            row = d.rows.get(wf)
            return row is not None and row.state is WorkflowState.RUNNING
        return holder == n.name and n.takeover is not None \
            and n.takeover.proof.own_certificate(wf, epoch) != ()

    def epoch(self, wf: str) -> int:
        """The coordinator epoch this Node drives `wf` in (0: the original's)."""
        return self.n.state.epochs.get(wf, (0, ""))[0]

    def holds(self, wf: str) -> bool:
        """Does `wf` wait for its participants to acknowledge a verdict's end?"""
        return wf in self.held

    def tell_end(self, now: float, wf: str, state: WorkflowState) -> bool:
        """The coordinator of the current epoch has an end of `wf` on results: must it
        wait (True), told first, as a verdict's end is? With takeover only, and while
        another domain may claim: another participant, or the original coordinator
        (it claims past a later epoch's gone holder: core/workflow/takeover_overtaken.py;
        none: no successor can ever be elected): a successor elected after this end
        was made here, no elector told, could decide another end by its own verdict
        (the step whose result this Node alone held, lost with it), or by a cancel
        (takeover soak seed 4900444: the original, back, claimed past this successor
        while it was down and cancelled; this one, back, ended it SUCCEEDED)."""
        n = self.n
        if wf in self.released:
            self.released.discard(wf)
            return False
        claimants = participants(self, wf) | {n.running.info(wf).coordinator}
        if n.takeover is None or not self.drives(wf) or not claimants - {n.name}:
            return False
        self._hold(wf, state)
        self._release_if_told(now, wf)
        if wf in self.released:  # enough had acknowledged it already (a restore)
            self.released.discard(wf)
            return False
        return True

    def kept_elsewhere(self, wf: str, but: str) -> bool:
        """May a member but `but` (a claimant) keep the end told here? One that
        acknowledged it, or went gone told and silent (its acknowledgement may be late:
        2PC takeover soak seed 85000430); not one gone when told (seed 117826)."""
        kept = self.n.state.final_acked.get(wf, set()) | self.told_gone.get(wf, set())
        return bool(kept - {but, self.n.name})

    # ---- inputs ------------------------------------------------------------------------

    def lost(self, now: float, domains: list[str]) -> None:
        """The view now says each of `domains` is DEAD or LEFT (it did not before)."""
        for wf in self.held:  # told while not gone (`kept_elsewhere`)
            told = {m for m in domains if ("final", wf, m) in self.n.pending}
            self.told_gone[wf] = self.told_gone.get(wf, set()) | told
        for wf in list(self.n.progress):
            if self.drives(wf):
                resolve(self, now, wf, domains)
                self.n.running.relay_gone_results(wf, domains)
        for wf in list(self.held):  # a participant gone need not acknowledge
            self._release_if_told(now, wf)

    def resumed(self, wf: str) -> None:
        """`wf`'s progress was just rebuilt from the tables (restore): a verdict on
        record holds its end again, before anything looks at its outcome. A workflow
        known here before the restore: results sent while this Node was down may be
        elsewhere and not here yet, so its losses judge needs on third domains as
        possibly SUCCEEDED (core/workflow/domain_loss.py)."""
        n = self.n
        if wf in self.restored:
            n.progress[wf].reports_missed = True
        if n.takeover is None or not self.drives(wf):
            return
        p = n.progress[wf]
        if any(step in p.steps and was_lost(placed(p, step), state, error)
               for step, (_, state, _, error) in n.state.results.get(wf, {}).items()):
            self._hold(wf)

    def resolve_gone(self, now: float, wf: str) -> None:
        """`wf` has just committed here (or was restored): the steps of every member
        the view already says is gone are resolved now."""
        n = self.n
        if not self.drives(wf):
            return
        p = n.progress[wf]
        placed = {s.domain for s in p.steps.values()}
        gone = sorted(d for d in placed if n.member_loss.gone(d))
        if gone:
            resolve(self, now, wf, gone)
            n.running.relay_gone_results(wf, gone)
        self._release_if_told(now, wf)

    def acked(self, now: float, wf: str) -> None:
        """A participant acknowledged the end of `wf` (written in `final_acked`)."""
        self._release_if_told(now, wf)

    def tick(self, now: float) -> None:
        """Before the Node's resends: a verdict whose coordinator no longer drives the
        workflow (it follows a later epoch: takeover.py; or another end came) is void,
        and its end, never made here, is told no more."""
        for wf in [wf for wf in self.held if not self.drives(wf)]:
            self._void(wf)
        for wf in [wf for wf, notice in self.notices.items()
                   if wf in self.held and notice.epoch != self.epoch(wf)]:
            self._retell(now, wf)

    def _retell(self, now: float, wf: str) -> None:
        """This Node holds an end told in an epoch it drives no more, yet it drives the
        workflow again: it followed a later epoch (between two looks) and then won one
        itself. If what made the end still stands (the verdict on record, the outcome
        of its progress, the cancel), it is its end in the later epoch too, told anew in
        it (the argument above reads the same for any k; a restore would hold it so,
        `resumed`): the members that follow the later epoch refuse the older epoch's
        notice for ever (the authority table), and the end was never made (takeover soak
        seed 3900244). Those that acknowledged the older notice hold that very end, and
        answer every claim with it, so they count as they did. If it does not stand (a
        result taken while this Node followed: running.py), the end is void, as it
        would have been at a look between the two epochs, and its outcome is looked at
        again (the header; takeover soak seed 285 with the start tells on)."""
        n = self.n
        state = self.held[wf]
        p = n.progress.get(wf)
        outcome = p.outcome() if p is not None else None
        stands = n.cancels.holds_back(wf) if state is WorkflowState.CANCELLED \
            else state is WorkflowState.FAILED and self._verdict_on_record(wf) \
            or outcome is not None and outcome.value == state.name
        if not stands:
            self._void(wf)
            n.running.check_outcome(now, wf)  # its own end, on results, told first
            return
        epoch = self.epoch(wf)
        n.stats["held end told again in a later epoch"] += 1
        notice = self.notices[wf] = end_notice(self, wf, epoch, self.held[wf])
        n.note("end_told", wf, epoch, self.held[wf])
        n.out.wait()  # the notices leave once the note is reported (`_hold`)
        acked = n.state.final_acked.get(wf, set())
        for dst in sorted(told_to(self, wf) - acked):
            n.reliable(dst, ("final", wf, dst), notice)

    def verdict_stands(self, wf: str) -> None:
        """A result of a lost placement was refused by the verdict on record while this
        Node drives `wf`: that verdict's end is held (told in this Node's epoch) if
        nothing holds it. Voided while this Node followed a later epoch, then driving
        again (it won one itself) before the lost domain's results came, the verdict
        stood with no end told and the results were refused for ever (takeover soak
        seed 4803186); the verdict stands as `_retell` and `resumed` hold it."""
        if wf not in self.held and self.drives(wf) and self._verdict_on_record(wf):
            self._hold(wf)

    def followed(self, wf: str) -> None:
        """This Node follows another's later epoch of `wf` now: a cancel's end held here
        is void at once, not at the next `tick` (its caller told before this Node acts
        as a follower: seed 1701568). A verdict's waits for `tick` (`_retell`)."""
        if self.held.get(wf) is WorkflowState.CANCELLED and not self.drives(wf):
            self._void(wf)

    def _void(self, wf: str) -> None:
        n = self.n
        told = self.held.pop(wf, None)
        self.notices.pop(wf, None)
        self.told_gone.pop(wf, None)
        self.released.discard(wf)
        made = n.state.final.get(wf)
        if made is not None and n.state.epochs.get(wf, (0, n.name))[1] == n.name:
            # Made here by another path (a claim's answer showed an end: the takeover
            # part's Announce): the notices pending are the made end's. A cancel told
            # that a later epoch's other end beat is void (seed 4401924).
            if told is WorkflowState.CANCELLED and made is not WorkflowState.CANCELLED:
                n.cancels.void(wf)
            # But for the told end's own, to a domain the made end was not told to (an
            # elector holding no step: the Announce tells the members): never made, it
            # is told no more (takeover soak seed 191000086: FAILED told for ever to an
            # elector that answered with the proven SUCCEEDED made here too).
            n.pending.drop(wf, lambda k, v: k[0] == "final" and v[1].state is not made)
            return
        if told is WorkflowState.CANCELLED:
            n.cancels.void(wf)  # the cancel's caller is answered what happened
        n.stats["loss verdict void: driven or ended elsewhere"] += 1
        n.pending.drop(wf, lambda k, v: k[0] == "final")

    def _apply(self, wf: str) -> None:
        """The verdicts on record, into the workflow's progress (FAILED, what is
        downstream SKIPPED)."""
        p = self.n.progress[wf]
        for step, (attempt, state, _, error) in self.n.state.results.get(wf, {}).items():
            if step in p.steps and was_lost(placed(p, step), state, error):
                p.apply_result(step, max(attempt, p.steps[step].attempts), state, {}, error)

    def deferred(self, wf: str, step_domain: str, state: StepState, error: str) -> bool:
        """Is this result on record a verdict a restored progress takes only when its
        end is made (with takeover; Running.resume leaves it out)?"""
        return self.n.takeover is not None and was_lost(step_domain, state, error)

    def hold_end(self, wf: str) -> None:
        """A verdict of this coordinator's made elsewhere (a step that could not be
        placed again: replacement.py) whose end is FAILED: held like a loss's."""
        self._hold(wf)

    def _hold(self, wf: str, state: WorkflowState = WorkflowState.FAILED) -> None:
        """The end (a verdict's: FAILED; one on results; a cancel's: CANCELLED,
        cancel.py) is told to every participant (and, by a successor, to the original
        coordinator) before it is made here, in this Node's epoch."""
        n = self.n
        if wf in self.held:
            return
        if n.cancels.holds_back(wf):
            # A cancel on record here is what ends it: a verdict resolved meanwhile (or
            # rebuilt on restore before the cancel is) never replaces the end told.
            state = WorkflowState.CANCELLED
        self.held[wf] = state
        epoch = self.epoch(wf)
        verdict = state is WorkflowState.FAILED and self._verdict_on_record(wf)
        n.stats["loss verdict: end told before it is made" if verdict
                else "end told before it is made"] += 1
        n.point("loss verdict told" if verdict else "end told")
        n.note("end_told", wf, epoch, state)
        n.out.wait()  # even with nothing else written (a restore): seed 26000081
        acked = n.state.final_acked.get(wf, set())
        notice = self.notices[wf] = end_notice(self, wf, epoch, state)
        for dst in sorted(told_to(self, wf) - acked):
            n.reliable(dst, ("final", wf, dst), notice)

    def _verdict_on_record(self, wf: str) -> bool:
        p = self.n.progress.get(wf)
        return p is not None and any(
            step in p.steps and was_lost(placed(p, step), state, error)
            for step, (_, state, _, error) in self.n.state.results.get(wf, {}).items())

    def _release_if_told(self, now: float, wf: str) -> None:
        n = self.n
        if wf not in self.held:
            return
        if not self.drives(wf):
            self._void(wf)  # another epoch's now, or ended otherwise: nothing to make
            return
        acked = n.state.final_acked.get(wf, set())
        members = participants(self, wf)
        told = told_to(self, wf, members)  # once: nothing below changes who is told
        members = members - {n.name}
        for dst in sorted(told - acked):
            if ("final", wf, dst) not in n.pending:  # placed on after the end was told
                notice = self.notices.get(wf)
                if notice is None:  # held before a restore: told anew
                    notice = self.notices[wf] = end_notice(self, wf, self.epoch(wf),
                                                           self.held[wf])
                n.reliable(dst, ("final", wf, dst), notice)
        waiting = {d for d in members if not n.member_loss.gone(d)} - acked
        # At least one other than this Node must hold the end: a participant, or, told
        # by a successor, the original coordinator (an elector that then answers claims
        # with it), so a successor whose other participants are all gone is not held.
        if waiting or not acked & (members | told):
            return
        # Gone is not gone for good: electors the view says are gone may come back and,
        # this coordinator dead meanwhile, elect a successor that decides on results. Its
        # electing majority must meet an elector that acknowledged the end (it answers
        # the claim with it): so the electors that have not, this one aside, must be
        # fewer than a majority.
        electorate = n.takeover.electorate_of(wf) if n.takeover is not None else None
        if electorate and len(set(electorate) - {n.name} - acked) >= majority(electorate):
            n.stats["loss verdict held: too few electors acknowledged"] += 1
            return
        del self.held[wf]
        self.told_gone.pop(wf, None)
        self.released.add(wf)  # `tell_end` lets it be made now
        self._apply(wf)
        self._releasing = self.notices.pop(wf, None)
        try:
            n.running.check_outcome(now, wf)
        finally:
            self._releasing = None
        self.released.discard(wf)
        # Made: an elector holding no step that has not acknowledged it is not needed
        # (enough did), and the made end's notices go to the workflow's domains only;
        # a successor's, with its certificate, to every elector still (it may keep an
        # older epoch's end, told and never made, that only this one replaces:
        # Ends.told, takeover soak seed 20600021).
        keep = n.replacement.domains_of(wf) | {n.running.info(wf).coordinator}
        epoch = self.epoch(wf)
        if epoch >= 1 and n.takeover is not None:
            keep |= n.takeover.ends.told(wf, n.takeover.proof.own_certificate(wf, epoch))
        n.pending.drop(wf, lambda k, v: k[0] == "final" and k[2] not in keep)

    def releasing(self, wf: str) -> WorkflowState | None:
        """The end of `wf` told in the epoch this Node drives it in, released in this
        very step (enough acknowledged it), if any: the end to make, whatever the
        progress says now (takeover_ends.py, `successor_outcome`)."""
        notice = self._releasing
        if notice is None or notice.workflow_id != wf or notice.epoch != self.epoch(wf):
            return None
        return notice.state

    def acknowledged_as_made(self, wf: str, state: WorkflowState,
                             settled: bool) -> set[str]:
        """The participants the end of `wf` being made now (`state`, `settled`) need not
        be told again: the end released in this very step, told by the original
        coordinator (epoch 0) with that state and at least as settled, which they
        acknowledged. They hold it already (a participant takes the first end it hears,
        running_ends.py `on_final`), so the made end's notice would change nothing there."""
        notice = self._releasing
        if notice is None or notice.workflow_id != wf or notice.epoch != 0 \
                or notice.state is not state or (settled and not notice.settled):
            return set()
        return self.n.state.final_acked.get(wf, set()) & participants(self, wf)
