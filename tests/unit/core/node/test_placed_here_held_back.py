"""The workflow's own COMMIT notice held back while a step of its recipient is being
placed again (placed_here.py `moved_away`, "COMMIT held back"), and the coordinator
granting a later epoch meanwhile: the re-placement round's own COMMIT no longer leaves
it (replacement_telling.py, `send_if_told`), so its tell stays on record; once that
tell is held by enough to meet every majority, the placement is a fact all the same
(any later holder knows it), and the held notice goes. Nodes driven by hand with
coordinator takeover on (test_domain_loss.py's four), d0 coordinates."""

from __future__ import annotations

from fedorch.core.negotiation.messages import Decision, DecisionAck, DecisionQuery
from fedorch.core.node import MemberState, Message, Submit
from fedorch.core.node.records import ClaimMsg, PrepareMsg
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import WF, Federation, step
from tests.unit.core.node.test_placed_here_moved import OTHERS, d1_back
from tests.unit.core.node.test_replacement import runs_of


def ask(fed: Federation) -> list:
    """d1 asks d0 about the workflow's own round: d0's replies to it."""
    fed.net = []
    ready = fed.step("d0", Message("d1", DecisionQuery((WF, 1), "d1")))
    fed.net = []
    return [m for to, m in sent(ready) if to == "d1"]


def test_a_held_notice_goes_once_the_placement_is_told_though_a_later_epoch_was_granted(
) -> None:
    """d1 votes YES and is cut off in doubt; s2 is placed again on `new`, its round
    committed (the new domain's acknowledgement of that COMMIT lost: its record kept).
    d0 restarts and tells the placement again (`retell`); before any acknowledgement
    comes, `new` claims epoch 1 and d0 grants it. The round's COMMIT is now the epoch's
    holder's to hand out, so its tell stays on record at d0 however acknowledged.
    d1, back, asks d0 about the workflow's own round: held back (UNKNOWN) while the
    placement is not told enough; once every member acknowledged it, the COMMIT goes,
    naming s2 moved away, and d1 never starts s2 (before: UNKNOWN for ever; d1, in
    doubt, answered every claim "in doubt", epoch 1 was never won, and the workflow
    stayed RUNNING with d1's YES held: 2PC takeover soak seed 222100025)."""
    fed = Federation()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1"), step("s2", idempotent=True)]), placement={"s1": "d2", "s2": "d1"}))
    fed.deliver(keep=lambda src, dst, msg: dst == "d1" and not isinstance(msg, PrepareMsg))
    fed.net = []  # lost
    fed.silent.add("d1")
    for n in OTHERS:
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, DecisionAck) and dst == "d0")
    fed.net = []  # the new domain's acknowledgement of the round's COMMIT: lost
    epoch, new, lost = fed.disks["d0"].placements[WF]["s2"]
    assert lost == "d1" and (WF, epoch) in fed.disks["d0"].records  # kept
    assert runs_of(fed, "s2") == [(new, 1)]
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "DEAD" if m == "d1" else "ALIVE")
                     for m in ("d1", "d2", "d3")])
    d0 = fed.nodes["d0"]
    assert (WF, epoch) in d0.replacement.telling
    told, fed.net = fed.net, []
    fed.step("d0", Message(new, ClaimMsg(WF, 1)))
    fed.net = []  # its answer: lost (nothing below needs it)
    assert fed.disks["d0"].granted[WF] == (1, new)
    d1_back(fed)
    assert [type(m) for m in ask(fed)] != [Decision]  # not yet told: held back
    fed.net = told
    fed.deliver(keep=lambda src, dst, msg: dst == "d1" and isinstance(msg, Decision))
    assert d0.replacement.acked[(WF, epoch)] >= {"d1", "d2", "d3"}
    assert (WF, epoch) in d0.replacement.telling  # its COMMIT: the holder's to make
    replies = ask(fed)
    assert [type(m) for m in replies] == [Decision]
    assert replies[0].value.commit
    assert replies[0].moved == (("s2", *fed.disks["d0"].placements[WF]["s2"]),)
    fed.step("d1", Message("d0", replies[0]))
    fed.deliver()
    assert fed.disks["d1"].learned[(WF, 1)].commit
    assert fed.disks["d1"].placements[WF]["s2"] == fed.disks["d0"].placements[WF]["s2"]
    assert runs_of(fed, "s2") == [(new, 1)]  # never on d1
