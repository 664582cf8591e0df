"""An elector holding no step told a new placement (agent/core/node/placed_here.py):
Nodes driven by hand with coordinator takeover and retention on (test_domain_loss.py's
`Retained` federation), d0 coordinating; the round's acceptors d0, d1 and d2, d2 an
extra acceptor that retention knows by its acceptor records only."""

from __future__ import annotations

from fedorch.core.node import Message, Submit
from fedorch.core.node.records import AckMsg, PlacedMsg
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, Retained, dies, step


def test_an_elector_holding_no_step_writes_the_placement_it_acknowledges() -> None:
    """s1 (idempotent) on d1, which dies: d0 places it again on d3 and tells the
    electorate. d2's acknowledgement counts toward the majority that must hold the
    placement before its COMMIT leaves, so d2 writes it, and a grant of a later claim
    carries it. Acknowledged unwritten, a successor elected by d2 and the lost domain
    knew nothing of it and placed the step again where it ran (takeover soak seed
    150501078: a step not idempotent started twice)."""
    fed = Retained()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(
        name="w", steps=[step("s1", idempotent=True)]), placement={"s1": "d1"}))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    dies(fed, "d1", keep=lambda src, dst, msg: isinstance(msg, PlacedMsg) and dst == "d2")
    held = [(src, msg) for src, dst, msg in fed.net if isinstance(msg, PlacedMsg)]
    assert len(held) == 1
    src, placed = held[0]
    assert placed.domain == "d3" and "d2" in placed.electorate
    assert not fed.nodes["d2"].retain.knows(WF)  # an elector holding no step
    fed.net = []
    fed.step("d2", Message(src, placed))
    acks = [m for dst, m in fed.sent_by("d2", AckMsg) if dst == "d0"]
    assert [a.msg_id for a in acks] == [("placed", WF, "s1", placed.epoch, "d2")]
    assert fed.disks["d2"].placements[WF]["s1"] == (placed.epoch, "d3", "d1")
    carried = fed.nodes["d2"].placed_here.carried(WF)["placements"]
    assert carried == (("s1", placed.epoch, "d3", "d1"),)
