"""A participant cut off from its coordinator asks before it starts a step
(agent/core/node/start_asks.py): Nodes driven by hand with coordinator takeover and
self-fencing on (as the node engine composes them), d0 coordinating; step attempts end
only when a test says so (test_domain_loss.py's federation). The start margin is half
of `Timing.dead_after_s` (1.5 s): 0.75 s."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message
from fedorch.core.node.records import (
    AckMsg,
    PlacementAnswer,
    PlacementQuery,
    ResultMsg,
    Timing,
)
from fedorch.core.node.start_asks import CONFIRMED, DROPPED, HELD
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.stories import committed_in
from tests.unit.core.node.test_domain_loss import WF, step
from tests.unit.core.node.test_domain_loss import Federation as LossFederation


class Federation(LossFederation):
    timing = Timing(max_rounds=1, takeover_after_s=3.0, step_lease_s=30.0)


def committed(steps: list[spec_pb2.StepSpec], placement: dict[str, str]) -> Federation:
    """d0's workflow committed everywhere at t=0; the first attempts started."""
    return committed_in(Federation(), steps, placement)


def runs_of(fed: Federation, step_id: str) -> list[tuple[str, int]]:
    return [(node, run[2]) for node, run in fed.started if run[1] == step_id]


def s1_done() -> Message:
    """s1's SUCCEEDED result, as its domain d2 sends it to d1 (whose s2 needs it)."""
    return Message("d2", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {}, "", 0))


def chain() -> Federation:
    """s1 on d2 (running) and s2 on d1 after it, not idempotent."""
    return committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})


def held_asked_and_moved_to_d3(fed: Federation) -> None:
    """s2, placed again on d3 while d1 was cut off, runs there only: d1 held its start
    and asked d0, whose answer moved s2 to d3. Then 5 s pass (the caller checks s2
    still ran at d3 alone)."""
    assert runs_of(fed, "s2") == [("d3", 1)]
    assert fed.nodes["d1"].stats[HELD] == 1
    [(to, query)] = fed.sent_by("d1", PlacementQuery)
    assert to == "d0" and query.starting == (("s2", 0),)
    fed.deliver()
    assert fed.nodes["d1"].progress[WF].steps["s2"].domain == "d3"
    assert fed.nodes["d1"].stats[DROPPED] == 1
    fed.tick(fed.now + 5.0)


def test_a_cut_off_participant_that_gets_its_need_late_asks_and_never_runs_the_step(
) -> None:
    """d1 is cut off at 2 s; d0 sees it DEAD and, s1's result not seen there, judges s2
    not started and places it again, on d3. s1 then ends at d2; its result reaches d1
    late, at 5 s, the cut healed, d1's view of d0 still ALIVE. Without the rule d1
    started s2 as d3 does: a step that is not idempotent ran twice. With it d1 has
    heard nothing from d0 for longer than the margin, holds s2 and asks d0, whose
    answer moves s2 away: it never starts on d1."""
    fed = chain()
    fed.now = 2.0
    fed.silent.add("d1")  # cut off: nothing reaches it, nothing of its leaves
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver()
    assert fed.disks["d0"].placements[WF]["s2"][1:] == ("d3", "d1")
    fed.now = 5.0
    fed.end("d2", "s1")  # reaches d0 and d3, not d1 (cut off)
    fed.silent.discard("d1")
    fed.step("d1", s1_done())  # the late copy
    held_asked_and_moved_to_d3(fed)
    assert runs_of(fed, "s2") == [("d3", 1)]  # once, at its new domain only


def test_a_participant_in_touch_with_its_coordinator_starts_at_once_unasked() -> None:
    """The usual path: s1's result reaches d1 within the margin of the COMMIT it heard
    from d0: s2 starts in that turn, nothing asked, nothing held."""
    fed = chain()
    fed.now = 0.5
    fed.end("d2", "s1")
    assert runs_of(fed, "s2") == [("d1", 1)]
    assert not fed.sent_by("d1", PlacementQuery)
    assert fed.nodes["d1"].stats[HELD] == 0


def test_a_start_confirmed_counts_as_started_at_the_coordinator() -> None:
    """d0 has not seen s1's result (held on its way) nor s2's start (held too) when d1,
    quiet past the margin, asks and is told s2 is still there; d1 then dies. Without
    the mark d0 judged s2 not started and placed it again; with it, s2 (not idempotent)
    FAILS: never a second run."""
    fed = chain()
    fed.now = 5.0

    def late(src: str, dst: str, msg: object) -> bool:
        return isinstance(msg, ResultMsg) and dst == "d0" and msg.step_id in ("s1", "s2")

    fed.step("d1", s1_done())
    assert runs_of(fed, "s2") == []
    fed.deliver(keep=late)
    assert runs_of(fed, "s2") == [("d1", 1)]
    assert fed.nodes["d1"].stats[CONFIRMED] == 1
    assert fed.nodes["d0"].progress[WF].may_have_started("s2")
    fed.net = []  # s2's start never reaches d0
    fed.silent.add("d1")
    fed.running["d1"] = set()
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver()
    assert fed.lost == [("d0", (WF, "s2"), "d1", "FAIL_STARTED")]
    assert runs_of(fed, "s2") == [("d1", 1)]


def test_a_coordinator_never_asks_before_its_own_steps() -> None:
    """s2 on d0 itself: quiet for long, it starts at once when s1's result comes."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d0"})
    fed.now = 5.0
    fed.end("d2", "s1")
    assert runs_of(fed, "s2") == [("d0", 1)]
    assert not fed.sent_by("d0", PlacementQuery)


def test_a_held_start_is_asked_again_until_answered() -> None:
    """d0 does not answer at first (its answers lost): d1 asks again, and starts s2 once
    an answer confirms it, though its view of d0 is SUSPECT by then."""
    fed = chain()
    fed.now = 5.0
    fed.step("d1", MemberState("d0", "SUSPECT"))
    fed.step("d1", s1_done())
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PlacementAnswer))
    fed.net = []  # the first answer lost
    assert runs_of(fed, "s2") == []
    fed.run_until(fed.now + 1.0)  # asked again
    assert len(fed.sent_by("d1", PlacementQuery)) == 2
    assert runs_of(fed, "s2") == [("d1", 1)]


def test_a_message_of_the_coordinator_at_the_moment_of_the_start_is_no_contact() -> None:
    """After a long silence, a word of d0's comes in the very moment s2 is made ready
    (the late message may be d0's own, resent after the cut healed): it says nothing of
    what d0 decided meanwhile, so d1 asks. A moment later that word counts."""
    fed = chain()
    fed.now = 5.0
    fed.step("d1", Message("d0", AckMsg(("nothing", WF, "d0"))), s1_done())
    assert runs_of(fed, "s2") == [] and fed.nodes["d1"].stats[HELD] == 1
    asks = fed.nodes["d1"].fencing.asks
    assert not asks.in_contact(5.0, "d0") and asks.in_contact(5.5, "d0")
