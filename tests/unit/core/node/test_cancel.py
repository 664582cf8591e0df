"""The Node's cancel part (core/node/cancel.py): a cancel while the workflow negotiates,
while a COMMIT is being decided, while it runs, after it ended; durable before what it
causes, carried out again after a crash between its write and its effects; with
coordinator takeover, a running workflow's CANCELLED end told first, taken by a
successor in its epoch, found by a later claimant, void (and noted) once a later epoch
overtakes it; and the request ids kept with the workflow's row, bounded."""

from __future__ import annotations

import random

from fedorch.core.negotiation.messages import Accepted, Decision
from fedorch.core.negotiation.rounds import Phase
from fedorch.core.node import (
    Cancel,
    MemberState,
    MemberViews,
    Message,
    Node,
    StepEnded,
    Submit,
    Tick,
)
from fedorch.core.node.cancel import REQUESTS_KEPT, holder_elsewhere, refusal
from fedorch.core.node.ready import Ready, apply
from fedorch.core.node.records import ClaimMsg, FinalMsg, Timing, VoteMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness
from tests.unit.core.node.test_domain_loss import WF as TWF
from tests.unit.core.node.test_domain_loss import Federation as TakeoverFed
from tests.unit.core.node.test_domain_loss import (
    committed,
    dies,
    result,
    step,
    successor_acting,
)
from tests.unit.core.node.test_takeover import won

NAMES = ["d0", "d1", "d2"]
WF = "d0.w1"
NOW = 100.0


class Federation(Harness):
    """Three Nodes and an in-order network; each Ready done as a driver does it."""

    def __init__(self) -> None:
        super().__init__(NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 2, "b": 2}, timing=Timing(max_rounds=1), peers=NAMES,
                    rng=random.Random(NAMES.index(name)), disk=self.disks[name], now=NOW)

    def step(self, name: str, *inputs: object, crash_after: int | None = None) -> Ready:
        if crash_after is None:
            return super().step(name, *inputs)
        node = self.nodes[name]
        for event in inputs:
            node.step(self.now, event)
        ready = node.ready()
        for w in ready.writes[:crash_after]:  # the driver dies after that many groups
            apply(self.disks[name], w.ops)
        self.restore(name)
        return ready

    def end_one_step(self, ok: bool = True) -> bool:
        for name, runs in self.running.items():
            if runs:
                wf, step, attempt = sorted(runs)[0]
                runs.discard((wf, step, attempt))
                self.step(name, StepEnded(wf, step, attempt, ok, {}, ""))
                return True
        return False


def submit(f: Federation, request_id: str = "") -> None:
    """d0 coordinates a workflow of a step on each of d0, d1, d2 (placed so)."""
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id=f"s{i}", capability="a") for i in range(3)])
    f.step("d0", Submit(WF, spec, placement={f"s{i}": n for i, n in enumerate(NAMES)},
                        request_id=request_id))


def row(f: Federation):
    return f.disks["d0"].rows[WF]


def test_a_cancel_while_negotiating_aborts_the_round_and_ends_cancelled():
    f = Federation()
    submit(f)
    f.deliver(keep=lambda src, dst, msg: isinstance(msg, VoteMsg))  # votes held
    assert row(f).state is WorkflowState.NEGOTIATING
    assert f.nodes["d0"].coordinators[WF].phase is Phase.PREPARING
    f.step("d0", Cancel(WF, "changed my mind"))
    assert row(f).state is WorkflowState.CANCELLED
    assert row(f).reason == "cancelled: changed my mind"
    assert f.disks["d0"].cancels[WF] == "changed my mind"
    assert f.points["d0"].index("cancel") < f.points["d0"].index("Finished")
    f.deliver()
    for name in NAMES:  # every reservation released, nothing started anywhere
        assert not f.nodes[name].participant.keys_of(WF)
        assert not f.disks[name].holds
    assert f.started == []


