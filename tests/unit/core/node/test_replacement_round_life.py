"""A re-placement round's life (agent/core/node/replacement.py, "Its life"): the round
states when its coordinator began it, on that coordinator's own wall clock, and the
acceptor record its new domain makes of it while in doubt (its own recovery ballot)
goes by the round's life once the workflow is forgotten there (retention.py), with the
coordinator's horizon raised, never kept for good. d0 coordinates; a step on a domain
that dies for good is placed again, by d0 or by its successor d1; each Node's wall
clock is its own (`ahead_ms`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fedorch.core.negotiation.acceptor import RoundPastLife
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Ballot,
    Decision,
    DecisionAnswer,
    PaxosPrepare,
)
from fedorch.core.node import Message, Node, Submit
from fedorch.core.node.ready import Ready
from fedorch.core.node.records import PrepareMsg, Timing
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.epoch_certificate import round_range
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, Federation, d0_dies_for_good, dies, step
from tests.unit.core.node.test_replacement import end_everything

POLICY = Retention(keep_ended_s=20.0, max_ended_workflows=1000, late_message_s=10.0)
LOST_AT = 100.0  # d1 dies then (the federation's clock, s)


class Retaining(Federation):
    """test_domain_loss.py's four Nodes with retention, each wall clock `ahead_ms[name]`
    ahead of the monotonic one (read at each call)."""

    timing = Timing(max_rounds=1, takeover_after_s=3.0, retention=POLICY)

    def __init__(self) -> None:
        self.ahead_ms: dict[str, int] = {}
        self.prepares: list[PrepareMsg] = []  # every re-placement PREPARE sent
        self.refusals: list[tuple[str, str, str]] = []  # (node, message, why)
        self.cut: Callable[[str, str, object], bool] = lambda src, dst, msg: False  # lost
        super().__init__()

    def make_node(self, name: str) -> Node:
        node = super().make_node(name)
        node.wall_ms = lambda now: int(now * 1000) + self.ahead_ms.get(name, 0)
        return node

    def step(self, name: str, *inputs: object) -> Ready:
        """As test_domain_loss.py's; a message `cut` says is lost never comes, one the
        Node refuses is counted in `refusals` (a driver goes on), and each
        re-placement PREPARE is kept in `prepares`."""
        ready = None
        for event in inputs:
            if isinstance(event, Message) and self.cut(event.src, name, event.msg):
                continue
            if isinstance(event, Message) and isinstance(event.msg, PrepareMsg) \
                    and event.msg.info.lost:
                self.prepares.append(event.msg)
            try:
                ready = super().step(name, event)
            except RemoteProtocolError as e:
                self.refusals.append((name, type(event.msg).__name__, str(e)))
        return ready if ready is not None else self.flush(name)


def placed_again_in_doubt(fed: Retaining) -> tuple[str, tuple[str, int]]:
    """s1 (d1) placed again; its new domain voted YES and never hears the COMMIT, so
    it asks d0, then runs a recovery ballot of its own: its acceptor records it."""
    fed.step("d0", spec_submit())
    fed.deliver()
    fed.now = LOST_AT

    def held(src: str, dst: str, msg: object) -> bool:  # the round's decision, to it
        return isinstance(msg, Decision | DecisionAnswer) and msg.key[1] > 1 \
            and src == "d0"

    fed.cut = held
    dies(fed, "d1")
    epoch, new, lost = fed.disks["d0"].placements[WF]["s1"]
    key = (WF, epoch)
    assert lost == "d1" and new in ("d2", "d3")
    for at in range(int(LOST_AT) + 1, int(LOST_AT) + 40):
        fed.tick(float(at))  # its lease, its query, its ballot: d0 refuses it
        if key in fed.disks[new].acceptor:
            break
    assert key in fed.disks[new].acceptor  # its own promise, made durable
    assert ("d0", "PaxosPrepare", "a re-placement round is decided by its coordinator") \
        in fed.refusals
    return new, key


def spec_submit(steps: dict[str, str] | None = None) -> Submit:
    """d0's workflow of idempotent steps, each on its domain (s1 on d1, s2 on d2)."""
    steps = steps or {"s1": "d1", "s2": "d2"}
    return Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[step(s, idempotent=True)
                                                              for s in steps]),
                  placement=steps)


