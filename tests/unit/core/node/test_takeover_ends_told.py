"""A successor's end told in its epoch is the end it makes (agent/core/node/
takeover_ends.py, `successor_outcome`; domain_loss.py, `releasing`), Nodes driven by
hand with coordinator takeover on (test_domain_loss.py's federation).

The takeover soak's seed 117000348 (`--takeover 3`): d2, a step's new domain (s2,
placed again there by d0 in epoch 1, its round in doubt at d2), won epoch 2 and failed
s2 naming its lost first domain d1: it told FAILED in epoch 2, and d0 took that end
and acknowledged it. Meanwhile the round committed at d2, s2 ran there and SUCCEEDED,
its result over the verdict's; d0's acknowledgement then released the end, and d2 made
the outcome its progress showed, SUCCEEDED. d0 keeps the first end it took (only a
later epoch's proven end replaces it: told_ends.py), so one workflow ended FAILED at
d0 and SUCCEEDED at its coordinator of epoch 2. Here the verdict's step result is
replaced as that run replaced it, between the end told and its acknowledgement."""

from __future__ import annotations

from fedorch.core.node import MemberState
from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, result, s1_s2_ended_and_d0_silent


def test_a_successors_told_end_is_made_as_told_though_the_step_succeeded_since() -> None:
    fed = s1_s2_ended_and_d0_silent()
    made: list[tuple[str, int, WorkflowState]] = []  # each end a coordinator made
    note = fed.note

    def watch(name: str, what: str, facts: list) -> None:
        note(name, what, facts)
        if what == "coordinator_ended" and facts[0] == WF:
            made.append((name, facts[1], facts[2]))

    fed.note = watch  # type: ignore[method-assign]
    fed.step("d1", MemberState("d0", "DEAD"))  # d2 has not heard: it grants d1's claim
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, FinalMsg))
    assert fed.evidence.acting == {(WF, 1): "d1"}
    d1 = fed.nodes["d1"]
    assert d1.domain_loss.holds(WF)  # FAILED told in epoch 1, not made
    attempts, state, _, error = result(fed, "d1", "s0")
    assert state is StepState.FAILED and "domain d0 was lost" in error
    # The step's own run, placed again at the successor, SUCCEEDED over the verdict.
    d1.progress[WF].apply_result("s0", attempts + 1, StepState.SUCCEEDED, {}, "")
    fed.disks["d1"].results[WF] = {**fed.disks["d1"].results[WF],
                                   "s0": (attempts + 1, StepState.SUCCEEDED, {}, "")}
    fed.deliver()  # d2 takes the told end and acknowledges it: released at d1
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert not d1.domain_loss.holds(WF)
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert made == [("d1", 1, WorkflowState.FAILED)]
