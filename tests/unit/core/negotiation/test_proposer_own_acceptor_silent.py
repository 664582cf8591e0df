"""A recovery proposer whose own acceptor refuses its phase 2 with nothing sent back
(proposer.py, "Own acceptor first"): the Accept reaches the other acceptors after one
resend to ours alone, unvouched, and a majority of them chooses the value. The fast
path, ours accepting in the same turn, sends exactly what it sent before."""

from __future__ import annotations

import random

from fedorch.core.negotiation.acceptor import Acceptor
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    Accept,
    Accepted,
    Ballot,
    PaxosPrepare,
    Promise,
    Send,
    TxInfo,
)
from fedorch.core.negotiation.proposer import Proposer, ProposerPhase

LIFE_MS = 50_000
CREATED = 1_800_000_000_000
TX = TxInfo("c.wf", 1, "c", ("p1", "p2"), ("c", "p1", "p2"), created_ms=CREATED)


class _Net:
    """p1's proposer and the three acceptors, p1's own among them, on one clock."""

    def __init__(self, proposer: Proposer, acceptors: dict[str, Acceptor]) -> None:
        self.p = proposer
        self.acceptors = acceptors
        self.refused: list[tuple[str, object]] = []
        self.accepts: list[tuple[str, Accept]] = []

    def deliver(self, now: float, actions: list) -> None:
        queue = [a for a in actions if isinstance(a, Send)]
        while queue:
            send = queue.pop(0)
            if isinstance(send.msg, PaxosPrepare | Accept):
                if isinstance(send.msg, Accept):
                    self.accepts.append((send.to, send.msg))
                acceptor = self.acceptors[send.to]
                try:
                    acceptor.receive(self.p.me, send.msg, CREATED + int(now * 1000), now)
                except RemoteProtocolError:  # refused on the wire: nothing comes back
                    self.refused.append((send.to, send.msg))
                    continue
                queue += [a for a in acceptor.next_actions() if isinstance(a, Send)]
            elif send.to == self.p.me and self.p.phase is not ProposerPhase.DONE:
                self.p.receive(now, send.msg)
                queue += [a for a in self.p.next_actions() if isinstance(a, Send)]


def test_a_ballot_its_own_acceptor_refuses_silently_is_chosen_by_the_others() -> None:
    # p1's acceptor recorded the round (an earlier ballot of p1) longer than its life
    # ago: it refuses every later recovery ballot of it, sending nothing back. c and p2
    # hold no record of it and promise and accept.
    own = Acceptor("p1", round_life_ms=LIFE_MS)
    own.receive("p1", PaxosPrepare(TX, Ballot(1, "p1")), CREATED + 10, 0.0)
    own.next_actions()
    acceptors = {"p1": own, "c": Acceptor("c", round_life_ms=LIFE_MS),
                 "p2": Acceptor("p2", round_life_ms=LIFE_MS)}
    p = Proposer("p1", TX, preferred=ABORT, rng=random.Random(1), resend_s=1.0,
                 backoff_s=0.5, floor=Ballot(1, "p1"))
    net = _Net(p, acceptors)
    now = LIFE_MS / 1000 + 10.0
    p.start(now)
    net.deliver(now, p.next_actions())
    assert p.phase is ProposerPhase.PHASE2 and p.ballot == Ballot(2, "p1")
    assert net.accepts == [("p1", Accept(TX, Ballot(2, "p1"), ABORT))]  # ours first
    now += 1.0
    p.handle_timer(now)
    net.deliver(now, p.next_actions())
    assert [to for to, _ in net.accepts] == ["p1", "p1"]  # first resend: ours alone
    assert p.chosen is None
    now += 1.0
    p.handle_timer(now)  # ours still silent: every acceptor still silent gets it
    net.deliver(now, p.next_actions())
    assert p.chosen == ABORT and p.phase is ProposerPhase.DONE
    assert [to for to, _ in net.accepts[2:]] == ["c", "p1", "p2"]
    assert not any(m.proposer_accepted for _, m in net.accepts)  # never vouched
    assert all(to == "p1" for to, _ in net.refused)
    for name in ("c", "p2"):
        rec = acceptors[name].record(TX.key)
        assert rec is not None and rec.accepted_ballot == Ballot(2, "p1")
        assert rec.accepted_value == ABORT


def _in_phase2(promisers: tuple[str, ...]) -> tuple[Proposer, Ballot]:
    """p1's proposer with ballot 2 promised by `promisers`: its Accept gone to its own
    acceptor alone (own acceptor first)."""
    p = Proposer("p1", TX, preferred=ABORT, rng=random.Random(1), resend_s=1.0,
                 backoff_s=0.5, floor=Ballot(1, "p1"))
    p.start(0.0)
    p.next_actions()
    b = Ballot(2, "p1")
    for a in promisers:
        p.receive(0.1, _promise(a, b))
    assert p.next_actions() == [Send("p1", Accept(TX, b, ABORT))]
    return p, b


def test_our_acceptor_accepting_late_then_vouches_to_the_ones_still_silent() -> None:
    p, b = _in_phase2(("c", "p2"))
    p.handle_timer(1.1)
    assert p.next_actions() == [Send("p1", Accept(TX, b, ABORT))]
    p.handle_timer(2.1)
    bare = Accept(TX, b, ABORT)
    assert p.next_actions() == [Send(a, bare) for a in ("c", "p1", "p2")]
    p.receive(2.2, Accepted(TX.key, b, "p1", ABORT))  # ours, at last: now vouched for
    vouched = Accept(TX, b, ABORT, proposer_accepted=True)
    assert p.next_actions() == [Send("c", vouched), Send("p2", vouched)]
    p.handle_timer(3.2)
    assert p.next_actions() == [Send("c", vouched), Send("p2", vouched)]
    p.receive(3.3, Accepted(TX.key, b, "c", ABORT))
    assert p.chosen == ABORT


def test_the_fast_path_is_unchanged_when_ours_accepts_at_once() -> None:
    p, b = _in_phase2(("p1", "c"))
    p.receive(0.1, Accepted(TX.key, b, "p1", ABORT))
    vouched = Accept(TX, b, ABORT, proposer_accepted=True)
    assert p.next_actions() == [Send("c", vouched), Send("p2", vouched)]
    for now in (1.1, 2.1):  # resends stay vouched, to the silent ones only
        p.handle_timer(now)
        assert p.next_actions() == [Send("c", vouched), Send("p2", vouched)]


def _promise(acceptor: str, ballot: Ballot) -> Promise:
    return Promise(TX.key, ballot, acceptor, None, None)