def test_a_re_placement_round_states_its_coordinators_wall_clock_as_it_began() -> None:
    """Every PREPARE of the round states one creation time: d0's wall clock (an hour
    ahead of the federation's) as the round began, which the signed statement and
    the new domain's hold keep."""
    fed = Retaining()
    fed.ahead_ms["d0"] = 3_600_000
    fed.step("d0", spec_submit())
    fed.deliver()
    fed.now = LOST_AT
    dies(fed, "d1")
    assert fed.prepares, "no re-placement PREPARE"
    created = {p.tx.created_ms for p in fed.prepares}
    assert created == {int(LOST_AT * 1000) + 3_600_000}
    epoch, new, _ = fed.disks["d0"].placements[WF]["s1"]
    hold = fed.nodes[new].participant.hold((WF, epoch))
    assert hold is not None and hold.tx is not None
    assert hold.tx.created_ms == created.pop()  # as its PREPARE stated it


def test_a_successors_re_placement_round_states_the_successors_own_clock() -> None:
    """d0 dies for good and d1 takes over (epoch 1); s0, lost with d0, is placed again
    by d1: the round is d1's (TxInfo.coordinator, whose horizon its acceptors keep), so
    it states d1's wall clock (half an hour ahead), not d0's (an hour ahead), nor the
    committed round's creation time."""
    fed = Retaining()
    fed.ahead_ms.update(d0=3_600_000, d1=1_800_000)
    fed.step("d0", spec_submit({"s0": "d0", "s1": "d1", "s2": "d2"}))
    fed.deliver()
    committed = fed.disks["d1"].acceptor[(WF, 1)].tx.created_ms
    assert committed == 3_600_000  # d0's clock at 0 s
    fed.end("d1", "s1")
    fed.end("d2", "s2")
    fed.now = LOST_AT
    d0_dies_for_good(fed)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    epoch, new, lost = fed.disks["d1"].placements[WF]["s0"]
    assert lost == "d0" and epoch in round_range(1)
    [prepare] = [p for p in fed.prepares if p.tx.round == epoch]
    assert prepare.tx.coordinator == "d1"
    d1_wall = fed.nodes["d1"].wall_ms
    assert d1_wall(LOST_AT) <= prepare.tx.created_ms <= d1_wall(fed.now) < committed


def test_the_new_domains_record_of_a_re_placement_round_goes_at_the_rounds_life() -> None:
    """s1 (d1) placed again; its new domain, in doubt (the round's decision to it is
    lost), runs a recovery ballot, which d0 refuses and its own acceptor records. The
    COMMIT comes at last and the workflow ends: the record stays while its round lives,
    the workflow forgotten, and goes at its round's life and `late_message_s` more, the
    horizon of d0 raised to its creation time, so a late ballot of it is refused."""
    fed = Retaining()
    new, key = placed_again_in_doubt(fed)
    record = fed.disks[new].acceptor[key]
    assert record.promised is not None and record.promised.proposer == new
    # The COMMIT reaches it at last: s1 runs there, the workflow ends everywhere.
    fed.cut = lambda src, dst, msg: False
    fed.step(new, Message("d0", Decision(key, fed.disks["d0"].records[key], "d0")))
    fed.deliver()
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks[new].final[WF] is WorkflowState.SUCCEEDED
    kept_s = POLICY.round_kept_s  # the round began as d1 was lost, by d0's clock
    fed.run_until(LOST_AT + kept_s - 1.0)
    assert WF not in fed.disks[new].endings  # the workflow forgotten there...
    assert key in fed.disks[new].acceptor  # ...its round's record kept for its life
    fed.run_until(LOST_AT + kept_s + 2.0)
    assert key not in fed.disks[new].acceptor and key not in fed.disks[new].learned
    assert fed.nodes[new].acceptor.record(key) is None  # in memory too
    # Its newest round forgotten there: d0's wall clock as the round began.
    assert fed.disks[new].horizons["d0"] == record.tx.created_ms == int(LOST_AT * 1000)
    # A late ballot of the round finds no blank: refused as forgotten.
    late = PaxosPrepare(record.tx, Ballot(9, new))
    with pytest.raises(RoundPastLife) as refused:
        fed.nodes[new].step(fed.now, Message(new, late))
    assert refused.value.why == "forgotten"
    fed.flush(new)