def test_a_cancel_while_running_stops_the_steps_everywhere_and_tells_the_participants():
    f = Federation()
    submit(f)
    f.deliver()
    assert row(f).state is WorkflowState.RUNNING
    assert {n for n, _ in f.started} == set(NAMES)
    f.step("d0", Cancel(WF))
    assert row(f).state is WorkflowState.CANCELLED and row(f).committed
    assert ("d0", (WF, "s0", 1)) in f.stopped  # the coordinator's own attempt
    told = [(dst, m) for src, dst, m in f.net if isinstance(m, FinalMsg)]
    assert sorted(dst for dst, _ in told) == ["d1", "d2"]
    assert all(m.state is WorkflowState.CANCELLED for _, m in told)
    f.deliver()
    for i, name in enumerate(NAMES):
        assert f.disks[name].final[WF] is WorkflowState.CANCELLED
        assert f.running[name] == set()  # every attempt stopped
        assert not f.disks[name].holds  # every reservation released
        # kept as its result: a status shows the attempt CANCELLED, not PENDING
        assert f.disks[name].results[WF][f"s{i}"][1] is StepState.CANCELLED
    assert len(f.started) == 3  # and none started after the cancel


def test_the_end_notice_of_a_cancel_leaves_only_after_the_cancel_is_written():
    f = Federation()
    submit(f)
    f.deliver()
    node = f.nodes["d0"]
    node.step(NOW, Cancel(WF))
    ready = node.ready()
    assert [o.msg for o in ready.send_now if isinstance(o.msg, FinalMsg)] == []
    assert any(isinstance(o.msg, FinalMsg) for o in ready.send_after_write)
    assert ready.writes[0].point == "cancel"
    node.advance(ready)


def test_a_cancel_of_an_ended_workflow_is_refused_and_changes_nothing():
    f = Federation()
    submit(f)
    f.deliver()
    while f.end_one_step():
        f.deliver()
    assert row(f).state is WorkflowState.SUCCEEDED
    before = dict(f.disks["d0"].rows), dict(f.disks["d0"].cancels)
    node = f.nodes["d0"]
    assert refusal(node, WF) == f"{WF} already ended SUCCEEDED: nothing to cancel"
    node.step(NOW, Cancel(WF))
    ready = node.ready()
    assert all(not w.ops for w in ready.writes) and not ready.send_after_write
    assert ("cancel_refused", WF, refusal(node, WF)) in [n for w in ready.writes
                                                         for n in w.notes]
    node.advance(ready)
    assert (dict(f.disks["d0"].rows), dict(f.disks["d0"].cancels)) == before
    assert f.nodes["d1"].state.final[WF] is WorkflowState.SUCCEEDED


def test_a_cancel_elsewhere_than_at_the_coordinator_is_refused():
    f = Federation()
    submit(f)
    f.deliver()
    assert refusal(f.nodes["d1"], WF) == f"{WF} is not coordinated here"
    f.step("d1", Cancel(WF))
    assert f.disks["d1"].final.get(WF) is None and not f.disks["d1"].cancels
    assert f.running["d1"]


def test_a_cancel_written_before_a_crash_is_carried_out_by_the_restore():
    f = Federation()
    submit(f)
    f.deliver()
    f.step("d0", Cancel(WF), crash_after=1)  # only the "cancel" group is on disk
    assert row(f).state is WorkflowState.CANCELLED
    assert f.disks["d0"].final[WF] is WorkflowState.CANCELLED
    f.deliver()
    assert all(f.disks[n].final[WF] is WorkflowState.CANCELLED for n in NAMES)
    assert f.running["d1"] == f.running["d2"] == set()


def test_a_cancel_while_a_commit_is_decided_waits_then_ends_it_before_any_step_here():
    f = Federation()
    submit(f)
    # Votes come in; the Accepts and their answers are held: the round is DECIDING.
    f.deliver(keep=lambda src, dst, msg: not isinstance(msg, VoteMsg)
                  and type(msg).__name__ not in ("PrepareMsg",))
    core = f.nodes["d0"].coordinators[WF]
    assert core.phase is Phase.DECIDING
    f.step("d0", Cancel(WF))
    assert row(f).state is WorkflowState.NEGOTIATING  # a COMMIT proposed: it waits
    assert WF in f.disks["d0"].cancels
    f.deliver()
    assert row(f).state is WorkflowState.CANCELLED and row(f).committed
    assert [n for n, _ in f.started if n == "d0"] == []  # nothing started at d0
    assert all(f.disks[n].final.get(WF) in (None, WorkflowState.CANCELLED) for n in NAMES)
    assert not any(f.running[n] for n in NAMES)


