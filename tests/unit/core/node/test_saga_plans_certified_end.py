"""A certified holder of an epoch that hears a rival claimant's end of that epoch tells
its end again, with its certificate, to every domain of the workflow it knows
(core/node/saga_plans.py, `tell_end_again`): a step's new domain too, which the
committed placement does not name. Told only the committed placement's domains, a
rival that was such a new domain never saw the certificate, ranked itself better
(lower-named) and drove the epoch's saga for ever beside the winner's (simulator seed
165200424 with `--commit 2pc`: d0, s0's new domain, claimed epoch 1 after a restart,
was denied with the end and told it on; d1 had won epoch 1)."""

from __future__ import annotations

from fedorch.core.node import Message, Submit
from fedorch.core.node.records import FinalMsg
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.test_compensating_takeover import WF, Bounded, spec


def certified_successor_ended_it() -> Bounded:
    """d0 coordinates s0 (d1), s1 (d2) and s2 (d2, fails); d0 dies while s2 runs, d1
    wins epoch 1 (a majority's signed grants) and ends the workflow FAILED."""
    f = Bounded()
    f.step("d0", Submit(WF, spec(), placement={"s0": "d1", "s1": "d2", "s2": "d2"}))
    f.deliver()
    assert f.end("d1", True)[1] == "s0"
    assert f.end("d2", True)[1] == "s1"
    f.kill("d0")
    f.deliver()
    assert f.end("d2", False, "boom")[1] == "s2"
    f.deliver()
    d1 = f.disks["d1"]
    assert d1.final[WF] is WorkflowState.FAILED and d1.epochs[WF] == (1, "d1")
    assert d1.certificates[WF][0] == 1
    return f


def test_a_certified_holder_tells_its_end_again_to_a_rival_that_is_a_steps_new_domain():
    f = certified_successor_ended_it()
    # s1 was placed again on d3 (lost with d2): on record at d1, not in the committed
    # placement. d3, a claimant of epoch 1 too, tells d1 the same end, uncertified.
    f.nodes["d1"].state.placements[WF] = {"s1": (2, "d3", "d2")}
    assert "d3" in f.nodes["d1"].replacement.domains_of(WF)
    assert "d3" not in f.nodes["d1"].running.info(WF).placement.values()
    f.net = []
    f.step("d1", Message("d3", FinalMsg(WF, WorkflowState.FAILED, 1)))
    assert not f.refused
    won = f.nodes["d1"].takeover.proof.own_certificate(WF, 1)
    assert won
    to_d3 = [msg for src, dst, msg in f.net if (src, dst) == ("d1", "d3")
             and isinstance(msg, FinalMsg) and not msg.owed and not msg.saga_over]
    # The rival is shown the certificate: it yields its saga to d1 (rival_end).
    assert to_d3 == [FinalMsg(WF, WorkflowState.FAILED, 1, won=won)]
    assert f.disks["d1"].epochs[WF] == (1, "d1")
