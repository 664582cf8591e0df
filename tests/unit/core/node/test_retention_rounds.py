"""Retention of a round's acceptor record and learned decision (core/node/retention_rounds.py,
`RoundLife.of`, `RoundLife.forget`): each goes by its own round's life, whatever entry of
its round was pushed before."""

from __future__ import annotations

import random

from fedorch.core.negotiation.messages import Accept, PaxosPrepare
from fedorch.core.node import Message, Node
from fedorch.core.node.records import Disk, PrepareMsg
from fedorch.core.node.retention import Retention
from fedorch.gen.fedorch.v1 import config_pb2

from tests.unit.core.node.test_retention import NAMES
from tests.unit.core.node.test_retention import Federation as RetentionFederation

STEPPED_BACK_MS = 20_000  # d2's wall clock at its restart


class SteppedFederation(RetentionFederation):
    """The Federation of test_retention.py, each Node's wall clock behind the monotonic
    one by `behind_ms` (read at each call: a restart may find it stepped back)."""

    def __init__(self, retention: Retention) -> None:
        self.behind_ms: dict[str, int] = {}
        super().__init__(retention)

    def make_node(self, name: str, disk: Disk | None = None) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 100}, timing=self.timing, peers=NAMES,
                    rng=random.Random(NAMES.index(name)),
                    disk=self.disks[name] if disk is None else disk, now=self.now,
                    wall_ms=lambda now: int(now * 1000) - self.behind_ms.get(name, 0))


def test_a_stale_learned_entry_never_forgets_a_record_made_since_before_its_life() -> None:
    """d2 learns d0's round without an acceptor record of it (d0's ballot messages to
    it are held back) and forgets the workflow; it restarts with its wall clock stepped
    back 20 s, so the learned decision alone is pushed to go `round_kept_s` (25 s)
    after that earlier wall time (restore). The held Accept then reaches d2: an
    acceptor record of the same round (the restored acceptor holds no decision of it),
    its workflow marked again and forgotten again before that push comes due. The
    record must stay until its own round's life (its creation, on d0's clock, + 25 s)
    has passed, not go with the stale push."""
    f = SteppedFederation(Retention(keep_ended_s=10.0, max_ended_workflows=1000,
                                    late_message_s=10.0))
    held: list[tuple[str, object]] = []

    def hold(src: str, dst: str, msg: object) -> bool:
        if dst == "d2" and isinstance(msg, Accept | PaxosPrepare):
            held.append((src, msg))
            return True
        return False

    f.drop = hold
    wf = f.submit()
    key = (wf, 1)
    f.run_until(5.0)
    d2 = f.disks["d2"]
    assert key in d2.learned and key not in d2.acceptor  # learned, no record
    f.drop = lambda src, dst, msg: False
    f.run_until(16.0)
    assert f.has("d2", wf) == [] and key in d2.learned  # forgotten; the decision waits
    f.behind_ms["d2"] = STEPPED_BACK_MS
    f.restore("d2")
    kept_s = f.timing.retention.round_kept_s
    stale_s = 16.0 + kept_s  # monotonic: d2's wall reads then what restore pushed
    for src, msg in held:
        if isinstance(msg, Accept):
            f.step("d2", Message(src, msg))
    f.run_until(16.5)
    assert key in d2.acceptor  # a record of the round, made since the push
    own_s = (d2.acceptor[key].tx.created_ms + STEPPED_BACK_MS) / 1000 + kept_s
    assert stale_s + 2.0 < own_s  # its own life ends after the stale push
    f.run_until(stale_s + 1.0)  # past the stale push, the workflow forgotten again
    assert f.has("d2", wf) == []
    assert key in d2.acceptor and key in d2.learned  # kept for its own round's life
    f.run_until(own_s + 2.0)
    assert key not in d2.acceptor and key not in d2.learned


def test_a_classic_round_leaves_no_acceptor_record_and_its_learned_decisions_go() -> None:
    """Classic 2PC (docs/retention.md, "Re-placement and classic 2PC rounds"): the
    workflow's round has no acceptors, so no Node makes an acceptor record of it and
    it states no creation time; what is kept of it goes with the workflow (the
    coordinator's row and records) or `round_kept_s` after the workflow's last mark
    (each participant's learned decision): nothing stays for good."""
    policy = Retention(keep_ended_s=10.0, max_ended_workflows=1000, late_message_s=10.0)
    f = RetentionFederation(policy, classic=True)
    wf = f.submit()
    key = (wf, 1)
    txs = {msg.tx for _, _, msg in f.net if isinstance(msg, PrepareMsg)}
    assert [(tx.key, tx.acceptors, tx.created_ms) for tx in txs] == [(key, (), 0)]
    f.run_until(1.0)
    assert all(f.disks[n].final[wf].name == "SUCCEEDED" for n in NAMES)
    assert all(not f.disks[n].acceptor for n in NAMES)  # no record of it, anywhere
    assert all(key in f.disks[n].learned for n in ("d1", "d2"))
    f.run_until(1.0 + policy.keep_ended_s + policy.late_message_s + 2.0)
    assert all(f.has(n, wf) == [] for n in NAMES)  # the workflow forgotten everywhere
    assert all(key in f.disks[n].learned for n in ("d1", "d2"))  # not yet
    f.run_until(1.0 + policy.keep_ended_s + policy.round_kept_s + 2.0)
    for n in NAMES:
        assert not f.disks[n].acceptor and not f.disks[n].learned and not f.disks[n].horizons
        assert f.nodes[n].acceptor.records() == []