def test_a_request_id_is_kept_with_the_row_and_a_retry_makes_nothing_new():
    f = Federation()
    submit(f, request_id="req-1")
    assert f.disks["d0"].requests["req-1"][0] == WF
    assert f.points["d0"][0] == "workflow row"  # in the row's own write group
    f.nodes["d0"] = f.make_node("d0")  # a restart: read back from the disk
    assert f.nodes["d0"].state.requests["req-1"][0] == WF
    rows = len(f.disks["d0"].rows)
    spec = spec_pb2.WorkflowSpec(name="w2", steps=[spec_pb2.StepSpec(id="s0", capability="a")])
    f.step("d0", Submit("d0.w2", spec, request_id="req-1"))
    assert len(f.disks["d0"].rows) == rows and "d0.w2" not in f.disks["d0"].rows


def test_request_ids_are_bounded_oldest_first():
    node = Federation().nodes["d0"]
    node.now = NOW
    for i in range(REQUESTS_KEPT + 2):
        node.cancels.record_request(f"r{i}", f"d0.w{i}")
    requests = node.state.requests
    assert len(requests) == REQUESTS_KEPT
    assert "r0" not in requests and "r1" not in requests
    assert f"r{REQUESTS_KEPT + 1}" in requests


def test_request_ids_older_than_the_window_go():
    node = Federation().nodes["d0"]
    node.now = NOW
    node.cancels.record_request("old", "d0.w0")
    node.now = NOW + 3_601.0
    node.cancels.record_request("new", "d0.w1")
    assert list(node.state.requests) == ["new"]


def test_a_cancel_that_waited_beats_the_outcome_of_results_that_came_first():
    """The participants learn the COMMIT from the acceptors and finish their steps; the
    coordinator, its cancel waiting, hears their results before the round's end: the
    workflow ends CANCELLED, not SUCCEEDED."""
    f = Federation()
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id=f"s{i}", capability="a") for i in (1, 2)])
    f.step("d0", Submit(WF, spec, placement={"s1": "d1", "s2": "d2"}))
    f.deliver(keep=lambda src, dst, msg: not isinstance(msg, VoteMsg)
                  and type(msg).__name__ != "PrepareMsg")
    assert f.nodes["d0"].coordinators[WF].phase is Phase.DECIDING
    f.step("d0", Cancel(WF))
    to_d0 = lambda src, dst, msg: dst == "d0" and src != "d0"  # noqa: E731
    f.deliver(keep=to_d0)
    while f.end_one_step():
        f.deliver(keep=to_d0)
    assert {n for n, _ in f.started} == {"d1", "d2"}
    f.net.sort(key=lambda m: type(m[2]).__name__ != "ResultMsg")  # results first
    f.deliver()
    assert row(f).state is WorkflowState.CANCELLED
    assert all(f.disks[n].final[WF] is WorkflowState.CANCELLED for n in ("d1", "d2"))


# ---- with coordinator takeover composed (as the node engine runs it) ---------------------
# test_domain_loss.py's federation: four Nodes, takeover on, attempts end when told.


def _taken(fed: TakeoverFed, name: str, reason: str = "by request") -> Ready:
    ready = fed.step(name, Cancel(TWF, reason))
    assert refusal(fed.nodes[name], TWF) is None or TWF in fed.disks[name].cancels
    return ready


def _three() -> TakeoverFed:
    return committed([step("s0"), step("s1"), step("s2")],
                     {"s0": "d0", "s1": "d1", "s2": "d2"})


