"""A claimant that yielded its epoch to a better-ranked rival answers a member whose
grant came after the yield with the end (core/node/takeover_late_grants.py, "A claim
yielded to a rival").

d0 coordinates s0 (d1) and s1 (d2), both with a compensate block, and s2 (d3), which
fails: d0 tells its end FAILED (told before it is made) and dies before the notices
leave. d1 claims epoch 1, and so does d2 (its own grant of epoch 1 on record before a
restart). d3 grants d2's claim, its answer late; d1 denies d2's as itself, so d2 yields
(takeover_split.py: its grant moves to d1, which it follows in epoch 1), and d3's grant
then reaches a follower, which drops it. d0's end reaches d1 in the answer to its
claim: d1 tells it on in epoch 1 (a claimant's end, no certificate) and drives the
saga. d2 takes that end from the holder it follows; d3 follows d2 in epoch 1 and
refuses it, and d2 never acted in epoch 1 to tell it anything (takeover soak seed
158800091 with a cut one way: the original, back, was the late granter)."""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.node import Message, StepEnded, Submit
from fedorch.core.node.records import ClaimAnswerMsg, ClaimMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_compensating_takeover import WF, Held, spec
from tests.unit.core.node.test_takeover_late_grants import holds


def hand(f: Held, src: str, dst: str, kind: type) -> None:
    """The first message of `kind` from `src` to `dst` held on the network, delivered."""
    for i, (s, d, m) in enumerate(f.net):
        if (s, d) == (src, dst) and isinstance(m, kind):
            del f.net[i]
            f.step(dst, Message(src, m))
            return
    raise AssertionError(f"no {kind.__name__} from {src} to {dst}")


def granted_after_the_yield(workflow: spec_pb2.WorkflowSpec | None = None,
                            placement: dict[str, str] | None = None,
                            hold: Callable[[str, str, object], bool] | None = None) -> Held:
    """The story above, up to the saga's compensations run (each once). `workflow` and
    `placement`: spec() on d1, d2, d3 by default; `hold`: what the network holds from
    the yield on (nothing by default)."""
    f = Held()
    f.step("d0", Submit(WF, workflow or spec(),
                        placement=placement or {"s0": "d1", "s1": "d2", "s2": "d3"}))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    run = f.queue["d3"].pop(0)  # s2 fails; its result reaches d0, which tells FAILED
    f.step("d3", StepEnded(*run, ok=False, error="boom"))
    f.deliver(keep=lambda src, dst, msg: src == "d0")
    assert f.disks["d0"].rows[WF].state is WorkflowState.RUNNING  # told, not made
    ends = {dst: msg for src, dst, msg in f.net
            if src == "d0" and isinstance(msg, FinalMsg) and not msg.owed}
    f.net = []
    f.kill("d0")
    f.disks["d2"].granted[WF] = (1, "d2")  # its own claim of epoch 1, on record
    f.restart("d2")
    f.hold = lambda src, dst, msg: isinstance(msg, (ClaimMsg, ClaimAnswerMsg))
    f.run_until(f.now + 0.5)
    hand(f, "d2", "d3", ClaimMsg)  # d3 grants d2's claim: its answer held
    hand(f, "d2", "d1", ClaimMsg)
    hand(f, "d1", "d2", ClaimAnswerMsg)  # d1 denies as itself: d2 yields to it
    assert f.nodes["d2"].stats["takeover claimant yielded to a better-ranked rival"] == 1
    assert f.disks["d2"].granted[WF] == f.disks["d2"].epochs[WF] == (1, "d1")
    # d0's end, late, reaches d1 as d0's answer to its claim: told on in epoch 1.
    f.step("d1", Message("d0", ClaimAnswerMsg(WF, 1, False, 0, "d0", ends["d1"].state)))
    assert f.disks["d1"].final[WF] is WorkflowState.FAILED
    hand(f, "d3", "d2", ClaimAnswerMsg)  # d3's grant, after the yield: dropped
    assert f.disks["d3"].epochs[WF] == (1, "d2")
    core = f.nodes["d2"].takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.FOLLOWING, 1, "d1")
    f.net = [m for m in f.net if hold is None or not hold(*m)]
    f.hold = hold
    f.run_until(f.now + 1.0)
    assert f.disks["d2"].final[WF] is WorkflowState.FAILED  # from d1, which it follows
    while any(f.queue.values()):  # the saga's compensations, each once
        for name in sorted(f.queue):
            if f.queue[name]:
                f.end(name, True)
    return f


def test_a_claimant_that_yielded_tells_a_member_that_granted_it_after_the_end():
    """d3 follows d2 in epoch 1 and asks it every `takeover_after_s`; the saga over, d2
    answers with the end in epoch 1, which d3 takes from the holder it follows: it ends
    and lets its hold go, and asks no more. Before, d2 answered nothing (its grant of
    epoch 1 names d1), and d3 stayed RUNNING, held, asking for ever."""
    f = granted_after_the_yield()
    f.run_until(f.now + 60.0)
    d2 = f.nodes["d2"]
    assert f.disks["d2"].plans[WF] == ()  # the saga over at d2
    assert ("d3", FinalMsg(WF, WorkflowState.FAILED, 1)) in f.sent_by("d2", FinalMsg)
    assert d2.stats["takeover grant never taken: end told to the granter that asked"] >= 1
    granter_ended_and_quiet(f)


def granter_ended_and_quiet(f: Held) -> None:
    """d3, told, ended the workflow FAILED, let its hold go and asks d2 no more; the
    saga's compensations ran once each."""
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    asked = f.nodes["d3"].stats["takeover granter asked a holder that never acted"]
    f.run_until(f.now + 60.0)
    assert f.nodes["d3"].stats["takeover granter asked a holder that never acted"] == asked
    assert sorted(f.compensations) == [("d1", (WF, "s0", 1, "compensate")),
                                       ("d2", (WF, "s1", 1, "compensate"))]
