"""The node engine's read view: workflow statuses built from the Node, and wake-ups.

Theory of operation
-------------------
The client service answers GetWorkflow, Watch and ListWorkflows from the Node's own
state (`node.state`, the view of its durable tables, and `node.progress`, the
progress of each committed workflow it runs), never from a table of its own, and only
as far as that state is durable. The driver splits each turn at its commit
(runtime/driver.py, `ThreadedWrite`): from `ready()` until the write returned, the
Node's live state is ahead of node.db by the turn in flight, and a reader on the
event loop must not see it (a crash now would take it back). So a status is built
only while the Node is at rest (no Ready handed out, or its write returned: the view
hears `written()` before the driver goes on), and kept (`_kept`: the status and the
turn it was built in). A read while a commit is out answers the kept status, which is
the last durable one; a workflow with none kept waits for the commit (`read`).
Except while node.db cannot be written (write_behind.py): the Node then runs ahead
of the file by the writes kept in memory, and a read may show what a crash now would
make it learn again (the status changes, and the submitter's answer, are held until
the write). And except a Ready's `status_now` (core/node/ready.py): a coordinator's
RUNNING once Paxos Commit's acceptors chose its COMMIT, which a driver may tell with
the turn's first sends, before its write. `status_changed` then builds from the live
state with the commit out (the COMMIT is durable at the acceptors, if not yet in
node.db), keeps it, and the reads until that commit returns answer it; a crash before
the write shows NEGOTIATING again after the restart, until the restored coordinator
has learned the COMMIT from its acceptors (never ABORTED).

A status is built once per change that someone will read, not once per reader and
not at every change: when the driver reports a workflow's state change (after its
write), the status of a workflow someone follows is built there and kept, and the
readers it wakes take that one; a listener (`listen`: a SubmitStream's submission)
has it built only for the states it asked for, and is told the others by state alone;
the submitter waiting for its row to be durable (`submitted`) needs no status. A kept
status no one waits for is dropped at a change instead of built (a later read builds
it). A follower of steps has its workflow's status rebuilt after each durable turn (a
step's result changes no workflow state). A kept status is used at
rest until the next durable turn, or the next start the Node took in without a write
(a step started at another domain, told its coordinator: core/node/running.py
`starts_shown`; the turn that folds it alone writes nothing, and the status kept
before it would show the step WAITING until some later write), and always while a
commit is out. At most
`KEPT_STATUSES` are kept (the oldest go first), so the view stays bounded however
many workflows end; one not kept is built again when read.
A status is built (`status_of`): its workflow row (coordinator) or committed PREPARE
(participant), its final state and reason (the row's; a participant's own only for an
end it made as a successor, `end_reasons`, or a cancel it took), its coordinator and
epoch (the one followed or acted as here: a successor after a takeover, `epochs`),
the coordinator's refusals (each round's NO votes and silences, `refusals`), and each
step from the live progress or, once the workflow has ended, from the results the
Node keeps (a step placed again names the domain it was lost with: `replaced_from`).
Its coordinator
adds the compensations (`compensation`, and each compensated step's state); a
participant leaves them out (the summary reads NONE there). A step's outputs are shown
as their canonical JSON text, written once per outputs object and kept for the
builds after (`OutputTexts`: an outputs dict is never changed in place, so a changed
output is another object, written anew).

`StatusView` is also the driver's `StatusSink`: a workflow's state change wakes the
watchers of that workflow, and the submitter waiting for its workflow to be durable
(`submitted`). `WriteNotice` wraps the Durable port so that every committed turn wakes
the watchers that follow steps too (a step's result changes no workflow state). A
watcher registers before it awaits (`wait`), with no await in between reading and
registering, so no wake-up is lost. Nothing here polls: a watcher sleeps on its
future until a change, or its heartbeat.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from fedorch.core.node.ready import Write
from fedorch.core.workflow import values
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import status_pb2
from fedorch.runtime.ports import Durable

__all__ = ["Listener", "OutputTexts", "StatusView", "WriteNotice", "status_of"]


# A step's state (a StepState or its value) -> the proto's enum number.
_STEP_STATES = {key: status_pb2.StepState.Value(f"STEP_STATE_{s.value}")
                for s in StepState for key in (s, s.value)}


KEPT_OUTPUT_TEXTS = 16_384  # outputs whose canonical text is kept (`OutputTexts`)
KEPT_OUTPUT_CHARS = 16_384  # and only a text up to this long (a bound on memory)


class OutputTexts:
    """The canonical JSON text of each step's outputs (`values.write_object`), written
    once per outputs object, not at every build of a status that shows it.

    Keyed by the object's identity, the object kept alive with its text, so no other
    object can take its id while it is kept. That is safe because an outputs dict is
    never changed in place: the cores take a result's outputs into a new dict
    (core/workflow/progress.py `dict(outputs)`; the results table's tuples are made
    anew at each result, core/node/running.py), so a step whose outputs changed holds
    another object, whose text is written then. A text longer than
    `KEPT_OUTPUT_CHARS` is written at each build (kept, it would hold a large value
    alive); at most `kept` texts are kept, the oldest go first."""

    def __init__(self, kept: int = KEPT_OUTPUT_TEXTS) -> None:
        self.kept = kept
        self._texts: dict[int, tuple[dict, str]] = {}
        self.written = 0  # texts written (for tests and the benchmark note)

    def write(self, step: status_pb2.StepStatus, outputs: dict) -> None:
        """Set a new `step`'s outputs (it has no Struct to clear: only the text is set)."""
        entry = self._texts.get(id(outputs))
        if entry is not None and entry[0] is outputs:
            step.outputs_json = entry[1]
            return
        values.write_object(step, "outputs", outputs)
        self.written += 1
        text = step.outputs_json
        if len(text) <= KEPT_OUTPUT_CHARS:
            texts = self._texts
            texts[id(outputs)] = (outputs, text)
            if len(texts) > self.kept:
                del texts[next(iter(texts))]


