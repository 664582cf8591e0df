"""A start the original coordinator confirmed, judged by a successor
(agent/core/node/start_asks.py, "The coordinator's side"; the successor's loss verdict:
agent/core/node/domain_loss_verdict.py). d0 coordinates; d2, quiet past the start margin,
asks d0 before it starts step x and is told x is still there (d0 marks it possibly
started); d2's reports of x never leave; d0 dies for good and d1, the lowest
participant, takes the workflow over in epoch 1 without that mark; then d1 judges d2
DEAD. x is not idempotent: whatever kind of start d2 was confirmed for, d1's verdict must
be FAIL_STARTED, never a second run elsewhere. Nodes driven by hand with takeover and
self-fencing on (test_start_asks.py's federation)."""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.node import MemberState, StepEnded
from fedorch.core.node.records import ResultMsg, Timing
from fedorch.core.node.start_asks import CONFIRMED
from fedorch.core.workflow.fanout import expand_into, instance_id
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.federation import tell_starts
from tests.unit.core.node.stories import committed_in
from tests.unit.core.node.test_domain_loss import WF, step
from tests.unit.core.node.test_start_asks import Federation, runs_of


def x_reports(src: str, dst: str, msg: object) -> bool:
    """d2's reports of x (its start, its failed attempt): they never leave d2."""
    return src == "d2" and isinstance(msg, ResultMsg) and msg.step_id.startswith("x")


def confirmed_then_judged_by_a_successor(
        spec: spec_pb2.WorkflowSpec, placement: dict[str, str],
        make_x_ready: Callable[[Federation], None], *,
        before_verdict: Callable[[Federation], None] = lambda fed: None,
        held: Callable[[str, str, object], bool] = x_reports,
        federation: type[Federation] = Federation) -> Federation:
    """`spec` committed at t=0; at t=5 `make_x_ready` makes x ready on d2, which asks
    and is confirmed (a first step asks at the COMMIT: no word of d0's came before its
    moment); d0 dies, d1 takes over (`before_verdict` then looks at it), then d2 dies.
    What `held` says (d2's reports of x by default) is lost."""
    fed = committed_in(federation(), list(spec.steps), placement)
    fed.now = 5.0
    make_x_ready(fed)
    fed.deliver(keep=held)
    fed.net = [m for m in fed.net if not held(*m)]  # lost
    x = next(s for s in fed.nodes["d2"].progress[WF].steps if s.startswith("x")
             and fed.nodes["d2"].progress[WF].steps[s].domain == "d2")
    assert fed.started[-1] == ("d2", (WF, x, fed.nodes["d2"].progress[WF].steps[x].attempts))
    assert fed.nodes["d0"].progress[WF].asked_to_start[x] == {"d2"}  # the original's mark
    fed.goes_silent_and_dead("d0", keep=held)
    fed.net = [m for m in fed.net if not held(*m)]
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert x not in fed.nodes["d1"].progress[WF].asked_to_start  # no mark at the successor
    before_verdict(fed)
    fed.silent.add("d2")
    fed.running["d2"] = set()
    for n in ("d1", "d3"):
        fed.step(n, MemberState("d2", "DEAD"))
    fed.deliver()
    return fed


def assert_failed_started_never_placed_again(fed: Federation) -> None:
    assert ("d1", (WF, "x"), "d2", "FAIL_STARTED") in fed.lost, fed.lost
    _, state, _, error = fed.disks["d1"].results[WF]["x"]
    assert state is StepState.FAILED and "not idempotent" in error, error
    fed.tick(fed.now + 5.0)
    assert {node for node, _ in runs_of(fed, "x")} == {"d2"}  # never run elsewhere


def nothing(fed: Federation) -> None:
    """x started at the COMMIT."""


def ends(node: str, step_id: str, *, ok: bool = True) -> Callable[[Federation], None]:
    def end(fed: Federation) -> None:
        [run] = [r for r in fed.running[node] if r[1] == step_id]
        fed.running[node].discard(run)
        fed.step(node, StepEnded(*run, ok=ok))
    return end


def test_a_first_step_confirmed_by_the_original_fails_started_at_the_successor() -> None:
    """x needs nothing: its start at the COMMIT is held and confirmed."""
    fed = confirmed_then_judged_by_a_successor(
        spec_pb2.WorkflowSpec(name="w", steps=[step("s1"), step("x")]),
        {"s1": "d1", "x": "d2"}, nothing)
    assert runs_of(fed, "x") == [("d2", 1)]
    assert_failed_started_never_placed_again(fed)


def slow_to_d1(step_id: str) -> Callable[[str, str, object], bool]:
    """d2's reports of x are lost, and `step_id`'s result on its way to d1 (once its
    domain follows d1) is slow past the verdict."""
    def held(src: str, dst: str, msg: object) -> bool:
        return x_reports(src, dst, msg) or (
            dst == "d1" and isinstance(msg, ResultMsg) and msg.step_id == step_id)
    return held


