"""Coordinator takeover in a simulated agent (Timing.takeover_after_s set; off otherwise).

Theory of operation
-------------------
The Node's `TakeoverPlug` in the simulator (agent/core/node/node.py), the stand-in for
agent/runtime/takeover.py around the same core (agent/core/workflow/takeover.py). A
SimAgent builds one with each Node (`SimTakeover(node, world, monotonic)`) and holds
it: it reads and writes the Node's view (`TakeoverNode`, so its changes are records of
the same Ready), sends through the Node, reads the boot's monotonic clock for its look
timer, and asks the simulation (`World`) for membership views, stats and the checker. Every agent with a committed, running
workflow keeps one core for it, rebuilt from the disk after a crash. Once a second
(`TICK_S`) each core is told how the simulation's membership sees the coordinator it
follows (`Simulation.member_state`: DEAD a while after a crash, SUSPECT while paused
or cut off by a partition). Claims and answers are messages (`ClaimMsg`,
`ClaimAnswerMsg`); what a core persists is on the disk before anything leaves (a crash
point first). A granter follows the claimant at once and sends it its results again;
an acting successor ends the workflow from its progress and tells every participant
and the original coordinator, with its epoch (`FinalMsg.epoch`); the boundary refuses
an end of a lower epoch than held. A claimant takes its predecessor's end (its claim has
not won) and tells it on in its claimed epoch (`follow_end`, the core's `Announce`):
those that granted it refuse the lower epoch's notice.

A participant that holds a vote of the workflow but has not learned its decision
answers a claim "in doubt" (`ClaimAnswerMsg.in_doubt`, the runtime's
TakeoverAnswer.in_doubt): no grant, no refusal, and the claimant sends it the claim
again at its next look (`claim_again`, a second), as the runtime's claim task asks it
again from its shortest pause, rather than at the claim timeout. A claimant that won
shows it with its claims and with its denial of a rival's claim of its epoch (`won`,
the runtime's epoch certificate; the checker's record of who acted stands for the
grants' signatures): a rival claimant of that epoch, or a follower of one, follows the
winner at once (the core's `Proven`). Two claimants of one epoch whose votes split
settle it on the denials (agent/core/workflow/takeover_split.py); the stats count
each way out ("yielded to a better-ranked rival", "next epoch claimed on the
denials").

The electorate is the committed round's acceptors (`acceptors_of`), as in the real
agent: an extra acceptor that holds no step grants only on the claim's proof of the
round (`ClaimMsg.proof`, checked against what the coordinator sent and what was chosen,
as the signatures guarantee in a real agent), whether it heard of the round or missed
it, its records refusing a proof that contradicts them
(agent/core/workflow/acceptor_grant.py decides), and keeps its grant (`Disk.granted`)
before it answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from fedorch.core.workflow.acceptor_grant import ABORT, COMMIT, Round, acceptor_grant
from fedorch.core.workflow.progress import TERMINAL_STEP_STATES
from fedorch.core.workflow.takeover import (
    Act,
    Adopted,
    Announce,
    Deny,
    EndKnown,
    Grant,
    Persist,
    Proven,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Watch,
    may_grant,
)
from fedorch.sim.negotiation.disk import ClaimAnswerMsg, ClaimMsg, FinalMsg

if TYPE_CHECKING:
    from fedorch.core.negotiation.participant import Participant
    from fedorch.core.node.running import Running
    from fedorch.core.workflow.lifecycle import WorkflowState
    from fedorch.core.workflow.progress import Progress
    from fedorch.sim.negotiation.disk import Disk, Timing, WfInfo
    from fedorch.sim.negotiation.world import World

TICK_S = 1.0


def held_of(disk: Disk, wf: str, original: str) -> tuple[int, str]:
    """The epoch and coordinator an agent holds: the higher of followed and granted."""
    followed = disk.epochs.get(wf, (0, original))
    granted = disk.granted.get(wf, (0, ""))
    return granted if granted[0] > followed[0] else followed


def acceptors_of(disk: Disk, wf: str) -> tuple[str, ...]:
    """The committed round's acceptors as written here at the commit (the coordinator's
    row, a participant's `electorates`): the takeover electorate. () under classic 2PC."""
    row = disk.rows.get(wf)
    if row is not None and row.committed:
        return row.acceptors
    return disk.electorates.get(wf, ())