def status_of(node: Any, wf: str,
              texts: OutputTexts | None = None) -> status_pb2.WorkflowStatus | None:
    """The status of `wf` as `node` (a core.node.Node) knows it; None: not known.
    `texts`: where the outputs' texts are kept between builds (None: written anew)."""
    d = node.state
    row = d.rows[wf] if wf in d.rows else None  # `in` and subscripts: no .get calls
    if row is not None:  # coordinated here
        info, state = row.info, d.final[wf] if wf in d.final else row.state
        reason, rounds = row.reason, row.round
    elif wf in d.committed and (wf, d.committed[wf]) in d.info:  # a participant
        info = d.info[(wf, d.committed[wf])]
        state, rounds = d.final.get(wf, WorkflowState.RUNNING), d.committed[wf]
        reason = d.end_reasons.get(wf, "")  # an end it made as a successor, if any
        if state is WorkflowState.CANCELLED and wf in d.cancels:  # it took, as a successor
            reason = f"cancelled: {d.cancels[wf]}"
    else:
        return None
    # The coordinator followed here, or acted as (a takeover's epoch >= 1): the current
    # one as this agent knows it; the one the id names in epoch 0.
    epoch, coordinator = d.epochs.get(wf, (0, info.coordinator))
    out = status_pb2.WorkflowStatus(id=wf, name=info.spec.name, state=state,
                                    coordinator=coordinator, epoch=epoch, reason=reason,
                                    rounds=rounds)
    if row is not None:  # why earlier rounds were redone, or the workflow aborted
        for round_, domain, steps, why in d.refusals.get(wf, ()):
            out.refusals.add(round=round_, domain=domain, steps=steps, reason=why)
    progress = node.progress.get(wf)
    results = d.results.get(wf, {})
    moved = d.placements.get(wf, {})  # steps placed again (core/node/replacement.py)
    for s in info.spec.steps:
        domain = moved[s.id][1] if s.id in moved else info.placement.get(s.id, "")
        step = out.steps.add(id=s.id, capability=s.capability, domain=domain,
                             instance_of=s.instance_of, wave=s.wave)  # fan-out only
        if s.id in moved and moved[s.id][2]:
            # The domain it was lost with: the Node keeps the latest placement's only,
            # so a step placed again twice names its last lost domain alone.
            step.replaced_from.append(moved[s.id][2])
        if progress is not None and s.id in progress.steps:
            p = progress.steps[s.id]
            state_name, attempts, outputs, error = p.state, p.attempts, p.outputs, p.error
            step.domain = p.domain or domain
        elif s.id in results:
            attempts, state_name, outputs, error = results[s.id]
        else:
            state_name, attempts, outputs, error = StepState.PENDING, 0, {}, ""
        step.state = _STEP_STATES[state_name]
        step.attempts = attempts
        step.error = error
        if outputs:  # a new message has none to clear: only a result is written
            if texts is not None:
                texts.write(step, outputs)
            else:
                values.write_object(step, "outputs", outputs)
    if row is not None or coordinator == node.name:
        # The coordinator in its epoch (the original, or a successor) drives the
        # compensations and holds their rows (compensating.py).
        _compensations(node, wf, out)
    return out