def test_with_takeover_a_running_workflows_cancel_is_told_first_then_made_everywhere():
    fed = _three()
    assert refusal(fed.nodes["d0"], TWF) is None
    ready = _taken(fed, "d0", "changed my mind")
    assert [w.point for w in ready.writes][:2] == ["cancel", "end told"]
    told = [(o.to, o.msg) for o in ready.send_after_write if isinstance(o.msg, FinalMsg)]
    assert sorted(to for to, _ in told) == ["d1", "d2"]
    assert all(m.state is WorkflowState.CANCELLED and m.epoch == 0 for _, m in told)
    assert not any(isinstance(o.msg, FinalMsg) for o in ready.send_now)
    d0 = fed.disks["d0"]
    assert TWF not in d0.final and d0.rows[TWF].state is WorkflowState.RUNNING  # told only
    assert fed.nodes["d0"].cancels.holds_back(TWF)
    fed.deliver()
    assert d0.rows[TWF].state is WorkflowState.CANCELLED
    assert d0.rows[TWF].reason == "cancelled: changed my mind"
    for name in ("d0", "d1", "d2"):
        assert fed.disks[name].final[TWF] is WorkflowState.CANCELLED
        assert fed.running[name] == set()  # every attempt stopped
        assert not fed.disks[name].holds
    assert len(fed.started) == 3  # none started after the cancel


def test_a_cancel_told_first_is_found_by_a_successor_elected_before_it_was_made():
    """d0 tells the CANCELLED end; only d1 hears it (and ends the workflow there); d0
    dies before d1's acknowledgement reaches it. d2 claims epoch 1: d1 answers with the
    end, and d2 announces CANCELLED, never an end of its own on results."""
    fed = _three()
    fed.end("d2", "s2")
    _taken(fed, "d0")
    fed.deliver(keep=lambda src, dst, msg: src == "d0" and dst == "d2" or dst == "d0")
    assert fed.disks["d1"].final[TWF] is WorkflowState.CANCELLED
    fed.net.clear()  # d0 dies with what it had not yet heard
    dies(fed, "d0")
    fed.run_until(fed.now + 60.0)  # d2's claim, once d1 (ended) does not claim
    assert fed.disks["d2"].final[TWF] is WorkflowState.CANCELLED
    assert fed.disks["d2"].epochs[TWF] == (1, "d2")
    assert TWF not in fed.disks["d0"].final  # never made there: it died holding it


def test_a_successor_takes_a_cancel_in_its_epoch_and_tells_it_with_its_certificate():
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    successor_acting(fed)
    assert TWF not in fed.disks["d1"].final  # nothing of it was on d0: it runs on
    fed.net.clear()
    assert refusal(fed.nodes["d2"], TWF) == \
        f"{TWF} was taken over by d1 (coordinator epoch 1): cancel it there"
    assert holder_elsewhere(fed.nodes["d2"], TWF) == (1, "d1")
    ready = _taken(fed, "d1", "not needed")
    assert TWF in fed.disks["d1"].cancels and TWF not in fed.disks["d1"].final
    told = [(o.to, o.msg) for o in ready.send_after_write if isinstance(o.msg, FinalMsg)]
    assert {to for to, _ in told} == {"d0", "d2"}  # the original too, as a successor tells
    assert all(m.state is WorkflowState.CANCELLED and m.epoch == 1 and m.won
               for _, m in told)
    fed.deliver()
    for name in ("d1", "d2"):
        assert fed.disks[name].final[TWF] is WorkflowState.CANCELLED
        assert fed.running[name] == set()
    assert fed.nodes["d1"].stats["cancel ended a running workflow"] == 1


