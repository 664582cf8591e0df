"""The end notices a coordinator owes survive its restart (coordination_outcomes with a
real store): they are on disk from the write of the end on, deleted once their domain
answers, sent again by a restarted agent (the original coordinator's after a takeover
too) and owed no more once their workflow is gone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from fedorch.core.workflow.lifecycle import TERMINAL_NAMES, Cancelled
from fedorch.gen.fedorch.v1 import peer_pb2, status_pb2
from fedorch.runtime.context import Active
from fedorch.runtime.coordination_outcomes import END_NOTICE_PATIENCE_S, Outcomes
from fedorch.runtime.store import compaction, end_notices
from fedorch.runtime.store.store import Store, WorkflowRow

NOW_MS = 1_000_000_000


class _Gauge:
    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1


class _Agent(SimpleNamespace):
    """What Outcomes uses of an agent: the real store; deliveries recorded, answered
    as `answers` says (None: no answer, the agent stopping)."""

    def __init__(self, store: Store, me: str, answer: peer_pb2.Ack | None) -> None:
        super().__init__(domain=me, store=store, stopping=answer is None, tasks=[],
                         sent=[], started=asyncio.Event())
        self.answer = answer
        self.participant = SimpleNamespace(release_workflow=lambda _id: [])
        self.compensation = SimpleNamespace(owed=lambda row, progress: [])
        self.audit = SimpleNamespace(ended=lambda active: (
            "INSERT INTO meta(key, value) VALUES(?, 'ended')", (f"ended {active.row.id}",)))
        self.metrics = SimpleNamespace(
            workflows=SimpleNamespace(labels=lambda state: _Gauge()),
            end_notices_owed=_Gauge())
        self.finished = lambda workflow_id: None
        self.now_ms = lambda: NOW_MS

    async def save(self, active: Active, also=()) -> list[int]:
        return await self.store.save_workflow(active.row, also=also)

    def spawn(self, coro, name: str) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        return task

    async def deliver(self, domain: str, method: str, *, endpoints, give_up_after: float,
                      cancel: peer_pb2.CancelNotice) -> peer_pb2.Ack | None:
        self.sent.append((domain, method, cancel.workflow_id, cancel.epoch,
                          cancel.final_state, give_up_after))
        return self.answer

    async def settled(self) -> None:
        """Until every delivery this agent spawned is over (they are the test's tasks)."""
        await asyncio.wait_for(asyncio.gather(*self.tasks), timeout=10)


def _row(workflow_id: str, coordinator: str, epoch: int) -> WorkflowRow:
    return WorkflowRow(id=workflow_id, name="w", coordinator=coordinator, state="RUNNING",
                       spec=b"s", placement={"a": "p1", "b": "p2", "c": "p3"}, round=1,
                       epoch=epoch, created_ms=1, updated_ms=1)


async def _owed(store: Store) -> list[tuple[str, str, int]]:
    return [(n.workflow_id, n.domain, n.owed_since_ms) for n in await end_notices.owed(store)]


async def test_the_notices_owed_are_written_with_the_end_and_deleted_once_answered(
        tmp_path: Path) -> None:
    """After a takeover (epoch 1): the successor p1 owes the end to every participant
    and to the original coordinator c0, on disk until each answers."""
    store = await Store.open(tmp_path / "data")
    try:
        agent = _Agent(store, "p1", answer=None)  # stops before any answer comes
        active = Active(row=_row("c0.1", "p1", epoch=1))
        await store.save_workflow(active.row)
        assert await Outcomes(agent, {}).end(active, Cancelled("by hand"), told="p3")
        await agent.settled()
        # p3 had it in the answer to its result; p1 is this agent.
        assert await _owed(store) == [("c0.1", "c0", NOW_MS), ("c0.1", "p2", NOW_MS)]
        assert (await store.get_workflow("c0.1")).state == "CANCELLED"
        assert sorted(s[0] for s in agent.sent) == ["c0", "p2"]
        assert agent.metrics.end_notices_owed.value == 0

        answered = _Agent(store, "p1", answer=peer_pb2.Ack(ok=True))
        ended = Active(row=_row("c0.2", "p1", epoch=1))
        await store.save_workflow(ended.row)
        assert await Outcomes(answered, {}).end(ended, Cancelled("by hand"))
        await answered.settled()
        assert sorted(s[0] for s in answered.sent) == ["c0", "p2", "p3"]
        # c0.2's: answered, gone.
        assert await _owed(store) == [("c0.1", "c0", NOW_MS), ("c0.1", "p2", NOW_MS)]
    finally:
        await store.close()


async def test_the_original_coordinator_s_notices_are_told_but_not_kept(
        tmp_path: Path) -> None:
    """Epoch 0: a participant that misses the end asks the coordinator the workflow id
    names, which answers from its record after any restart; nothing is owed on disk."""
    store = await Store.open(tmp_path / "data")
    try:
        for answer in (None, peer_pb2.Ack(ok=True)):
            agent = _Agent(store, "p1", answer=answer)
            active = Active(row=_row(f"p1.{answer is None}", "p1", epoch=0))
            await store.save_workflow(active.row)
            assert await Outcomes(agent, {}).end(active, Cancelled("by hand"))
            written = store.statements  # the end's write
            await agent.settled()
            assert sorted(s[0] for s in agent.sent) == ["p2", "p3"]
            assert await _owed(store) == []
            assert store.statements == written  # no row to delete once answered
    finally:
        await store.close()


async def test_a_restarted_successor_tells_every_domain_owed_the_original_coordinator_too(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        before = _Agent(store, "p1", answer=None)
        active = Active(row=_row("coord.1", "p1", epoch=1))  # taken over from coord
        await store.save_workflow(active.row)
        assert await Outcomes(before, {}).end(active, Cancelled("by hand"))
        await before.settled()
        assert [d for _, d, _ in await _owed(store)] == ["coord", "p2", "p3"]
    finally:
        await store.close()

    store = await Store.open(tmp_path / "data")  # the restart
    try:
        after = _Agent(store, "p1", answer=peer_pb2.Ack(ok=True))
        after.now_ms = lambda: NOW_MS + 3_600_000  # an hour later: patience left
        assert await Outcomes(after, {}).resend_owed() == 3
        await after.settled()
        cancelled = status_pb2.WORKFLOW_STATE_CANCELLED
        assert sorted(after.sent) == [
            (d, "CancelWorkflow", "coord.1", 1, cancelled, END_NOTICE_PATIENCE_S - 3600)
            for d in ("coord", "p2", "p3")]
        assert await _owed(store) == []
    finally:
        await store.close()


async def test_a_notice_whose_workflow_is_gone_or_patience_spent_is_owed_no_more(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        for workflow_id, state in (("p1.ended", "SUCCEEDED"), ("p1.old", "SUCCEEDED"),
                                   ("p1.running", "RUNNING")):
            row = _row(workflow_id, "p1", epoch=0)
            row.state = state
            await store.save_workflow(row)
        late = NOW_MS - int(END_NOTICE_PATIENCE_S * 1000) - 1
        await store.apply([*end_notices.owed_statements("p1.ended", ["p2"], NOW_MS),
                           *end_notices.owed_statements("p1.old", ["p2"], late),
                           *end_notices.owed_statements("p1.running", ["p2"], NOW_MS),
                           *end_notices.owed_statements("p1.gone", ["p2"], NOW_MS)])
        agent = _Agent(store, "p1", answer=None)
        assert await Outcomes(agent, {}).resend_owed() == 1
        await agent.settled()
        assert [s[2] for s in agent.sent] == ["p1.ended"]
        assert await _owed(store) == [("p1.ended", "p2", NOW_MS)]  # still unanswered
    finally:
        await store.close()


async def test_retention_removes_the_notices_with_their_workflow_and_any_left_over(
        tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        for workflow_id in ("w.ended", "w.kept"):
            row = _row(workflow_id, "p1", epoch=0)
            row.state = "SUCCEEDED"
            await store.save_workflow(row)
        await store.apply([*end_notices.owed_statements("w.ended", ["p2", "p3"], NOW_MS),
                           *end_notices.owed_statements("w.kept", ["p2"], NOW_MS),
                           *end_notices.owed_statements("w.orphan", ["p2"], NOW_MS)])
        removed = await compaction.compact(store, ["w.ended"], TERMINAL_NAMES)
        assert removed == {"workflows": 1, "end_notices": 2}
        assert [w for w, _, _ in await _owed(store)] == ["w.kept", "w.orphan"]
        found, _ = await compaction.leftovers(store, limit=10)
        assert [f.workflow_id for f in found] == ["w.orphan"]
        assert await compaction.compact_leftovers(store, ["w.orphan"]) == {"end_notices": 1}
        assert [w for w, _, _ in await _owed(store)] == ["w.kept"]
    finally:
        await store.close()


async def test_a_domain_a_step_was_taken_from_is_told_the_end_too(tmp_path: Path) -> None:
    """p0 ran step a, was lost (DEAD or LEFT) and a was placed again on p1: the final
    placement no longer names p0, yet p0, back some day, must learn the end (its own
    record of the workflow would stay RUNNING for ever)."""
    from fedorch.core.workflow.progress import Progress
    from fedorch.gen.fedorch.v1 import spec_pb2

    store = await Store.open(tmp_path / "data")
    try:
        agent = _Agent(store, "c0", answer=peer_pb2.Ack(ok=True))
        steps = [spec_pb2.StepSpec(id=s, capability="cap", idempotent=True) for s in "abc"]
        spec = spec_pb2.WorkflowSpec(name="w", steps=steps)
        progress = Progress(spec, {"a": "p0", "b": "p2", "c": "p3"}, "c0")
        assert progress.domain_lost("p0", can_replace=True)
        assert progress.placed_again("a", "p1", 2, lost="p0")
        row = _row("c0.1", "c0", epoch=0)
        row.placement = {"a": "p1", "b": "p2", "c": "p3"}  # the placement after the loss
        active = Active(row=row, progress=progress)
        await store.save_workflow(active.row)
        assert await Outcomes(agent, {}).end(active, Cancelled("by hand"), told="p3")
        await agent.settled()
        assert sorted(s[0] for s in agent.sent) == ["p0", "p1", "p2"]
    finally:
        await store.close()
