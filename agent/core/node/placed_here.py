"""A participant's side of re-placement: a step's new placement told, or taken here.

Theory of operation
-------------------
replacement.py runs the rounds at the workflow's coordinator; this part is every
other Node's (and the coordinator's own, where it is a participant too):

- told (PlacedMsg, from the workflow's coordinator as known here: the epoch followed,
  else the coordinator the id names): the new placement is written (`placements`) and
  acknowledged (the original counts an elector's acknowledgement toward the majority
  that must hold the placement before its COMMIT leaves: replacement.py), by an elector
  holding no step too (in the electorate the message names; retention knows no row of
  it): unwritten, its grant told a successor nothing of it, which placed a started step
  not idempotent again (takeover soak seed 150501078: started twice); the same
  placement answered to a restarted Node (restart_check.py) or carried by a grant of
  our claim (`ClaimAnswerMsg.placements`, `learn_from_grant`) is taken the same way
  (`take`); this Node's own loss verdict on the placement it replaces, not held (void:
  it followed a later epoch; domain_loss.py), goes with that placement, as on its own
  re-placement (replacement.py, `_placed`): deferred in the progress, kept on record,
  it refused the new domain's result as one after a terminal one once this Node drove
  again (2PC takeover soak seed 163201385: carried by a grant, RUNNING for ever); a
  held verdict keeps its end told; the needs' outputs it carries are recorded; a committed progress takes
  it (Progress.placed_again: results of older placements are refused from now on),
  re-reports the results of the step's needs run here (to the new domain), and, where
  this Node was the lost domain and is back, stops the attempt still running here, or
  drops the result its attempt ended with here meanwhile (interrupted by its restart:
  a placement that is over) and rebuilds the progress without it. A new domain new to
  the workflow keeps the electorate the message carries (takeover claims). The
  new domain itself waits for the round's COMMIT before it takes its own placement;
- a grant is a promise: once this Node granted (or follows) an epoch e >= 1, a
  placement told by a coordinator of an older epoch (the original, at 0) that is not
  the round on record here is neither taken nor acknowledged (`promised`,
  `on_placed`), so it never counts toward the majority that lets the original's
  COMMIT leave, but answered with the epoch held here or the end
  (placed_overtaken.py, where the argument is); and a claimant acting in its epoch
  takes no placement from a grant that comes after (`learn_from_grant`): together
  they let the holder answer a round it does not know void (replacement_handover.py).
  Nor is a step placed again here by the coordinator of an epoch older than the one
  promised voted YES (the original's round; a later epoch's is refused at the boundary:
  authority_rounds.py): NO (`refused_older`). The holder of the epoch promised may not
  know that round (its PREPARE came after our grant: no grant carried it) and may run
  the step where it was; our YES held, a later holder elected with the original's
  grant carrying the round's placement (decided before that grant, kept there) would
  hand its COMMIT out here (replacement_handover.py): the step ran twice (takeover soak
  seed 140100809). The NO aborts the round, whose one participant we are: nothing of
  it is told, held or handed out; the original places the step elsewhere or fails it,
  as on any NO, and follows the later epoch once it hears of it.
  A workflow forgotten here (retention) has no `promised` epoch left: its end record
  answers an older epoch's tell instead (placed_overtaken.py, `answer_forgotten`).
  Refused by a Node that ended the workflow in that later epoch, the placement is still
  written (`_note_new_domain`, never acknowledged: it counts toward no majority), as
  the committed round's fact it is: its new domain is a member here, whose end, a
  rival claimant's of our epoch, is judged (saga_plans.rival_end), not refused as a
  stranger's (takeover soak seed 119616: two drivers of epoch 1's saga for ever);
- told by a successor (the holder of a later epoch, its certificate shown: authority.py)
  the same; and, `made`, the COMMIT of our own placement handed out by it once told
  everywhere again (replacement_handover.py, `made_here`): our YES, PREPARED, commits;
- the new domain learns the round's COMMIT (`committed_here`): placed_committed.py,
  where the argument is;
- learned after this Node ended the workflow as the holder of a later epoch (told by
  an original that did not know that epoch, or carried by a grant answering the claim
  it told its end on with): the new domain, following the original, would never hear
  the end, so it is told it with the epoch's certificate (`_end_to_new_domain`);
- restore (`resumed`): the placements on record are taken again as the progress is
  rebuilt (this Node's own only once the round's COMMIT is learned here);
- carried by the workflow's own COMMIT (`moved_away` at its coordinator, `take_moved`
  here): the notice, first or resent, names the steps of the round's placement on its
  recipient that are placed elsewhere since, and they are taken as told before the
  COMMIT builds the progress, so a participant cut off and back starts none of them
  (what it was told of them was in its coordinator's memory only: a restore lost it);
- the workflow ended here (`ended`): a YES of a re-placement round still undecided is
  released (its coordinator makes nothing run under it; a COMMIT that comes later finds
  nothing held and changes nothing), noted (`released_at_end`: the simulator's checker
  counts it as resolving the YES). In doubt before that, the new domain asks the
  workflow's other members too (replacement_handover.py, `asked`), and a successor's
  end reaches it so (authority.py lets the end of a proven holder through to a Node
  holding such a YES only), or its answer that the round is void (a PlacedMsg with
  `void`: the YES is released the same way, `voided_here`); told that placement
  again once released, it acknowledges it `void` (`released_here`), and a later
  holder waiting for the step here drops it (replacement_handover.py).

Started here (placed_started.py, where the argument is). The lost domain, back and
told the new placement, keeps the result its own attempt of a step not idempotent
ended with (`ran_here`): FAILED as found running at a restore, or SUCCEEDED where
every step that needs it is, or was until this loss, placed here. Dropped, this Node,
elected, handed the new placement's COMMIT out and the step ran twice (takeover soak
seed 184100747).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.messages import Key
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.node.authority_steps import earlier_for, earlier_of
from fedorch.core.node.domain_loss_verdict import placed, was_lost
from fedorch.core.node.placed_committed import committed_here
from fedorch.core.node.placed_overtaken import answer_forgotten, answer_older_epoch
from fedorch.core.node.placed_started import ran_here
from fedorch.core.node.records import AckMsg, FinalMsg, PlacedMsg, PrepareMsg, VoteMsg
from fedorch.core.node.replacement_telling import MADE, PLACED
from fedorch.core.workflow.epoch_certificate import epoch_of_round
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES, StepState


class PlacedHere:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts).
        self.n = node

    def resumed(self, wf: str) -> None:
        """`wf`'s progress was just built from its committed placement: the placements
        on record follow (this Node's own only once their COMMIT is learned here)."""
        n = self.n
        p = n.progress[wf]
        # Only `wf`'s holds (the participant's index): a scan of every hold made this
        # cost grow with the workflows in flight, at each one resumed.
        for key in n.participant.keys_of(wf):
            h = n.participant.hold(key)
            info = n.state.info.get(key)
            if h is not None and h.state is HoldState.PREPARED \
                    and info is not None and info.lost:
                # Our YES of another re-placement round, in doubt: the whole placement
                # this progress was built from (a later round's, committed here first)
                # may name us for its steps already, as decided in the coordinator's
                # log but not yet told to a majority. Not ours until its COMMIT comes
                # (`committed_here`): started now, it would run under a placement a
                # successor may never learn, and its result, of no epoch, be refused
                # for ever (takeover soak seed 3900560).
                for step, _ in h.steps:
                    if p.placement_in_doubt(step):
                        n.stats["step placed here by a round in doubt held back"] += 1
        for step, (epoch, domain, lost) in n.state.placements.get(wf, {}).items():
            if step not in p.steps:
                continue
            learned = n.state.learned.get((wf, epoch))
            if domain != n.name or (learned is not None and learned.commit):
                p.placed_again(step, domain, epoch, lost)

    def known(self, wf: str) -> tuple[tuple[str, int, str, str], ...]:
        """The placements on record of `wf`: (step, epoch, domain, lost) of each step
        placed again, as a grant or a placement answer carries them."""
        return tuple((step, epoch, domain, lost) for step, (epoch, domain, lost)
                     in sorted(self.n.state.placements.get(wf, {}).items()))

    def moved_away(self, wf: str, domain: str) -> tuple[tuple[str, int, str, str], ...] | None:
        """As `wf`'s coordinator, about to send its own round's COMMIT to `domain`: the
        steps placed on `domain` once, by that round or by a re-placement round since
        (the middle of a chain: its own round's COMMIT had it start the step, and its
        stop was told in memory only), that are placed elsewhere now, as (step, epoch,
        domain, lost) each, their latest placement, which the notice names
        (Decision.moved: the participant takes them before it builds its progress, so
        it never starts them, and stops an attempt of a placement that is over).
        A step placed back on `domain` is not named: its placement, with its epoch,
        comes from the COMMIT of the round that placed it back, whose YES `domain`
        holds, and it waits unplaced there until then (`resumed`).
        None: hold the notice back, a step of `domain`'s being placed again and its
        placement not yet told enough (told before made, replacement_telling.py,
        `told_enough`): the placement is not yet a fact to hand out, and the notice
        goes again once it is. Told enough, it is one, even where the round's own
        COMMIT stays on record unsent because this Node granted or follows a later
        epoch held by another (`send_if_told`): every majority of the electorate then
        holds a member whose grant carries it (a member that granted first takes no
        older tell), so every later holder knows it and hands that COMMIT out, never
        answers it void (replacement_handover.py). Held till the COMMIT left, the
        notice waited for ever: `domain`, in doubt on its own round, answers every
        claim "in doubt", so that epoch is never won (2PC takeover soak seed
        222100025: the original granted the new domain's claim between its retell at
        a restore and the acknowledgements).

        Why the notice must say so. What was told `domain` of a new placement (its
        PlacedMsg, resent until acknowledged) is kept in memory only: a coordinator
        restored while `domain` was cut off tells it again every placement on record
        with takeover, but without takeover only one whose round's record is still
        kept (replacement_telling.py, `retell`), and a tell may come after the COMMIT
        notice it sends again, which, unchecked, would have a participant in doubt
        and back start the step its new domain runs (a second run of it, its result
        refused by its epoch). The placements on record are durable; the notice
        carries them, first or resent. (A domain that holds the COMMIT already is
        sent no notice again: only the retold tell moves its step away.)"""
        n = self.n
        placed = n.state.placements.get(wf)
        row = n.state.rows.get(wf)
        if not placed or row is None:
            return ()
        moved = []
        for step, (epoch, new, lost) in sorted(placed.items()):
            if new == domain or (row.info.placement.get(step) != domain
                                 and domain not in earlier_of(n.state, wf, step)):
                continue
            if (wf, epoch) in n.replacement.telling \
                    and not n.replacement.told.told_enough((wf, epoch)):
                n.stats["COMMIT held back: a step of its domain being placed again"] += 1
                return None
            moved.append((step, epoch, new, lost))
        return tuple(moved)

    def take_moved(self, now: float, src: str, msg: Any) -> None:
        """A workflow's own COMMIT (`msg`, a Decision) naming steps placed elsewhere
        (`moved_away`): taken as told placements, before the COMMIT is applied, so the
        progress it builds here has them elsewhere and starts none of them; a step
        this Node held by a re-placement round since (`moved_away`) too, its attempt
        stopped as a PlacedMsg would (`take`). Only from the round's coordinator (the
        placement is its word; another party's copy of the decision counts, its list
        does not), and only for a COMMIT of a round known here."""
        n = self.n
        tx = n.tx_of(msg.key)
        info = n.state.info.get(msg.key)
        if not msg.moved or not msg.value.commit or tx is None or src != tx.coordinator \
                or info is None or info.lost:
            return
        wf = msg.key[0]
        for step, epoch, domain, lost in msg.moved:
            if step in info.placement and domain != n.name:
                n.stats["step moved away taken from a COMMIT notice"] += 1
                self.take(now, PlacedMsg(wf, step, domain, epoch, lost))

    def carried(self, wf: str) -> dict[str, tuple]:
        """What a grant or a placement answer carries of `wf`'s placements on record:
        each (`known`), and the domains each step was placed on before, oldest first
        (`before`: the saga owes a compensation for a run in any of them)."""
        d = self.n.state
        return {"placements": self.known(wf),
                "before": tuple((step, earlier_of(d, wf, step))
                                for step in sorted(d.placements.get(wf, {})))}

    def promised(self, wf: str) -> int:
        """The latest coordinator epoch of `wf` this Node granted, follows or acts in
        (0: none): a tell of an older epoch's coordinator is no longer acknowledged here
        (`on_placed`)."""
        d = self.n.state
        return max(d.granted.get(wf, (0, ""))[0], d.epochs.get(wf, (0, ""))[0])

    def refused_older(self, src: str, msg: PrepareMsg) -> bool:
        """A step placed again on this Node (a re-placement round's PREPARE) by the
        coordinator of an epoch older than one granted or followed here: voted NO, as
        the header says (a grant is a promise). False: any other PREPARE, voted on."""
        n = self.n
        tx = msg.tx
        if not msg.info.lost or epoch_of_round(tx.round) >= self.promised(tx.workflow_id):
            return False
        n.stats["re-placement PREPARE refused: a later epoch granted here"] += 1
        n.send(src, VoteMsg(tx.key, n.name, False, "a later coordinator epoch granted here"))
        return True

    def on_placed(self, now: float, src: str, msg: PlacedMsg) -> None:
        n = self.n
        if msg.void:
            # The holder of a later epoch knows no placement of our round (answering
            # our query): our YES goes (replacement_handover.py, `voided_here`).
            n.replacement.handover.voided_here(now, src, msg)
            return
        wf = msg.workflow_id
        known = n.state.placements.get(wf, {}).get(msg.step_id)
        if msg.held_epoch < self.promised(wf) and (known is None or known[0] != msg.epoch):
            # A grant is a promise: a placement not held here, told by the coordinator
            # of an epoch older than one granted or followed here, is neither taken nor
            # acknowledged, but answered (placed_overtaken.py). Ended here as that
            # epoch's holder, its new domain is told our end (it learns no COMMIT any
            # more: it asks, above), and the placement written as a committed round's
            # fact (`_note_new_domain`).
            if wf in n.state.final:
                self._end_to_new_domain(wf, msg.domain)
                self._note_new_domain(msg)
            answer_older_epoch(n, src, msg)
            return
        if answer_forgotten(n, src, msg):
            return  # forgotten here: its end record answers (placed_overtaken.py)
        self.take(now, msg)
        if msg.made and msg.domain == n.name and msg.workflow_id not in n.state.final:
            # The holder of a later epoch hands out our round's COMMIT, told everywhere
            # again first (replacement_handover.py).
            n.replacement.handover.made_here(now, src, msg)
        # Its new domain, holding nothing of the round any more (its YES released on a
        # void), says so: a later holder that waits for the step here drops the
        # placement (replacement_handover.py, "A void in a later epoch"). A handed-out
        # COMMIT is acknowledged by its own id ("The handed-out COMMIT's own resends").
        n.send(src, AckMsg((MADE if msg.made else PLACED, msg.workflow_id, msg.step_id,
                            msg.epoch, n.name), n.replacement.handover.released_here(msg),
                            gen=msg.gen))

    def learn_from_grant(self, now: float, wf: str,
                         placements: tuple[tuple[str, int, str, str], ...],
                         before: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> None:
        """A grant of our claim carries its granter's placements: taken before it counts,
        so that, acting, we know every placement whose COMMIT left (restart_check.py).
        Not once we act in that epoch (a late grant): what we know then is what we may
        have answered void since (replacement_handover.py); the majority we won with
        carried every placement that can ever leave its COMMIT."""
        n = self.n
        if n.domain_loss.drives(wf) and n.domain_loss.epoch(wf) >= 1:
            n.stats["placements of a late grant left: acting already"] += 1
            return
        self.learn(now, wf, placements, before)

    def learn(self, now: float, wf: str, placements: tuple[tuple[str, int, str, str], ...],
              before: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> None:
        """Placements a grant or a placement answer carries (`carried`), each taken as
        a PlacedMsg is, with the domains its step was placed on before."""
        earlier = dict(before)
        for step, epoch, domain, lost in placements:
            self.take(now, PlacedMsg(wf, step, domain, epoch, lost,
                                     before=earlier.get(step, ())))

    def take(self, now: float, msg: PlacedMsg) -> None:
        """A new placement of a step, told (a PlacedMsg), answered (a placement answer)
        or carried by a grant: written and taken, if it is news here."""
        n = self.n
        d = n.state
        wf = msg.workflow_id
        known = d.placements.get(wf, {}).get(msg.step_id)
        if wf in d.final and (known is None or known[0] < msg.epoch):
            self._end_to_new_domain(wf, msg.domain)
        if wf not in d.final and (known is None or known[0] < msg.epoch) \
                and (n.retain is None or n.retain.knows(wf) or msg.domain == n.name
                     or n.name in msg.electorate):
            n.point("placed again")
            self._earlier(msg)
            d.placements[wf] = {**d.placements.get(wf, {}),
                                msg.step_id: (msg.epoch, msg.domain, msg.lost)}
            results = dict(d.results.get(wf, {}))
            p = n.progress.get(wf)
            s = p.steps.get(msg.step_id) if p is not None else None
            # This Node was the lost domain and its attempt ended here (interrupted by
            # its restart, say) before it was told: a result of a placement that is
            # over, refused everywhere by its epoch, so not kept here either (this
            # Node may be elected and decide on its own progress), which is rebuilt.
            # So too the lost domain's failure reported here before the placement
            # came: kept, it skips the steps that need it here for ever, the new
            # domain's result refused after a terminal one (takeover soak seed
            # 4900902); a SUCCEEDED one stays, as what it let start here ran on it.
            # Not our own attempt of a step not idempotent that did start here, where
            # it is kept (placed_started.py): the one word that the step ran.
            stale = s is not None and s.domain != msg.domain \
                and s.state in TERMINAL_STEP_STATES and (
                    s.domain == n.name
                    or s.domain == msg.lost and s.state is not StepState.SUCCEEDED) \
                and not (s.domain == n.name and ran_here(p, s, results.get(msg.step_id)))
            if stale:
                results.pop(msg.step_id, None)
                self._drop_run_records(wf, (msg.step_id,))
            elif s is not None and self._void_verdict(wf, msg, results.get(msg.step_id)):
                # Our void verdict on the placement this one replaces (the header).
                n.stats["void loss verdict dropped: its step placed again"] += 1
                results.pop(msg.step_id, None)
            carried = []
            for need, attempt, outputs in msg.needs:
                had = results.get(need)
                if had is None or had[1] not in TERMINAL_STEP_STATES:
                    results[need] = (attempt, StepState.SUCCEEDED, dict(outputs), "")
                    carried.append(need)
            d.results[wf] = results
            for need in carried:
                # Run under the need's placement as known now (its coordinator takes a
                # result of that placement only): recorded so, a later move of the need
                # leaves its compensation owed where it ran (saga_results.py).
                n.compensating.results.ran_in(wf, need, StepState.SUCCEEDED, None)
            if msg.electorate and wf not in d.committed and wf not in d.rows:
                # New to the workflow (its new domain): the electorate is the committed
                # round's, the same as everywhere, not its own round's two acceptors.
                d.electorates[wf] = msg.electorate
            if n.takeover is not None:  # it hears our claims and ends (takeover.py)
                n.takeover.placed(wf, msg.domain)
            if stale:
                n.stats["result of an older placement dropped here"] += 1
                del n.progress[wf]
                n.running.resume(now, wf)  # as a restart would: the new placement taken
                p = n.progress.get(wf)
            if p is not None:
                for need, attempt, outputs in msg.needs:
                    p.apply_result(need, attempt, StepState.SUCCEEDED, dict(outputs), "")
                s = p.steps.get(msg.step_id)
                if s is not None and s.domain == n.name and s.state is StepState.RUNNING:
                    # Our placement of it is over (we were lost, and are back): the
                    # attempt still running here stops; its end changes nothing.
                    n.stats["attempt of an older placement stopped"] += 1
                    n.out.stop.append((wf, msg.step_id, s.attempts))
                if msg.domain != n.name:  # the new domain waits for the round's COMMIT
                    p.placed_again(msg.step_id, msg.domain, msg.epoch, msg.lost)
                    n.note("placed_again", (wf, msg.step_id), msg.domain, msg.epoch,
                           p.steps[msg.step_id].idempotent, now)
                n.running.report_needs(wf, msg.step_id)
                n.running.start_ready(now, wf)

    def _void_verdict(self, wf: str, msg: PlacedMsg, known: tuple | None) -> bool:
        """Is `known`, the result on record of the step `msg` places again, a loss
        verdict of ours, not held, on the placement it replaces (the lost one it names,
        or the progress's: a chain of placements may reach us at its last link)?"""
        n = self.n
        if known is None or n.domain_loss.holds(wf):
            return False
        here = placed(n.progress[wf], msg.step_id)
        return any(was_lost(domain, known[1], known[3]) for domain in {msg.lost, here}
                   if domain and domain != msg.domain)

    def _end_to_new_domain(self, wf: str, domain: str) -> None:
        """A placement learned after this Node ended `wf` as the holder of a later
        epoch: the original, unaware of that epoch (down when it was won), placed a step
        again, and the majority that held the placement counted an elector that had
        granted our epoch already (takeover soak seed 3701345). Its new domain, which
        learned the round's COMMIT and follows the original, would never hear our end:
        it is told it, with our certificate, as the workflow's other domains were."""
        n = self.n
        d = n.state
        epoch, holder = d.epochs.get(wf, (0, ""))
        if epoch < 1 or holder != n.name or domain == n.name or n.takeover is None:
            return
        if domain in n.replacement.domains_of(wf) and domain in d.final_acked.get(wf, set()):
            return  # told already
        n.stats["end told to a new domain placed after it"] += 1
        won = n.takeover.proof.own_certificate(wf, epoch)
        n.reliable(domain, ("final", wf, domain), FinalMsg(wf, d.final[wf], epoch, won=won))

    def _note_new_domain(self, msg: PlacedMsg) -> None:
        """An older epoch's placement refused by a Node that ended the workflow as a
        claimant or holder of a later epoch: still a committed round's fact (a PlacedMsg
        leaves only once the original wrote its COMMIT), so its new domain is written as
        one of the workflow's domains (`placements`, never acknowledged: it counts toward
        no majority). It is told our end (`_end_to_new_domain`), and a rival claimant of
        our epoch may be that domain: its end must be judged here (saga_plans.rival_end),
        or we drive a saga the members following it refuse for ever (takeover soak seed
        119616)."""
        d = self.n.state
        wf = msg.workflow_id
        known = d.placements.get(wf, {}).get(msg.step_id)
        if known is not None and known[0] >= msg.epoch:
            return
        self.n.point("placed again")
        self._earlier(msg)
        d.placements[wf] = {**d.placements.get(wf, {}),
                            msg.step_id: (msg.epoch, msg.domain, msg.lost)}

    def _earlier(self, msg: PlacedMsg) -> None:
        """The domains the step was placed on before its new placement, written with it
        (before it: read from the placement on record when the tell carries none)."""
        d = self.n.state
        wf = msg.workflow_id
        d.earlier_domains[wf] = {**d.earlier_domains.get(wf, {}), msg.step_id: earlier_for(
            d, wf, msg.step_id, msg.lost, msg.before, msg.domain)}

    def committed_here(self, now: float, key: Key, steps: list) -> bool:
        """This Node is the new domain of a re-placement round and learned its COMMIT:
        placed_committed.py. False: not a re-placement round."""
        return committed_here(self, now, key, steps)

    def _drop_run_records(self, wf: str, steps: tuple[str, ...] | list[str]) -> None:
        """The results of `steps` were just dropped here: the records of where their
        runs were made go with them (saga_results.py `ran_in`), as on every path that
        drops or replaces a result; kept, a record names a run whose result is gone."""
        d = self.n.state
        held = d.result_domains.get(wf, {})
        if any(step in held for step in steps):
            d.result_domains[wf] = {k: v for k, v in held.items() if k not in steps}

    def ended(self, now: float, wf: str) -> None:
        """`wf` ended here: a re-placement round's YES, undecided, is released."""
        n = self.n
        # Only `wf`'s holds (the participant's index): a scan of every hold made this
        # cost grow with the workflows in flight, at each one resumed.
        for key in n.participant.keys_of(wf):
            h = n.participant.hold(key)
            info = n.state.info.get(key)
            if h is not None and h.state is HoldState.PREPARED \
                    and info is not None and info.lost:
                # A re-placement round's YES here, undecided: the workflow is over, so
                # its coordinator makes nothing run under it; the slots go now (a COMMIT
                # that comes later finds nothing held and changes nothing).
                n.participant.decide(now, h.workflow_id, h.round, False)
                n.termination.forget(h.key)
                n.point("hold released")
                n.state.holds.pop(h.key, None)
                n.note("released_at_end", h.key, now)
                n.stats["re-placement YES released at the end"] += 1