def test_a_cancel_overtaken_by_a_later_epoch_is_void_and_names_its_holder():
    """d0 takes the cancel, but its notices never arrive: d0 stalls, the others see it
    DEAD and d1 wins epoch 1. Back, d0 learns epoch 1: its told end is void, noted with
    the holder (the caller is answered that, and cancels there), its attempts held back
    no more; d1 then takes the cancel and the workflow ends CANCELLED everywhere."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    _taken(fed, "d0")
    fed.net.clear()  # d0's end notices lost: it stalls
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(TWF, 1): "d1"}
    fed.silent.discard("d0")
    notes: list[tuple] = []
    fed.note = lambda name, what, facts: notes.append((name, what, *facts))  # type: ignore
    fed.step("d0", Message("d1", ClaimMsg(TWF, 1, won=won(fed))))
    fed.step("d0", Tick())
    assert ("d0", "cancel_void", TWF, 1, "d1") in notes
    d0 = fed.nodes["d0"]
    assert not d0.cancels.holds_back(TWF) and not d0.domain_loss.holds(TWF)
    assert not [k for k in d0.pending if k[0] == "final"]  # told no more
    assert holder_elsewhere(d0, TWF) == (1, "d1")
    _taken(fed, "d1")
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    for name in ("d0", "d1", "d2"):
        assert fed.disks[name].final[TWF] is WorkflowState.CANCELLED, name


def test_a_cancel_is_refused_while_another_end_is_told():
    fed = _three()
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    run = next(iter(fed.running["d0"]))
    fed.step("d0", StepEnded(*run, ok=True))  # SUCCEEDED, told first, not made
    assert TWF not in fed.disks["d0"].final
    why = refusal(fed.nodes["d0"], TWF)
    assert why == (f"{TWF} is ending SUCCEEDED (that end is told to its participants"
                   " already): nothing to cancel")
    fed.step("d0", Cancel(TWF))
    assert TWF not in fed.disks["d0"].cancels
    fed.deliver()
    assert all(fed.disks[n].final[TWF] is WorkflowState.SUCCEEDED for n in ("d0", "d1", "d2"))


def test_a_cancel_told_first_stays_cancelled_through_a_verdict_and_a_restart():
    """The cancel's end told, unacknowledged; d2 dies (its step's verdict, FAILED, goes on
    record); d0 restarts: the end it tells again is CANCELLED, not the verdict's."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    _taken(fed, "d0")
    fed.net.clear()
    fed.silent.add("d2")
    fed.running["d2"] = set()
    fed.step("d0", MemberState("d2", "DEAD"))
    fed.net.clear()
    assert "domain d2 was lost" in result(fed, "d0", "s2")[3]
    fed.restore("d0")
    fed.step("d0", MemberViews(tuple(MemberState(m, "DEAD" if m == "d2" else "ALIVE")
                                     for m in ("d1", "d2", "d3"))))
    fed.deliver()
    assert fed.nodes["d0"].domain_loss.held == {}
    for name in ("d0", "d1"):
        assert fed.disks[name].final[TWF] is WorkflowState.CANCELLED, name