def unknown_at_d1(step_id: str) -> Callable[[Federation], None]:
    def unknown(fed: Federation) -> None:
        assert fed.nodes["d1"].progress[WF].steps[step_id].state is not StepState.SUCCEEDED
    return unknown


def test_a_step_whose_need_ran_on_a_third_domain_fails_started_at_the_successor(
) -> None:
    """x needs s3, run on d3: its result reaches d0 and d2; d3 reports it to d1 too
    once it follows d1, slowly: d1 judges from a progress in which s3 never ended."""
    fed = confirmed_then_judged_by_a_successor(
        spec_pb2.WorkflowSpec(name="w", steps=[
            step("s1"), step("s3"), step("x", needs=("s3",))]),
        {"s1": "d1", "s3": "d3", "x": "d2"}, ends("d3", "s3"),
        before_verdict=unknown_at_d1("s3"), held=slow_to_d1("s3"))
    assert_failed_started_never_placed_again(fed)


def test_a_step_whose_need_ran_on_the_successor_fails_started_at_the_successor() -> None:
    """x needs s1, run on d1 itself: d1 holds its success, written before it left."""
    fed = confirmed_then_judged_by_a_successor(
        spec_pb2.WorkflowSpec(name="w", steps=[step("s1"), step("x", needs=("s1",))]),
        {"s1": "d1", "x": "d2"}, ends("d1", "s1"))
    assert_failed_started_never_placed_again(fed)


class OnlyD0AndD3TakeB(Federation):
    """Capability b is offered by d0 and d3 alone: s0, lost with d0, goes to d3 (after
    the others refused it: the Node's placer here knows no capabilities)."""

    timing = Timing(max_rounds=3, takeover_after_s=3.0, step_lease_s=30.0)

    def capacities_of(self, name: str) -> dict[str, int]:
        return {"a": 4, "b": 4} if name in ("d0", "d3") else {"a": 4}


def s0_running_again_on_d3(fed: Federation) -> None:
    tell_starts(fed)  # d3's start of s0 told d1 (its hold over: running_starts.py)
    s0 = fed.nodes["d1"].progress[WF].steps["s0"]
    assert (s0.domain, s0.replaced_from, s0.state) == ("d3", ["d0"], StepState.RUNNING)


def test_a_step_whose_need_ran_on_the_original_fails_started_at_the_successor() -> None:
    """x needs s0 (idempotent), run on d0 itself: its result reached d2, never d1.
    d1 sends s0 back to be placed again with d0 (d3 takes it, and runs it again), and
    still judges x possibly started when d2 is lost."""
    s0 = spec_pb2.StepSpec(id="s0", capability="b", idempotent=True)
    fed = confirmed_then_judged_by_a_successor(
        spec_pb2.WorkflowSpec(name="w", steps=[s0, step("s1"), step("x", needs=("s0",))]),
        {"s0": "d0", "s1": "d1", "x": "d2"}, ends("d0", "s0"),
        before_verdict=s0_running_again_on_d3, federation=OnlyD0AndD3TakeB)
    assert ("d1", (WF, "s0"), "d0", "REPLACE") in fed.lost
    assert_failed_started_never_placed_again(fed)


def x_unheard_at_d1(fed: Federation) -> None:
    assert fed.nodes["d1"].progress[WF].steps["x"].attempts == 0


def test_a_retry_confirmed_by_the_original_fails_started_at_the_successor() -> None:
    """x's first attempt started at the COMMIT and fails at t=5: its retry is held,
    confirmed and started; d1 never heard of either attempt."""
    x = step("x")
    x.retries = 1
    fed = confirmed_then_judged_by_a_successor(
        spec_pb2.WorkflowSpec(name="w", steps=[step("s1"), x]),
        {"s1": "d1", "x": "d2"}, ends("d2", "x", ok=False), before_verdict=x_unheard_at_d1)
    assert runs_of(fed, "x") == [("d2", 1), ("d2", 2)]
    assert_failed_started_never_placed_again(fed)


def test_a_fan_out_wave_confirmed_by_the_original_fails_started_at_the_successor(
) -> None:
    """x fans out over d3 then d2, one domain a wave: the first wave ends on d3 at t=5
    (its result slow to d1), and d2's wave is held, confirmed and started."""
    fanned = spec_pb2.StepSpec(id="x", capability="a", each=spec_pb2.Each(),
                               waves=spec_pb2.Waves(max_parallel=1))
    spec = expand_into(spec_pb2.WorkflowSpec(name="w", steps=[step("s1"), fanned]),
                       {"x": ["d3", "d2"]})
    first, second = instance_id("x", "d3"), instance_id("x", "d2")
    fed = confirmed_then_judged_by_a_successor(
        spec, {"s1": "d1", first: "d3", second: "d2"}, ends("d3", first),
        before_verdict=unknown_at_d1(first), held=slow_to_d1(first))
    assert fed.nodes["d2"].stats[CONFIRMED] == 1
    assert ("d1", (WF, second), "d2", "FAIL_STARTED") in fed.lost, fed.lost
    fed.tick(fed.now + 5.0)
    assert {node for node, run in fed.started if run[1] == second} == {"d2"}
