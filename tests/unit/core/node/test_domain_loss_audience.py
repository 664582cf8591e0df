"""Who hears an end told before it is made (agent/core/node/domain_loss_audience.py):
the electors first, a participant outside the electorate once enough electors hold it.
d0 coordinates a workflow of four steps, one on each domain, with at most three
acceptors: one participant is no elector."""

from __future__ import annotations

import dataclasses

from fedorch.core.node import StepEnded
from fedorch.core.node.records import AckMsg, FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.stories import WF, committed_in
from tests.unit.core.node.test_domain_loss import Federation, step


class ThreeAcceptors(Federation):
    timing = dataclasses.replace(Federation.timing, max_acceptors=3)


def every_step_but_d0s_ended() -> tuple[ThreeAcceptors, str]:
    """The workflow committed, the steps of d1, d2 and d3 SUCCEEDED; d0's own runs.
    Returns the fed and the participant that is no elector."""
    fed = committed_in(ThreeAcceptors(), [step(f"s{i}") for i in range(4)],
                       {f"s{i}": f"d{i}" for i in range(4)})
    for i in (1, 2, 3):
        fed.end(f"d{i}", f"s{i}")
    electorate = set(fed.nodes["d0"].takeover.electorate_of(WF) or ())
    outside = sorted({"d1", "d2", "d3"} - electorate)
    assert len(electorate) == 3 and len(outside) == 1, electorate
    return fed, outside[0]


def told(fed: ThreeAcceptors) -> set[str]:
    return {to for _, to, m in fed.net if isinstance(m, FinalMsg)}


def test_a_participant_outside_the_electorate_is_told_the_end_once_electors_hold_it(
) -> None:
    """d0's end on results (SUCCEEDED), told first, goes to the electors only. Were the
    participant outside the electorate told too, it could take the end and die for
    good while d0, cut off from the electors, never made it: a successor the electors
    elect fails that dead domain's step by its verdict, and the dead domain keeps an
    end no coordinator made (takeover soak seed 94021920). Once the electors other
    than d0 acknowledged it, the participant is told, and the end is made when it
    acknowledges too."""
    fed, outside = every_step_but_d0s_ended()
    electors = {"d0", "d1", "d2", "d3"} - {outside}
    run = next(iter(fed.running["d0"]))
    fed.step("d0", StepEnded(*run, ok=True))
    assert told(fed) == electors - {"d0"}
    assert WF not in fed.disks["d0"].final  # told, not made
    # The electors take it and acknowledge; nothing reaches the outside one before.
    fed.deliver(keep=lambda src, dst, msg: dst == outside)
    assert fed.disks["d0"].final_acked.get(WF, set()) >= electors - {"d0"}
    assert WF not in fed.disks[outside].final
    assert WF not in fed.disks["d0"].final  # the outside participant has not acknowledged
    assert outside in told(fed)  # told now: the electors hold it
    fed.deliver()
    assert fed.disks[outside].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED


def test_with_no_elector_acknowledging_the_outside_participant_never_holds_the_end(
) -> None:
    """The electors' acknowledgements are lost: the participant outside the electorate
    is not told the end, so nothing it holds can contradict what a successor the
    electors elect decides; d0 holds the end unmade."""
    fed, outside = every_step_but_d0s_ended()
    run = next(iter(fed.running["d0"]))
    fed.step("d0", StepEnded(*run, ok=True))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, AckMsg) and dst == "d0")
    fed.net = []  # lost
    assert WF not in fed.disks[outside].final
    assert WF not in fed.disks["d0"].final
    assert fed.nodes["d0"].domain_loss.holds(WF)