def _compensations(node: Any, wf: str, out: status_pb2.WorkflowStatus) -> None:
    """Each compensated step's state (COMPENSATED, COMPENSATION_FAILED with its error:
    all its compensations taken together), the summary, and each compensation."""
    rows, summary = node.compensating.of(wf)
    for step in out.steps:
        r = rows.get(step.id)
        if r is not None and r.state in ("COMPENSATED", "COMPENSATION_FAILED"):
            step.state = status_pb2.StepState.Value(f"STEP_STATE_{r.state}")
            step.error = r.error
    out.compensation = status_pb2.CompensationSummary.Value(
        f"COMPENSATION_SUMMARY_{summary.value}")
    # Each compensation apart: a step that ran in two domains has one in each.
    for step, r in node.compensating.runs.rows(wf):
        out.compensations.add(step=step, domain=r.domain, state=r.state,
                              attempts=r.attempts, error=r.error)


class Listener(Protocol):
    """Told each durable state change of one workflow, in the driver's `finish`."""

    def wants(self, state: Any) -> bool:
        """Will it read the status of a change to `state`? (Then it is built.)"""

    def heard(self, workflow_id: str, state: Any,
              status: status_pb2.WorkflowStatus | None) -> bool:
        """The change (`status`: built if wanted, else None); True: it listens no more."""


KEPT_STATUSES = 8_192  # statuses kept for reads while a commit is out (see the header)
COMMIT_WAIT_S = 2.0  # a reader waiting for a commit looks again after this (a fault)


