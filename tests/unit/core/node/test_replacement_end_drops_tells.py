"""The original ends a workflow while a new placement's tells are still unacknowledged:
it tells them no more (agent/core/node/replacement.py, `ended`), and every domain it
told hears the end all the same, as a participant or an elector of that end
(agent/core/node/replacement_telling.py, "The end drops the tells")."""

from __future__ import annotations

from fedorch.core.node import StepEnded, Submit
from fedorch.core.node.records import AckMsg, PlacedMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, Federation, dies, step


class D2OffersNothing(Federation):
    """d2 offers no capability a step needs: an elector holding no step (an extra
    acceptor), never a new domain."""

    def capacities_of(self, name: str) -> dict[str, int]:
        return {"c": 4} if name == "d2" else {"a": 4}


def test_every_domain_told_an_unacknowledged_placement_hears_the_end() -> None:
    """d0's workflow: s1 (idempotent, on d1) and s2 (on d0); d2 is an extra acceptor.
    d1 dies; d0 places s1 again on d3 and decides the round's COMMIT: its tell to d3 is
    lost (d3 holds its YES, in doubt, and not the placement) and d2 takes its tell but
    the acknowledgement is lost (d2 holds the placement). s2 FAILS: d0 ends the workflow
    with both tells unacknowledged and drops them; d2 hears the end as an elector (the
    end is told to the electorate before it is made), d3 as a domain of the workflow
    (its placement is on record at d0) and releases its YES."""
    fed = D2OffersNothing()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1", idempotent=True), step("s2")]), placement={"s1": "d1", "s2": "d0"}))
    fed.deliver()
    d0 = fed.nodes["d0"]
    assert "d2" in d0.takeover.electorate_of(WF)
    assert "d2" not in d0.replacement.domains_of(WF)
    dies(fed, "d1", keep=lambda src, dst, msg: isinstance(msg, PlacedMsg)
         or isinstance(msg, AckMsg) and src == "d2")
    key = next(h.key for h in fed.nodes["d3"].participant.holds() if h.workflow_id == WF)
    assert fed.disks["d0"].placements[WF]["s1"] == (key[1], "d3", "d1")
    tells = [(src, dst, m) for src, dst, m in fed.net if isinstance(m, PlacedMsg)]
    assert sorted(dst for _, dst, _ in tells) == ["d2", "d3"]
    fed.net = [t for t in tells if t[1] == "d2"]  # the tell to d3 lost
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, AckMsg) and src == "d2")
    fed.net = []  # d2's acknowledgement lost
    assert fed.disks["d2"].placements[WF]["s1"] == (key[1], "d3", "d1")
    assert {k[-1] for k in d0.pending.of(WF) if k[0] == "placed"} == {"d1", "d2", "d3"}
    run = next(r for r in fed.running["d0"] if r[1] == "s2")
    fed.step("d0", StepEnded(*run, ok=False))
    fed.deliver()
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert not [k for k in d0.pending.of(WF) if k[0] == "placed"]  # told no more
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d3"].final[WF] is WorkflowState.FAILED
    assert not fed.nodes["d3"].participant.holds()  # its reservation released
    assert key not in fed.disks["d3"].learned
    assert fed.disks["d0"].final_acked[WF] >= {"d2", "d3"}
    assert {k[-1] for k in d0.pending.of(WF)} <= {"d1"}  # only the gone domain owes