def test_a_cancel_is_void_the_moment_its_taker_follows_a_later_epoch():
    """As above, but the void is noted in the very step in which d0 grants d1's epoch,
    before any later look (a Tick): an attempt d0 starts next as d1's follower is never
    one started under the cancel (takeover soak seed 1701568)."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    _taken(fed, "d0")
    fed.net.clear()
    fed.goes_silent_and_dead("d0")
    fed.silent.discard("d0")
    notes: list[tuple] = []
    fed.note = lambda name, what, facts: notes.append((name, what, *facts))  # type: ignore
    fed.step("d0", Message("d1", ClaimMsg(TWF, 1, won=won(fed))))
    assert ("d0", "cancel_void", TWF, 1, "d1") in notes
    assert not fed.nodes["d0"].domain_loss.holds(TWF)


def test_a_step_held_back_by_a_cancel_starts_once_the_cancel_is_void():
    """d0 tells the CANCELLED end (its notices lost); s1 SUCCEEDS at d1 meanwhile, which
    makes d0's own step s0 ready, held back by the cancel. d0 stalls, d1 wins epoch 1,
    and d0, back, grants it: the cancel is void, and s0 starts as d1's follower in that
    very step. Before, nothing made s0 ready again and d1 waited for its result for ever
    (takeover soak seed 52000180)."""
    fed = committed([step("s1"), step("s0", needs=("s1",))], {"s1": "d1", "s0": "d0"})
    _taken(fed, "d0")
    fed.net.clear()  # d0's end notices lost, and all it sends until it stalls
    fed.step("d1", StepEnded(*sorted(fed.running["d1"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: src == "d0")
    fed.net.clear()
    assert fed.disks["d0"].results[TWF]["s1"][1] is StepState.SUCCEEDED
    assert not fed.running["d0"]  # s0 ready, held back by the cancel
    fed.goes_silent_and_dead("d0")
    fed.silent.discard("d0")
    notes: list[tuple] = []
    fed.note = lambda name, what, facts: notes.append((name, what, *facts))  # type: ignore
    fed.step("d0", Message("d1", ClaimMsg(TWF, 1, won=won(fed))))
    at_d0 = [n[1] for n in notes if n[0] == "d0"]
    assert "step_started" in at_d0, at_d0
    assert "cancel_void" in at_d0[:at_d0.index("step_started")], at_d0
    assert [run[:2] for run in fed.running["d0"]] == [(TWF, "s0")]


def test_a_cancel_beaten_by_a_later_epochs_end_made_before_it_came_is_void():
    """d0 stalls (DEAD in every view); d1 takes over, ends the workflow SUCCEEDED on
    results with d2, and dies for good. d0, back and unaware, takes a cancel and tells
    CANCELLED in epoch 0: d2 answers with epoch 1's end and its certificate, and d0
    makes that end (SUCCEEDED, one end everywhere). The cancel it took is noted void:
    its caller is answered that the workflow ended otherwise (the scenario of takeover
    soak seed 4401924, where the original then claimed an epoch of its own before its
    next look; the test below holds that case)."""
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d2", "s2")
    fed.goes_silent_and_dead("d0")
    fed.end("d1", "s1")
    assert fed.disks["d2"].final[TWF] is WorkflowState.SUCCEEDED
    dies(fed, "d1", told=("d2", "d3"))
    fed.silent.discard("d0")
    fed.net.clear()
    fed.restore("d0")
    fed.step("d0", MemberViews(tuple(MemberState(m, "ALIVE") for m in ("d1", "d2", "d3"))))
    notes: list[tuple] = []
    fed.note = lambda name, what, facts: notes.append((name, what, *facts))  # type: ignore
    _taken(fed, "d0")
    fed.step("d0", MemberState("d1", "DEAD"))  # s1's verdict: CANCELLED stays told
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].final[TWF] is WorkflowState.SUCCEEDED
    assert fed.disks["d2"].final[TWF] is WorkflowState.SUCCEEDED
    assert [n for n in notes if n[:2] == ("d0", "cancel_void")], notes


def test_a_told_cancel_whose_workflow_ended_otherwise_here_in_an_own_epoch_is_void():
    """The CANCELLED end is told; before the next look the workflow has been ended here
    otherwise, in an epoch this Node holds itself (as a claimant's Announce of a later
    epoch's end does: takeover.py, end_as_successor). The told cancel is void and noted
    so, though the end notices pending are the made end's (seed 4401924, had d0 not
    followed the later epoch first)."""
    fed = _three()
    _taken(fed, "d0")
    fed.net.clear()
    d0 = fed.nodes["d0"]
    d0.state.final[TWF] = WorkflowState.SUCCEEDED
    d0.state.epochs[TWF] = (2, "d0")
    notes: list[tuple] = []
    fed.note = lambda name, what, facts: notes.append((name, what, *facts))  # type: ignore
    fed.step("d0", Tick())
    assert [n for n in notes if n[:3] == ("d0", "cancel_void", TWF)], notes
    assert not d0.domain_loss.holds(TWF)


def _cancel_waiting_for_its_commit(steps: list, placement: dict[str, str], keep):
    """d0 submits TWF (`steps` placed by `placement`) and takes a cancel while its
    round's COMMIT is being decided, what `keep` names (of the messages to d0) held back:
    the cancel waits. The federation, and the messages held back."""
    fed = TakeoverFed()
    fed.step("d0", Submit(TWF, spec_pb2.WorkflowSpec(name="w", steps=steps),
                          placement=placement))
    fed.deliver(keep=keep)
    held = [m for m in fed.net if keep(*m)]
    fed.net = []
    assert fed.nodes["d0"].coordinators[TWF].phase is Phase.DECIDING
    _taken(fed, "d0")
    assert fed.disks["d0"].rows[TWF].state is WorkflowState.NEGOTIATING  # it waits
    return fed, held


def _accepted_or_decided_to_d0(src: str, dst: str, msg: object) -> bool:
    return dst == "d0" and isinstance(msg, (Accepted, Decision))


def test_a_cancel_waiting_for_a_commit_is_void_before_a_step_starts_under_a_later_epoch():
    """d0 took a cancel while its round's COMMIT was being decided (it waits), then
    granted d1's claim of epoch 1; the round commits at d0 only then. d0 follows d1:
    its own step s0 starts as d1's follower, and the cancel is noted void before that
    start, not after it (takeover soak seed 116571: the attempt counted as started
    under the cancel)."""
    fed, held = _cancel_waiting_for_its_commit(
        [step("s0"), step("s1"), step("s2")], {"s0": "d0", "s1": "d1", "s2": "d2"},
        _accepted_or_decided_to_d0)
    fed.step("d0", Message("d1", ClaimMsg(TWF, 1)))
    assert fed.disks["d0"].granted[TWF] == (1, "d1")
    notes: list[tuple] = []
    fed.note = lambda name, what, facts: notes.append((name, what, *facts))  # type: ignore
    for src, dst, msg in held:
        fed.step(dst, Message(src, msg))
    fed.deliver()
    at_d0 = [n[1] for n in notes if n[0] == "d0"]
    assert "step_started" in at_d0
    assert "cancel_void" in at_d0[:at_d0.index("step_started")], at_d0


def test_a_step_held_back_by_a_cancel_starts_as_it_grants_a_later_claim():
    """d0 took a cancel (its end told, every notice lost) while s1's result, which makes
    d0's own s0 ready, came: s0 is held back. d0 then grants d1's claim of epoch 1: the
    cancel is void and d0 follows d1, so s0 starts in that very step, noted after the
    void. Nothing else would start it: no result is left to come, and d1, acting, waits
    for s0's for ever (takeover soak seed 111083)."""
    fed = committed([step("s1"), step("s0", needs=("s1",))], {"s1": "d1", "s0": "d0"})
    _taken(fed, "d0")
    fed.net.clear()  # the CANCELLED notices lost
    fed.step("d1", StepEnded(TWF, "s1", 1, ok=True))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, FinalMsg))
    fed.net.clear()  # told again on the result, lost again
    assert result(fed, "d0", "s1")[1] is StepState.SUCCEEDED
    assert fed.running["d0"] == set()  # held back by the cancel told
    notes: list[tuple] = []
    fed.note = lambda name, what, facts: notes.append((name, what, *facts))  # type: ignore
    fed.step("d0", Message("d1", ClaimMsg(TWF, 1)))
    assert fed.disks["d0"].epochs[TWF] == (1, "d1")
    assert [r[1] for r in fed.running["d0"]] == ["s0"]
    at_d0 = [n[1] for n in notes if n[0] == "d0"]
    assert "cancel_void" in at_d0[:at_d0.index("step_started")], at_d0


