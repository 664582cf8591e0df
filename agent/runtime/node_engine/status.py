"""The node engine's read view: workflow statuses built from the Node, and wake-ups.

Theory of operation
-------------------
The client service answers GetWorkflow, Watch and ListWorkflows from the Node's own
state (`node.state`, the view of its durable tables, and `node.progress`, the
progress of each committed workflow it runs), never from a table of its own: what
a reader sees is what the Node has made durable, since the view is read between
driver turns and every change of a turn is written before the turn ends. Except while
node.db cannot be written (write_behind.py): the Node then runs ahead of the file by
the writes kept in memory, and a read may show what a crash now would make it learn
again (the status changes, and the submitter's answer, are held until the write). A status is
built on demand (`status`): its workflow row (coordinator) or committed PREPARE
(participant), its final state, and each step from the live progress or, once the
workflow has ended, from the results the Node keeps.

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
from collections.abc import Iterator, Sequence
from typing import Any

from fedorch.core.node.ready import Write
from fedorch.core.workflow import values
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import status_pb2
from fedorch.runtime.ports import Durable

__all__ = ["StatusView", "WriteNotice", "status_of"]


def status_of(node: Any, wf: str) -> status_pb2.WorkflowStatus | None:
    """The status of `wf` as `node` (a core.node.Node) knows it; None: not known."""
    d = node.state
    row = d.rows.get(wf)
    if row is not None:  # coordinated here
        info, state = row.info, d.final.get(wf, row.state)
        reason, rounds = row.reason, row.round
    elif wf in d.committed and (wf, d.committed[wf]) in d.info:  # a participant
        info = d.info[(wf, d.committed[wf])]
        state, reason, rounds = d.final.get(wf, WorkflowState.RUNNING), "", d.committed[wf]
    else:
        return None
    out = status_pb2.WorkflowStatus(id=wf, name=info.spec.name, state=state,
                                    coordinator=info.coordinator, reason=reason,
                                    rounds=rounds)
    progress = node.progress.get(wf)
    results = d.results.get(wf, {})
    for s in info.spec.steps:
        domain = info.placement.get(s.id, "")
        step = out.steps.add(id=s.id, capability=s.capability, domain=domain)
        if progress is not None and s.id in progress.steps:
            p = progress.steps[s.id]
            state_name, attempts, outputs, error = p.state, p.attempts, p.outputs, p.error
            step.domain = p.domain or domain
        elif s.id in results:
            attempts, state_name, outputs, error = results[s.id]
        else:
            state_name, attempts, outputs, error = StepState.PENDING, 0, {}, ""
        step.state = status_pb2.StepState.Value(f"STEP_STATE_{StepState(state_name).value}")
        step.attempts = attempts
        step.error = error
        values.write_object(step, "outputs", outputs or {})
    return out


class StatusView:
    """The StatusSink of the node engine's driver and the waits of its readers."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self._state_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._turn_waiters: list[asyncio.Future[None]] = []
        self._submitted: dict[str, asyncio.Future[None]] = {}

    # ---- reads ---------------------------------------------------------------------

    def status(self, wf: str) -> status_pb2.WorkflowStatus | None:
        return status_of(self.node, wf)

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

    async def wait(self, wf: str, *, steps: bool, timeout: float) -> None:
        """Until `wf`'s state changes (with `steps`: until any turn is durable), at most
        `timeout` seconds. Register-then-await: call it right after reading."""
        fut = asyncio.get_running_loop().create_future()
        if steps:
            self._turn_waiters.append(fut)
        else:
            self._state_waiters.setdefault(wf, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            if steps and fut in self._turn_waiters:
                self._turn_waiters.remove(fut)
            elif not steps:
                waiters = self._state_waiters.get(wf)
                if waiters is not None and fut in waiters:
                    waiters.remove(fut)
                    if not waiters:
                        del self._state_waiters[wf]

    # ---- the sink and the write notice ---------------------------------------------------

    def status_changed(self, workflow_id: str, state: object) -> None:
        fut = self._submitted.pop(workflow_id, None)
        if fut is not None and not fut.done():
            fut.set_result(None)
        for waiter in self._state_waiters.pop(workflow_id, ()):
            if not waiter.done():
                waiter.set_result(None)

    def written(self) -> None:
        waiters, self._turn_waiters = self._turn_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class WriteNotice:
    """A Durable port that tells the view after each committed turn (see the header)."""

    def __init__(self, durable: Durable, view: StatusView) -> None:
        self.durable = durable
        self.view = view

    def write(self, writes: Sequence[Write]) -> None:
        self.durable.write(writes)
        self.view.written()
