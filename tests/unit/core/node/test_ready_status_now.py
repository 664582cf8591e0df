"""A coordinator's RUNNING told once Paxos Commit's acceptors chose its COMMIT, before its
own decision record is durable (core/node/ready.py `chosen`, coordinator_records.py);
classic 2PC's RUNNING only after that record. d0 coordinates; the steps are on d1 and
d2; every Node is an acceptor of the round."""

from __future__ import annotations

from fedorch.core.node import Submit
from fedorch.core.node.ready import Ready
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_negotiation_classic import Federation as ClassicFederation
from tests.unit.core.node.test_negotiation_classic import no_step_ends
from tests.unit.core.node.test_takeover import Federation as PaxosFederation

WF = "d0.w"
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[
    spec_pb2.StepSpec(id="s1", capability="a"),
    spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])
RUNNING = (WF, WorkflowState.RUNNING)


class Watched:
    """What d0 did with its Readies: the majority of the round's acceptors whose disks
    held an accepted COMMIT when each Ready was handed out; a crash armed for the
    Ready that tells RUNNING before its write (its writes never applied)."""

    crash_when_told = False

    def flush(self, name: str) -> Ready:
        if name != "d0":
            return super().flush(name)  # type: ignore[misc]
        node = self.nodes["d0"]  # type: ignore[attr-defined]
        ready = node.ready()
        if RUNNING in ready.status_now:
            self.told_at.append(self.commit_accepted_at())
            if self.crash_when_told:
                self.crash_when_told = False
                self.silent.add("d0")  # type: ignore[attr-defined]
                self.crashed_with = ready
                return ready  # nothing applied, sent or advanced: lost with the process
        return super().flush(name)  # type: ignore[misc]  # ready() hands out the same again

    def commit_accepted_at(self) -> list[str]:
        """The Nodes whose disks hold an accepted COMMIT of the workflow's round."""
        return sorted(n for n, disk in self.disks.items()  # type: ignore[attr-defined]
                      for key, rec in disk.acceptor.items()
                      if key[0] == WF and rec.accepted_value is not None
                      and rec.accepted_value.commit)


class Paxos(Watched, PaxosFederation):
    steps_end_at_once = False

    def __init__(self) -> None:
        self.told_at: list[list[str]] = []
        self.crashed_with: Ready | None = None
        super().__init__()


class Classic(Watched, ClassicFederation):
    def __init__(self) -> None:
        self.told_at: list[list[str]] = []
        self.crashed_with: Ready | None = None
        super().__init__()


def d0_states(fed: PaxosFederation) -> list[object]:
    return [state for r in fed.readies["d0"] for wf, state in r.status_changes if wf == WF]


def committed_paxos(fed: Paxos) -> None:
    fed.step("d0", Submit(WF, SPEC, placement={"s1": "d1", "s2": "d2"}))
    no_step_ends(fed)


def test_paxos_commit_tells_running_before_the_decision_record_once_chosen() -> None:
    fed = Paxos()
    committed_paxos(fed)
    [told] = [r for r in fed.readies["d0"] if RUNNING in r.status_changes]
    assert told.status_now == (RUNNING,)
    # Told in the turn that writes the decision record, so before it is durable ...
    assert "PersistDecision" in [w.point for w in told.writes]
    # ... but only once a majority of the round's acceptors hold the COMMIT on disk.
    acceptors = fed.disks["d0"].rows[WF].acceptors
    [at] = fed.told_at
    assert len(at) > len(acceptors) // 2 and set(at) <= set(acceptors)
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING


def test_classic_2pc_tells_running_only_after_its_decision_record() -> None:
    fed = Classic()
    fed.step("d0", Submit(WF, SPEC, placement={"s1": "d1", "s2": "d2"}))
    no_step_ends(fed)
    [told] = [r for r in fed.readies["d0"] if RUNNING in r.status_changes]
    assert told.status_now == ()
    assert "PersistDecision" in [w.point for w in told.writes]
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING


def test_a_coordinator_crashed_before_its_decision_record_shows_negotiating_then_running() -> None:
    fed = Paxos()
    fed.crash_when_told = True
    committed_paxos(fed)
    assert fed.crashed_with is not None and fed.crashed_with.status_now == (RUNNING,)
    # What d0's disk holds: its proposal and its own acceptor's COMMIT, no decision.
    row = fed.disks["d0"].rows[WF]
    assert row.state is WorkflowState.NEGOTIATING and not row.committed
    fed.silent.discard("d0")
    node = fed.restore("d0")
    # The restored coordinator shows NEGOTIATING (not ABORTED) until its ballot learns
    # the COMMIT from the acceptors; then RUNNING, told again before its write.
    assert node.state.rows[WF].state is WorkflowState.NEGOTIATING
    no_step_ends(fed)
    assert node.state.rows[WF].state is WorkflowState.RUNNING
    assert fed.disks["d0"].rows[WF].committed
    assert d0_states(fed) == [WorkflowState.NEGOTIATING, WorkflowState.RUNNING]
    assert fed.readies["d0"][-1] is not fed.crashed_with
    assert [RUNNING in r.status_now for r in fed.readies["d0"]].count(True) == 1
    for name in ("d1", "d2"):
        assert WF in fed.disks[name].committed


def test_the_outbox_keeps_which_changes_are_told_now_across_an_advance() -> None:
    from fedorch.core.node.ready import Outbox

    out = Outbox()
    out.status.append(("a", WorkflowState.NEGOTIATING))
    out.chosen("b", WorkflowState.RUNNING)
    first = out.ready()
    assert first.status_now == (("b", WorkflowState.RUNNING),)
    out.status.append(("c", WorkflowState.ABORTED))  # made while `first` was out
    out.chosen("d", WorkflowState.RUNNING)
    out.advance(first)
    second = out.ready()
    assert second.status_changes == (("c", WorkflowState.ABORTED), ("d", WorkflowState.RUNNING))
    assert second.status_now == (("d", WorkflowState.RUNNING),)
    out.advance(second)
    assert out.ready().empty() and out.ready().status_now == ()