def test_a_cancel_waiting_for_a_commit_is_void_when_a_later_epochs_end_comes_first():
    """d0 took a cancel while its round's COMMIT was being decided (it waits); d1 and d2,
    their view saying d0 DEAD, recover the COMMIT without it, and d1 claims epoch 1,
    which d0 grants. d1, acting, fails d0's own step (its domain lost) and tells the end
    FAILED in epoch 1, which reaches d0 before the round's decision does: d0's row ends
    FAILED as d1 ended it, and the cancel, lost to that end, is noted void, naming d1
    (takeover soak seed 69500487: the cancel stood, never noted void, against a
    workflow ended FAILED everywhere)."""
    to_d0 = _accepted_or_decided_to_d0
    fed, _ = _cancel_waiting_for_its_commit(  # the round's decision never reaches d0
        [step("s0"), step("s1"), step("s2")], {"s0": "d0", "s1": "d1", "s2": "d2"}, to_d0)
    notes: list[tuple] = []
    noted = fed.note  # the federation's own (it counts who acts)
    fed.note = lambda name, what, facts: (  # type: ignore
        notes.append((name, what, *facts)), noted(name, what, facts))
    for n in ("d1", "d2"):
        fed.step(n, MemberState("d0", "DEAD"))  # d0 is not: only their views say so
    fed.deliver(keep=to_d0)
    fed.net = []
    fed.now += 0.5
    for n in ("d0", "d1", "d2", "d3"):
        fed.step(n, Tick())  # in doubt, d0 gone: recovered at once (a COMMIT accepted)
    fed.deliver(keep=to_d0)
    assert fed.evidence.acting == {(TWF, 1): "d1"}
    assert fed.disks["d0"].granted[TWF] == (1, "d1")
    assert TWF not in fed.nodes["d0"].progress  # the decision never came
    for n in ("d0", "d1", "d2"):
        assert fed.disks[n].final[TWF] is WorkflowState.FAILED, n
    assert fed.disks["d0"].rows[TWF].state is WorkflowState.FAILED
    assert ("d0", "cancel_void", TWF, 1, "d1") in notes, notes