class TakeoverNode(Protocol):
    """What the takeover part uses of its agent's Node (core/node/node.py): the view of
    its tables, its cores of committed workflows, and its outputs."""

    name: str
    t: Timing
    state: Disk
    progress: dict[str, Progress]
    participant: Participant
    running: Running  # info(wf), report(wf, step), end_here(wf, state)

    def point(self, what: str) -> None: ...
    def send(self, to: str, msg: object) -> None: ...
    def reliable(self, to: str, msg_id: tuple, msg: object) -> None: ...


class SimTakeover:
    def __init__(self, node: TakeoverNode, world: World,
                 monotonic: Callable[[], float]) -> None:
        self.node = node
        self.world = world
        self.monotonic = monotonic  # the boot's clock, the Node's `now`
        self.name = node.name
        self.t = node.t
        self.takeovers: dict[str, Takeover] = {}
        self.tick_at: float | None = None
        # Claims answered "in doubt here" by a participant, to send again at the next
        # tick (workflow -> members): the shell asks such a one again from its shortest
        # pause.
        self.claim_again: dict[str, set[str]] = {}

    # ---- what it reaches of the Node ---------------------------------------------------

    @property
    def disk(self) -> Disk:
        return self.node.state

    @property
    def progress(self) -> dict[str, Progress]:
        return self.node.progress

    def _point(self, what: str) -> None:
        self.node.point(what)

    def _send(self, dst: str, msg: object) -> None:
        self.node.send(dst, msg)

    def _info(self, wf: str) -> WfInfo:
        return self.node.running.info(wf)

    def _report(self, wf: str, step: str) -> None:
        self.node.running.report(wf, step)

    def _reliable(self, dst: str, msg_id: tuple, msg: object) -> None:
        self.node.reliable(dst, msg_id, msg)

    def _end_here(self, wf: str, state: WorkflowState) -> None:
        self.node.running.end_here(wf, state)

    # ---- the TakeoverPlug ----------------------------------------------------------------

    def tk_reset(self) -> None:
        self.takeovers = {}
        self.tick_at = None
        self.claim_again = {}

    def tk_boot(self) -> None:
        """After a restart: the ends this agent made as a successor go again to whoever
        has not acknowledged them (what it sent before was in memory only)."""
        d = self.disk
        for wf, state in d.final.items():
            epoch, coordinator = d.epochs.get(wf, (0, ""))
            if epoch < 1 or coordinator != self.name:
                continue
            info = self._info(wf)
            acked = d.final_acked.get(wf, set())
            for dst in sorted((set(info.placement.values()) | {info.coordinator})
                              - {self.name} - acked):
                self._reliable(dst, ("final", wf, dst), FinalMsg(wf, state, epoch))

    def coordinator_now(self, wf: str) -> str:
        """The coordinator this agent reports to for `wf` (or is): the one it follows, or
        a claimant it granted since. A participant that had not learned the commit when a
        claim came answered it as an acceptor (a grant, no follow): its results go to
        that claimant, not to the coordinator it granted away."""
        return held_of(self.disk, wf, self._info(wf).coordinator)[1]

    def tk_timer(self) -> float | None:
        if self.t.takeover_after_s is None or not self.progress:
            return None
        if self.tick_at is None:
            self.tick_at = self.monotonic() + TICK_S
        return self.tick_at

    def _tk_core(self, now: float, wf: str) -> Takeover | None:
        if self.t.takeover_after_s is None or wf not in self.progress or wf in self.disk.final:
            return None
        core = self.takeovers.get(wf)
        if core is None:
            info = self._info(wf)
            participants = set(info.placement.values())
            if self.name not in participants | {info.coordinator}:
                return None
            epoch, holder = held_of(self.disk, wf, info.coordinator)
            acting = self.disk.epochs.get(wf, (0, info.coordinator))[1] == self.name
            core = Takeover(self.name, info.coordinator, participants,
                            acceptors=acceptors_of(self.disk, wf), epoch=epoch,
                            coordinator=holder, takeover_after_s=self.t.takeover_after_s,
                            claim_timeout_s=self.t.prepare_timeout_s,
                            claiming=holder == self.name and not acting)
            self.takeovers[wf] = core
        return core

    def tk_wake(self, now: float) -> None:
        if self.tick_at is None or now < self.tick_at:
            return
        self.tick_at = now + TICK_S
        for wf in list(self.progress):
            restored = wf not in self.takeovers
            core = self._tk_core(now, wf)
            if core is None:
                continue
            if restored and core.role is Role.ACTING and core.epoch > 0:
                self.successor_outcome(now, wf)  # every result may be in already
                if wf not in self.progress:
                    continue
            if core.role is not Role.ACTING:
                dead = frozenset(p for p in core.participants
                                 if self.world.member_state(self.name, p) == "DEAD")
                self._tk_apply(now, wf, core, core.step(
                    now, Watch(self.world.member_state(self.name, core.coordinator), dead)))
            timer = core.get_timer()
            if timer is not None and timer <= now and wf in self.progress:
                self._tk_apply(now, wf, core, core.step(now, Timer()))
        again, self.claim_again = self.claim_again, {}
        for wf, members in sorted(again.items()):
            core = self.takeovers.get(wf)
            if core is None or wf not in self.progress or core.ended \
                    or core.coordinator != self.name:
                continue  # the claim is over
            for dst in sorted(members):
                self.world.stats["takeover claim sent again to a participant in doubt"] += 1
                self._send_claim(wf, core, SendClaim(dst, core.epoch))

    def _send_claim(self, wf: str, core: Takeover, x: SendClaim) -> None:
        """A claim, with the proof of the round for an acceptor holding no step, and, from
        a claimant that won, its certificate (`won`: the checker's record of who acted
        stands for the grants' signatures)."""
        won = core.role is Role.ACTING and self._won(wf, x.epoch, self.name)
        self._send(x.to, ClaimMsg(wf, x.epoch, self._round_proof(wf, core, x.to), won=won))

    def _won(self, wf: str, epoch: int, who: str) -> bool:
        """Does `who` hold an epoch certificate of `epoch` (a majority granted it: it
        acted)? The simulator signs nothing: this stands for verifying one."""
        return epoch >= 1 and self.world.checker.acting_in.get((wf, epoch)) == who

    def _follow_proven(self, now: float, wf: str, winner: str, epoch: int) -> bool:
        """A certificate shown by `winner` (its claim, or its answer to ours): the core
        follows it if it holds and its epoch is not below ours (`Proven`)."""
        core = self._tk_core(now, wf)
        if core is None or not self._won(wf, epoch, winner):
            return False
        before = (core.epoch, core.coordinator)
        self._tk_apply(now, wf, core, core.step(now, Proven(epoch, winner)))
        if (core.epoch, core.coordinator) != before:
            self.world.stats["takeover proven winner followed"] += 1
        return (core.epoch, core.coordinator) == (epoch, winner)

    def _tk_apply(self, now: float, wf: str, core: Takeover, actions: list) -> None:
        for x in actions:
            if isinstance(x, Persist):
                self._point("takeover epoch")
                self.disk.granted[wf] = (x.epoch, x.coordinator)
                if x.coordinator != self.name:
                    self.disk.epochs[wf] = (x.epoch, x.coordinator)
                    self._report_again(wf)
            elif isinstance(x, SendClaim):
                self._send_claim(wf, core, x)
            elif isinstance(x, Act):
                self._point("takeover act")
                self.disk.epochs[wf] = (x.epoch, self.name)
                self.world.stats["takeover"] += 1
                self.world.checker.acting(self.name, wf, x.epoch, self.world.now)
                self.successor_outcome(now, wf)

    def on_claim(self, now: float, src: str, msg: ClaimMsg) -> None:
        wf = msg.workflow_id
        d = self.disk
        if wf not in d.committed and wf not in d.rows and wf not in d.final:
            if self.node.participant.keys_of(wf):
                # A vote of ours, no decision learned: "in doubt here", no grant, no
                # refusal (the runtime's TakeoverAnswer.in_doubt); asked again soon.
                self.world.stats["takeover claim answered in doubt"] += 1
                self._send(src, ClaimAnswerMsg(wf, msg.epoch, False, 0, "", in_doubt=True))
                return
            self._on_claim_as_acceptor(src, msg)
            return
        original = self._info(wf).coordinator if wf in d.committed or wf in d.rows \
            else wf.rpartition(".")[0]
        epoch, holder = held_of(d, wf, original)
        if wf in d.final:  # an ended workflow is not taken over: its end instead
            self._send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder, d.final[wf]))
            return
        if not may_grant(epoch, holder, msg.epoch, src) and msg.won \
                and self._follow_proven(now, wf, src, msg.epoch):
            epoch, holder = held_of(d, wf, original)  # it won the epoch held: follow it
        if not may_grant(epoch, holder, msg.epoch, src):
            core = self._tk_core(now, wf)
            won = holder == self.name and core is not None and core.role is Role.ACTING \
                and self._won(wf, epoch, self.name)  # a rival of our epoch: our proof
            self._send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder, won=won))
            return
        core = self._tk_core(now, wf)
        if core is not None:
            self._tk_apply(now, wf, core, core.step(now, Adopted(msg.epoch, src)))
        else:
            self._tk_follow(wf, msg.epoch, src)
        self._send(src, ClaimAnswerMsg(wf, msg.epoch, True, msg.epoch, src))

    def _round_proof(self, wf: str, core: Takeover, to: str) -> Round | None:
        """What our claim shows an acceptor holding no step: the committed round, as its
        coordinator signed it at PREPARE, and its COMMIT (runtime.round_proofs)."""
        d = self.disk
        round_ = d.committed.get(wf)
        if to in core.participants or to == core.original or round_ is None:
            return None
        info = d.info.get((wf, round_))
        learned = d.learned.get((wf, round_))
        if info is None or not d.electorates.get(wf) or learned is None or not learned.commit:
            return None
        return Round(round_, frozenset(info.placement.values()),
                     frozenset(d.electorates[wf]), COMMIT)

    def _proof_holds(self, wf: str, proof: Round) -> bool:
        """Stands for the signature checks (the simulator signs nothing): the round is the
        one its coordinator sent, and a COMMIT of it was chosen."""
        tx = self.world.checker.txs.get((wf, proof.round))
        return tx is not None and self.world.checker.committed(wf) == proof.round \
            and (frozenset(tx.participants), frozenset(tx.acceptors)) \
            == (proof.participants, proof.acceptors)

    def _on_claim_as_acceptor(self, src: str, msg: ClaimMsg) -> None:
        """A claim of a workflow with no step here: an acceptor of its round answers, on
        the claim's proof, checked against its records (acceptor_grant)."""
        wf = msg.workflow_id
        d = self.disk
        records = []
        for (w, round_), rec in d.acceptor.items():
            if w == wf:
                decided = rec.decided or d.learned.get((w, round_))
                records.append(Round(round_, frozenset(rec.tx.participants),
                                     frozenset(rec.tx.acceptors), None if decided is None
                                     else COMMIT if decided.commit else ABORT))
        proof, error = msg.proof, None
        if proof is not None and not self._proof_holds(wf, proof):
            proof, error = None, ("bad_round_proof", "not the committed round")
        epoch, holder = d.granted.get(wf, (0, wf.rpartition(".")[0]))
        verdict = acceptor_grant(self.name, src, msg.epoch, (epoch, holder), records,
                                 proof, error)
        if verdict.refused:
            self.world.stats["takeover claim unknown here"] += 1
            self.world.stats[f"takeover claim refused {verdict.reason}"] += 1
            self._send(src, ClaimAnswerMsg(wf, msg.epoch, False, 0, ""))
            return
        if not verdict.granted:
            self._send(src, ClaimAnswerMsg(wf, msg.epoch, False, epoch, holder))
            return
        self._point("takeover epoch")
        d.granted[wf] = (msg.epoch, src)
        self.world.stats["takeover granted by an acceptor only"] += 1
        if proof is not None and not records:
            self.world.stats["takeover granted on a proof of the round"] += 1
        self._send(src, ClaimAnswerMsg(wf, msg.epoch, True, msg.epoch, src))

    def _report_again(self, wf: str) -> None:
        """A new coordinator is followed here: it collects the results, ours again."""
        p = self.progress.get(wf)
        if p is not None:
            for s in p.local_steps():
                if s.state in TERMINAL_STEP_STATES:
                    self._report(wf, s.id)

    def on_claim_answer(self, now: float, src: str, msg: ClaimAnswerMsg) -> None:
        core = self.takeovers.get(msg.workflow_id)
        if core is None or msg.workflow_id not in self.progress:
            return
        if msg.final is not None and src in core.audience:
            # Ended meanwhile: a member of the workflow says so, as its coordinator told
            # it (a participant's word about its own workflow; one outside the electorate
            # too: it may have been the coordinator of an epoch that ended it, and its
            # end is then the only one there is). A claimant (or acting
            # successor) makes that end its own and tells everyone, those that granted
            # its claim and follow it too: there is one end.
            self.world.stats["takeover found the end"] += 1
            if not self._announce(now, msg.workflow_id, core, msg.final):
                self.follow_end(now, msg.workflow_id, msg.held_epoch, src, msg.final)
                if msg.workflow_id not in self.disk.final:
                    self._end_here(msg.workflow_id, msg.final)
            return
        if msg.in_doubt and not msg.granted:
            if src in core.participants and core.coordinator == self.name \
                    and core.epoch == msg.epoch:
                self.claim_again.setdefault(msg.workflow_id, set()).add(src)
            return
        if msg.won and not msg.granted and msg.holder == src \
                and self._follow_proven(now, msg.workflow_id, src, msg.held_epoch):
            return
        event = Grant(src, msg.epoch) if msg.granted \
            else Deny(src, msg.epoch, msg.held_epoch, msg.holder)
        before = (core.role, core.epoch, core.coordinator)
        self._tk_apply(now, msg.workflow_id, core, core.step(now, event))
        if before[0] is Role.CLAIMING and msg.held_epoch == before[1] and not msg.granted:
            # A split claim settled on the denials (takeover_split), not at a timeout.
            if core.epoch == before[1] and core.coordinator not in (before[2], self.name):
                self.world.stats["takeover claimant yielded to a better-ranked rival"] += 1
            elif core.epoch > before[1] and core.coordinator == self.name:
                self.world.stats["takeover next epoch claimed on the denials"] += 1

    def _tk_follow(self, wf: str, epoch: int, coordinator: str) -> None:
        self._point("takeover epoch")
        self.disk.granted[wf] = (epoch, coordinator)
        self.disk.epochs[wf] = (epoch, coordinator)
        self._report_again(wf)
        row = self.disk.rows.get(wf)
        if row is not None:  # the original coordinator: no longer acts for it
            self.world.stats["old coordinator follows"] += 1

    def follow_end(self, now: float, wf: str, epoch: int, src: str,
                   state: WorkflowState) -> None:
        """An end notice the boundary let through. Of a later epoch than held: follow its
        sender; the original coordinator's row ends as the successor ended it. Of an
        earlier epoch than our own claim (taken: the claim had not won): the claimant
        tells it on, in its epoch, and ends the workflow here (see Announce)."""
        d = self.disk
        if epoch > 0 and epoch > held_of(d, wf, wf.rpartition(".")[0])[0]:
            core = self.takeovers.get(wf)
            if core is not None:
                self._tk_apply(now, wf, core, core.step(now, Adopted(epoch, src)))
            else:
                self._tk_follow(wf, epoch, src)
        row = d.rows.get(wf)
        if row is not None and epoch > 0 and row.state is not state:
            d.rows[wf] = replace(row, state=state)
        core = self._tk_core(now, wf)
        if core is not None and self._announce(now, wf, core, state):
            self.world.stats["takeover claimant told an earlier epoch's end on"] += 1

    def _announce(self, now: float, wf: str, core: Takeover, state: WorkflowState) -> bool:
        """The end is known here: a claimant (or acting successor) makes it its own and
        tells everyone, those that granted its claim and follow it too: there is one
        end. False if the core leaves it to the coordinator it follows."""
        if wf not in self.progress:
            return False
        for x in core.step(now, EndKnown()):
            if isinstance(x, Announce):
                self._end_as_successor(now, wf, x.epoch, state)
                return True
        return False

    def successor_outcome(self, now: float, wf: str) -> None:
        """An acting successor ends the workflow once its progress has an outcome."""
        from fedorch.core.workflow import lifecycle
        from fedorch.core.workflow.lifecycle import WorkflowState
        from fedorch.core.workflow.progress import Outcome

        core = self.takeovers.get(wf)
        p = self.progress.get(wf)
        if core is None or p is None or core.role is not Role.ACTING or core.epoch < 1:
            return
        outcome = p.outcome()
        if outcome is None:
            return
        self._point("workflow outcome")
        event = lifecycle.Succeeded() if outcome is Outcome.SUCCEEDED else lifecycle.Failed()
        self._end_as_successor(now, wf, core.epoch,
                               lifecycle.step(WorkflowState.RUNNING, event))

    def _end_as_successor(self, now: float, wf: str, epoch: int,
                          state: WorkflowState) -> None:
        self.world.checker.coordinator_ended(self.name, wf, epoch, state)
        row = self.disk.rows.get(wf)
        if row is not None:  # the original coordinator, back and acting in a later epoch
            self.disk.rows[wf] = replace(row, state=state)
        info = self._info(wf)
        self._end_here(wf, state)
        if self.disk.epochs.get(wf) != (epoch, self.name):
            # A claimant's end, in the same write as the end: a restart tells it again
            # (tk_boot), and the claim is never taken for won (the core is not rebuilt).
            self.disk.epochs[wf] = (epoch, self.name)
        for dst in sorted((set(info.placement.values()) | {info.coordinator}) - {self.name}):
            self._reliable(dst, ("final", wf, dst), FinalMsg(wf, state, epoch))
