"""A lost step placed again (core/node/replacement.py) in a classic 2PC workflow on two
domains: its takeover electorate is those two (the participants and the original
coordinator), so with the other one gone the original alone meets every majority of
it (one fewer than a majority for an even electorate), and the re-placement's COMMIT
goes to the new domain. Before, it waited for a majority of two, which a domain gone
for good never gives: the new domain stayed in doubt (2PC takeover soak seeds 5500337,
5501408).

And a step still waiting to be placed again when its coordinator starts acting in an
epoch it won (its own round cut short while it followed another's epoch) gets a round
of that epoch (replacement.py, `acting`)."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message, Submit, Tick
from fedorch.core.node.records import ClaimMsg, PrepareMsg
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node import test_domain_loss
from tests.unit.core.node.test_negotiation_classic import (
    SPEC,
    WF,
    WithTakeover,
    no_step_ends,
)
from tests.unit.core.node.test_replacement import end_everything, runs_of


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


class Checked(test_domain_loss.Federation):
    """Classic rounds with takeover, each message through the authority table."""

    timing = WithTakeover.timing


def test_a_step_left_waiting_when_the_drive_lapsed_is_placed_once_the_drive_is_won() -> None:
    """s1 (idempotent) on d1, s2 on d2 ended. d1 is DEAD: d0 places s1 again, but is cut
    off from everyone meanwhile, grants epoch 1 to d1 (its claim came in before), and
    its round ends ABORT while it follows d1: s1, never placed, went back to d1 as d0
    followed it, as a restore rebuilds it (replacement_epochs.py, `given_back`). Back,
    d0 claims past d1 (DEAD) and wins epoch 2 with d2's grant: its Act judges d1's
    steps again, s1 gets a round of epoch 2's range and the workflow SUCCEEDS. Before
    the rounds of an acting Node, nothing started one (only a loss does, and none
    came): the workflow stayed RUNNING for ever, s1's lost domain, once back, told that
    s1 was placed nowhere (2PC takeover soak seed 4920841)."""
    fed = Checked()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        test_domain_loss.step("s1", idempotent=True), test_domain_loss.step("s2")]),
        placement={"s1": "d1", "s2": "d2"}))
    fed.deliver()
    d0 = fed.nodes["d0"]
    assert d0.takeover.electorate_of(WF) == frozenset({"d0", "d1", "d2"})
    fed.end("d2", "s2")
    fed.silent.add("d1")
    fed.running["d1"] = set()
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    assert d0.stats["re-placement round started"] == 1
    fed.net = []  # d0 is cut off: its PREPARE is lost
    fed.step("d0", Message("d1", ClaimMsg(WF, 1)))
    assert fed.disks["d0"].granted[WF] == (1, "d1") and not d0.domain_loss.drives(WF)
    cut_off_until = fed.now + 5.0
    while fed.now < cut_off_until:  # the round times out while d0 follows d1
        fed.now += 0.5
        fed.step("d0", Tick())
        fed.net = []
    assert not d0.replacement.cores and d0.progress[WF].awaiting_placement() == []
    fed.run_until(fed.now + 10.0)
    assert fed.evidence.acting == {(WF, 2): "d0"}
    epoch, new, lost = fed.disks["d0"].placements[WF]["s1"]
    assert epoch in round_range(2) and lost == "d1" and new in ("d2", "d3")
    # Its PREPARE shows epoch 2's certificate: the original's, as any holder's.
    prepares = [m for _, m in fed.sent_by("d0", PrepareMsg) if m.held_epoch == 2]
    assert prepares and all(m.won and m.tx.round in round_range(2) for m in prepares)
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    for n in ("d0", "d2", new):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s1") == [("d1", 1), (new, 1)]
    assert not fed.refused