def test_a_cancel_waiting_for_a_commit_beaten_by_a_later_epochs_end_is_void():
    """d0 took a cancel while its round's COMMIT was being decided (it waits; what
    would decide it at d0 is held back) and went silent; d1 took the workflow over in
    epoch 1 and ended it SUCCEEDED. d0, back, grants d1's claim, takes that end and
    only then learns the COMMIT: the cancel lost to the end made in epoch 1 and is
    noted void, its caller answered that the workflow ended otherwise (takeover soak
    seed 66000289: noted nowhere, the cancel stood at d0 next to its SUCCEEDED end)."""
    def to_d0(src: str, dst: str, msg: object) -> bool:
        return dst == "d0" != src and isinstance(msg, (Accepted, Decision))

    fed, held = _cancel_waiting_for_its_commit(
        [step("s1"), step("s2")], {"s1": "d1", "s2": "d2"}, to_d0)
    fed.goes_silent_and_dead("d0")
    fed.run_until(fed.now + 5.0)
    assert fed.evidence.acting == {(TWF, 1): "d1"}
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    assert fed.disks["d1"].final[TWF] is WorkflowState.SUCCEEDED
    told = [m for to, m in fed.sent_by("d1", FinalMsg) if to == "d0"]
    assert told and told[-1].epoch == 1 and told[-1].won
    fed.silent.discard("d0")
    notes: list[tuple] = []
    fed.note = lambda name, what, facts: notes.append((name, what, *facts))  # type: ignore
    # Back, d0 hears d1's claim (won) and its end, and nothing else yet.
    fed.step("d0", Message("d1", ClaimMsg(TWF, 1, won=won(fed))),
             Message("d1", told[-1]))
    fed.net = []
    assert fed.disks["d0"].granted[TWF] == (1, "d1")
    assert fed.disks["d0"].final[TWF] is WorkflowState.SUCCEEDED
    assert TWF not in fed.disks["d0"].committed  # the COMMIT not learned yet
    for src, dst, msg in held:
        fed.step(dst, Message(src, msg))
    fed.deliver()
    assert TWF in fed.disks["d0"].committed
    assert fed.disks["d0"].final[TWF] is WorkflowState.SUCCEEDED
    assert [n for n in notes if n[:3] == ("d0", "cancel_void", TWF)], notes


def test_a_cancel_in_the_turn_that_starts_a_step_leaves_no_start_behind():
    """The acceptors' answers that choose the COMMIT reach the coordinator and a Cancel
    comes in the same driver turn: the COMMIT starts d0's step, the Cancel then ends the
    workflow and drops its progress. The start queued before the end must not leave
    with the Ready: the daemon's executor port found no step to run and stopped the
    agent ("attempt ... of a step the Node does not run")."""
    f = Federation()
    submit(f)

    def answer(src, dst, msg) -> bool:
        return dst == "d0" and src != "d0" and isinstance(msg, Accepted)
    f.deliver(keep=answer)
    held = [(src, msg) for src, dst, msg in f.net if answer(src, dst, msg)]
    assert held and [n for n, _ in f.started if n == "d0"] == []  # not started yet
    f.net[:] = [m for m in f.net if not answer(*m)]
    node = f.nodes["d0"]
    ready = f.step("d0", *(Message(src, msg) for src, msg in held), Cancel(WF))
    assert row(f).state is WorkflowState.CANCELLED
    assert WF not in node.progress
    assert [run for run in ready.start_steps if run[0] == WF] == []
    assert [n for n, _ in f.started if n == "d0"] == []  # nothing ever started at d0
