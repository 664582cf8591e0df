"""A participant's acknowledgement of a COMMIT, and the step results that stand for it.

Theory of operation
-------------------
What a DecisionAck tells a coordinator. A participant sends it once its hold of the
round committed, in the write that committed it: the COMMIT is durable there, so that
participant will never ask the coordinator about the round again (no DecisionQuery, no
recovery ballot of its own). The coordinator then stops sending it the COMMIT notice
(coordinator_resends: after `commit_notice_s`), and once every participant of the
round acknowledged it, drops its decision record (`collectable`; the fact that the
round committed stays, and a query is answered FORGOTTEN) and tells its end `settled`
(retention's order of forgetting).

Why a result stands for it. A participant starts a step attempt of a workflow only
once the workflow is committed here (running.py: the progress is built at the hold's
commit), and the attempt only after its start record, in that write or a later one,
is durable; it reports the attempt's start (a RUNNING tell) and its end (a result)
after that. So a result of a step that the round placed on its sender, at the step's
first placement (placement epoch 0), says what the DecisionAck says: the sender
holds the round's COMMIT durably. The coordinator counts it as the sender's
acknowledgement (`result_from`, through the core's `receive_result`, before the
result is applied: an end it makes is told `settled` when it is), and the
participant, which would send its DecisionAck at once, waits `Timing.decision_ack_s`
for a result or start tell of its own to go to that coordinator first (`defer`,
`reported`): the two acknowledgements of a three-domain chain's remote participants
are not sent at all when their steps start within that time. A participant whose
step does not start in time (it waits for a long upstream step, or is skipped after a
failure) sends its DecisionAck when the time is up (`tick`). The coordinator's first COMMIT
notice to a participant that has not acknowledged comes as much later (the Node's
`commit_notice_s` is the core's 1 s plus `decision_ack_s`: node.py, `consensus`), so
the wait draws no notice it would not have drawn before (with the notice at 1 s, an
overloaded bench sent one for about a fifth of the participants' acknowledgements on
their way: docs/benchmarks.md); a notice that comes is acknowledged at once (the hold committed already:
`apply_decision` sends it), as is a COMMIT learned again. A participant that never
learned the COMMIT is sent it that much later, where it has not asked itself first.

Reliability is as before: a DecisionAck is sent once and not resent (a lost one is
answered by the coordinator's notice); a start tell that stands for it is sent once
too, and a result is resent until the coordinator acknowledges it. What is owed is
kept in memory only: a restart loses it, and the coordinator's notice brings it back.

Where the coordinator counts no result. Only a workflow's own rounds: a re-placement
round's acknowledgements move its own flow (replacement.py), so a participant
acknowledges those at once. And a result counts only while the coordinator knows no
re-placement of the workflow (`placements`) and follows no later coordinator epoch:
a participant in doubt on the round (its YES given, the COMMIT not learned) that was
made a new domain of a step and took that round's COMMIT first builds its progress
from that round and may run its first-placement steps too without holding the
round's COMMIT (placed_here.py, `committed_here`). The coordinator that ran that
re-placement round has it on record; a successor's round (takeover) it may not know
of. Takeover runs under both commit protocols (always on in the daemon, which runs
`negotiation.commit: 2pc` as classic rounds; the simulator soaks `--commit 2pc
--takeover 3` too).
Under Paxos Commit every round's acceptors keep its decision for the round's life
(retention.py), so a participant in doubt that is answered FORGOTTEN still learns the
COMMIT from them: a count that came too early costs a record the acceptors hold
anyway, never a decision. Under classic 2PC the workflow's round has no acceptors and
a FORGOTTEN answer teaches nothing (core/negotiation/termination.py acts on a decision
only); there the count rests on where results go: a participant that takes a
successor's round's COMMIT follows that successor, or a later epoch it holds already
(placed_here.py, `committed_here`), and reports to the coordinator it follows
(takeover.py, `coordinator_now`), not to the original. No more than that is argued
here for classic 2PC.

Cost: a deferred acknowledgement is a dict entry; the deadlines are one constant after
the Node's `now`, which never goes back within a Node's life, so the dict's first entry
is the earliest (`timer`) and a tick pops from the front.

Pure: reads and writes the Node's cores and outbox only.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.coordinator import Phase
from fedorch.core.negotiation.messages import DecisionAck, Key, TxInfo
from fedorch.core.node.records import ResultMsg


class CommitAcks:
    def __init__(self, node: Any) -> None:
        # The Node that owns this part (typed loosely: the Node imports its parts,
        # never the reverse, so the import graph has no cycle).
        self.n = node
        # Workflow -> (round, its coordinator, when the DecisionAck goes): owed here.
        self.owed: dict[str, tuple[Key, str, float]] = {}

    def reset(self) -> None:
        """A restore: what was owed is lost (the coordinator's notice asks again)."""
        self.owed = {}

    # ---- as a participant ----------------------------------------------------------

    def defer(self, now: float, key: Key, tx: TxInfo) -> bool:
        """Our hold of the workflow's own round `key` committed just now: its
        DecisionAck is owed, unless a result or start tell of ours goes to the round's
        coordinator first. False: send it now (the wait is off, or our results go to
        another coordinator than the round's)."""
        n = self.n
        wait = n.t.decision_ack_s
        if not wait or key[0] in self.owed:
            return False
        wf = key[0]
        if n.takeover is not None and n.takeover.coordinator_now(wf) != tx.coordinator:
            return False
        self.owed[wf] = (key, tx.coordinator, now + wait)
        return True

    def deferred_at(self, now: float, wf: str, to: str) -> bool:
        """Was our DecisionAck of `wf` to `to` deferred at this `now` (its COMMIT learned
        in this very step), and is it still owed?"""
        owed = self.owed.get(wf)
        return owed is not None and owed[1] == to and owed[2] == now + self.n.t.decision_ack_s

    def reported(self, to: str, msg: ResultMsg) -> None:
        """`msg` goes to `to`: if it is a report the round's coordinator counts as our
        acknowledgement (see `result_from`), the DecisionAck owed is not sent."""
        owed = self.owed.get(msg.workflow_id)
        if owed is None or owed[1] != to or msg.epoch != 0:
            return
        info = self.n.state.info.get(owed[0])
        if info is not None and info.placement.get(msg.step_id) == self.n.name:
            del self.owed[msg.workflow_id]
            self.n.stats["DecisionAck left to a result"] += 1

    def timer(self) -> float | None:
        for _, _, due in self.owed.values():
            return due  # the first entry is the earliest (see the header)
        return None

    def tick(self, now: float) -> None:
        """Send the DecisionAcks whose wait is over."""
        owed = self.owed
        while owed:
            wf = next(iter(owed))
            key, coordinator, due = owed[wf]
            if due > now:
                return
            del owed[wf]
            self.n.send(coordinator, DecisionAck(key, self.n.name))

    # ---- as the coordinator ----------------------------------------------------------

    def result_from(self, now: float, src: str, msg: ResultMsg) -> None:
        """A result or start tell from `src` (the authority table checked it is the
        step's domain): counted as `src`'s acknowledgement of the COMMIT of the
        workflow's round where it implies one (see the header)."""
        n = self.n
        wf = msg.workflow_id
        record = n.coordinators.ended.get(wf)
        if record is not None and record.committed:
            return  # every COMMIT acknowledged: an ended core's answer (ended_cores.py)
        core = n.coordinators.get(wf)
        if core is None or msg.epoch != 0 or src == n.name \
                or core.phase is Phase.COMMITTED and not core.awaiting_acks():
            return
        d = n.state
        if wf in d.placements or d.epochs.get(wf, (0, ""))[0] != 0:
            return
        if core.placement.get(msg.step_id) != src:
            return
        core.receive_result(now, src)
        n.stats["result counted as a DecisionAck"] += 1
        n.negotiation.collect(core)
