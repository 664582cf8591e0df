"""A lost step placed again (core/node/replacement.py) in a classic 2PC workflow on two
domains: its takeover electorate is those two (the participants and the original
coordinator), so with the other one gone the original alone meets every majority of
it (one fewer than a majority for an even electorate), and the re-placement's COMMIT
goes to the new domain. Before, it waited for a majority of two, which a domain gone
for good never gives: the new domain stayed in doubt (2PC takeover soak seeds 5500337,
5501408)."""

from __future__ import annotations

from fedorch.core.node import MemberState, Submit
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_negotiation_classic import (
    SPEC,
    WF,
    WithTakeover,
    no_step_ends,
)


def test_the_original_alone_places_a_step_again_in_an_electorate_of_two() -> None:
    fed = WithTakeover()
    # s2 needs s1: it has not started on d1 when d1 is lost.
    fed.step("d0", Submit(WF, SPEC, placement={"s1": "d0", "s2": "d1"}))
    no_step_ends(fed)
    assert fed.nodes["d0"].takeover.electorate_of(WF) == frozenset({"d0", "d1"})
    fed.silent.add("d1")
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    no_step_ends(fed)
    fed.run_until(fed.now + 10.0)
    no_step_ends(fed)
    [(step, (epoch, domain, lost))] = fed.disks["d0"].placements[WF].items()
    assert (step, lost) == ("s2", "d1") and domain in ("d2", "d3")
    assert fed.disks[domain].learned[(WF, epoch)].commit  # the new domain was told
    assert fed.nodes[domain].participant.status((WF, epoch)) == "committed"
    progress = fed.nodes["d0"].progress[WF]
    assert progress.steps["s2"].state is not StepState.FAILED