class StatusView:
    """The StatusSink of the node engine's driver and the waits of its readers."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self._state_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._turn_waiters: list[tuple[str, asyncio.Future[None]]] = []
        self._submitted: dict[str, asyncio.Future[None]] = {}
        # Workflow -> (what it was built at: `_version`, its status).
        self._kept: OrderedDict[str, tuple[tuple[int, int],
                                           status_pb2.WorkflowStatus | None]] = OrderedDict()
        self._turn = 0  # durable turns heard of (`written`)
        # Reads that wait for the commit out: (workflow ids or None for all, future).
        self._wanted: list[tuple[list[str] | None, asyncio.Future[list[Any]]]] = []
        self._listeners: dict[str, list[Listener]] = {}
        self.built = 0  # statuses built, in all (for tests and the benchmark note)
        self.texts = OutputTexts()  # each step's outputs as text, kept between builds

    # ---- reads ---------------------------------------------------------------------

    def at_rest(self) -> bool:
        """Is the Node's live state durable? Not from `ready()` until the driver
        advances it. `written` and `status_changed` come in between, once the write
        returned, and build from the live state themselves; no read runs then."""
        return not self.node.awaiting_advance

    def status(self, wf: str) -> status_pb2.WorkflowStatus | None:
        """`wf`'s last durable status as far as known without waiting: the kept one
        while a commit is out (None if none is kept: see `read`)."""
        kept = self._kept.get(wf)
        if not self.at_rest():
            return kept[1] if kept is not None else None
        if kept is not None and kept[0] == self._version():
            return kept[1]
        return self._build(wf)

    async def read(self, wf: str) -> status_pb2.WorkflowStatus | None:
        """`wf`'s last durable status; None: not known here. While a commit is out and
        no status of `wf` is kept: the one built when that commit returned."""
        if self.at_rest() or wf in self._kept:
            return self.status(wf)
        return (await self._after_commit([wf]))[0]

    async def read_all(self) -> list[status_pb2.WorkflowStatus]:
        """The last durable status of every workflow known here."""
        ids = list(self.workflow_ids()) if self.at_rest() else None
        statuses = [self.status(wf) for wf in ids] if ids is not None \
            else await self._after_commit(None)
        return [s for s in statuses if s is not None]

    async def _after_commit(self, wfs: list[str] | None) -> list[Any]:
        """The statuses of `wfs` (None: of every workflow), built when the commit out
        returned (`written`): then the live state is durable, whatever turn follows.
        A commit that failed for the storage is kept, not written (write_behind.py),
        and no `written` comes until a retry succeeds: a reader that finds the Node at
        rest after `COMMIT_WAIT_S` is answered from it (the exception of the header)."""
        while True:
            fut: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
            self._wanted.append((wfs, fut))
            try:
                return await asyncio.wait_for(fut, COMMIT_WAIT_S)
            except TimeoutError:
                if self.at_rest():
                    ids = list(self.workflow_ids()) if wfs is None else wfs
                    return [self.status(wf) for wf in ids]

    def _build(self, wf: str) -> status_pb2.WorkflowStatus | None:
        """Build `wf`'s status from the Node at rest, and keep it."""
        status = status_of(self.node, wf, self.texts)
        self.built += 1
        kept = self._kept
        kept[wf] = (self._version(), status)
        kept.move_to_end(wf)
        while len(kept) > KEPT_STATUSES:
            kept.popitem(last=False)
        return status

    def _version(self) -> tuple[int, int]:
        """What a kept status was built at: the durable turns heard of, and the starts
        the Node took in without a write (a step started at another domain, told its
        coordinator: core/node/running.py), which change a status all the same."""
        return self._turn, self.node.running.starts_shown

    def workflow_ids(self) -> Iterator[str]:
        """Every workflow known here: coordinated here, then taken part in."""
        d = self.node.state
        yield from d.rows
        yield from (wf for wf in d.committed if wf not in d.rows)

    # ---- waits ---------------------------------------------------------------------

    def submitted(self, wf: str) -> asyncio.Future[None]:
        """Resolved once the Node's first state change of `wf` (its row) is durable."""
        fut = asyncio.get_running_loop().create_future()
        self._submitted[wf] = fut
        return fut

    def abandon(self, wf: str) -> None:
        self._submitted.pop(wf, None)

    def listen(self, wf: str, listener: Listener) -> None:
        """Tell `listener` each durable state change of `wf` from now on, until its
        `heard` says enough or `unlisten`. Register before the change can happen (before
        posting the Submit), so none is missed."""
        self._listeners.setdefault(wf, []).append(listener)

    def unlisten(self, wf: str, listener: Listener) -> None:
        listeners = self._listeners.get(wf)
        if listeners is not None and listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del self._listeners[wf]

    async def wait(self, wf: str, *, steps: bool, timeout: float) -> None:
        """Until `wf`'s state changes (with `steps`: until any turn is durable), at most
        `timeout` seconds. Register-then-await: call it right after reading."""
        fut = asyncio.get_running_loop().create_future()
        entry = (wf, fut)
        if steps:
            self._turn_waiters.append(entry)
        else:
            self._state_waiters.setdefault(wf, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            if steps and entry in self._turn_waiters:
                self._turn_waiters.remove(entry)
            elif not steps:
                waiters = self._state_waiters.get(wf)
                if waiters is not None and fut in waiters:
                    waiters.remove(fut)
                    if not waiters:
                        del self._state_waiters[wf]

    # ---- the sink and the write notice ---------------------------------------------------

    def status_changed(self, workflow_id: str, state: object) -> None:
        # The driver tells this after the write, the Node at rest (or a RUNNING whose
        # COMMIT the acceptors chose, before it: see the header): the one build of this
        # change, for everyone it wakes (their reads may come while the next commit is
        # out), if anyone will read it.
        listeners = self._listeners.get(workflow_id)
        status = None
        wanted = workflow_id in self._state_waiters
        if not wanted and listeners is not None:  # a loop, not any(generator): a call less
            for li in listeners:                  # per change and per listener
                if li.wants(state):
                    wanted = True
                    break
        if wanted:
            status = self._build(workflow_id)
        elif workflow_id in self._kept:  # behind now: built again when read
            del self._kept[workflow_id]
        if listeners is not None:
            for listener in tuple(listeners):
                if listener.heard(workflow_id, state, status):
                    self.unlisten(workflow_id, listener)
        fut = self._submitted.pop(workflow_id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        for waiter in self._state_waiters.pop(workflow_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    def written(self) -> None:
        """A turn is durable (its Ready's writes returned): kept statuses may be behind
        it (a step's progress), the followers of steps get theirs built now."""
        self._turn += 1
        waiters, self._turn_waiters = self._turn_waiters, []
        for wf in {wf for wf, _ in waiters}:
            self._build(wf)
        for _, waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        wanted, self._wanted = self._wanted, []
        for wfs, fut in wanted:
            if not fut.done():
                ids = list(self.workflow_ids()) if wfs is None else wfs
                fut.set_result([self._build(wf) for wf in ids])


class WriteNotice:
    """A Durable port that tells the view after each committed turn (see the header)."""

    def __init__(self, durable: Durable, view: StatusView) -> None:
        self.durable = durable
        self.view = view

    def write(self, writes: Sequence[Write]) -> None:
        self.durable.write(writes)
        self.view.written()
