"""Acceptor core: every (state, input) pair, in the h2 style.

Any sequence of PaxosPrepare, Accept and learn with arbitrary ballots, senders,
values and transactions is fed to one acceptor. Every input either moves the record
as the module's table says or is refused with RemoteProtocolError and changes
nothing; a promise never goes back, nothing is accepted below the promise, a record
is persisted before any reply that follows its change, and DECIDED never leaves.
"""

from __future__ import annotations

from fedorch.core.negotiation import acceptor as acceptor_module
from fedorch.core.negotiation.acceptor import Acceptor, AcceptorState, PersistAcceptor
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Ballot,
    Decision,
    PaxosPrepare,
    Promise,
    Reject,
    Send,
    TxInfo,
    Value,
    VoteIn,
)
from hypothesis import given, settings
from hypothesis import strategies as st

ME = "a"
TX = TxInfo("c.wf", 1, "c", ("a", "p2"), ("a", "c", "p2"))
OTHER = TxInfo("c.wf", 1, "c", ("a", "p2"), ("a", "c", "p2", "z"))  # same key, other tx
NOT_MINE = TxInfo("c.wf", 1, "c", ("p2",), ("c", "p2"))
VOTES = tuple(VoteIn(1, d, True, "", b"v") for d in ("a", "p2"))
NEW, OPEN, DECIDED = AcceptorState.NEW, AcceptorState.OPEN, AcceptorState.DECIDED

EXPECTED = {
    (NEW, PaxosPrepare): {OPEN},
    (OPEN, PaxosPrepare): {OPEN},
    (DECIDED, PaxosPrepare): {DECIDED},
    (NEW, Accept): {OPEN},
    (OPEN, Accept): {OPEN},
    (DECIDED, Accept): {DECIDED},
}

senders = st.sampled_from(["c", "p2", "x"])
ballots = st.builds(Ballot, st.integers(-1, 3), senders)
txs = st.sampled_from([TX, TX, TX, OTHER, NOT_MINE])
values = st.sampled_from([Value(False), Value(True, VOTES), Value(True, VOTES[:1])])


@st.composite
def fitting_ballot(draw) -> tuple[str, Ballot]:
    """A sender with a ballot of its own (what a well-behaved proposer sends)."""
    sender = draw(st.sampled_from(["c", "p2"]))
    n = 0 if sender == "c" and draw(st.booleans()) else draw(st.integers(1, 3))
    return sender, Ballot(n, sender)


def _prepare(sender_ballot, tx):
    sender, ballot = sender_ballot
    return ("receive", sender, PaxosPrepare(tx, ballot))


def _accept(sender_ballot, tx, value, proposer_accepted):
    sender, ballot = sender_ballot
    return ("receive", sender, Accept(tx, ballot, value, proposer_accepted))


any_sender_ballot = st.tuples(senders, ballots)
inputs = st.one_of(
    st.builds(_prepare, any_sender_ballot | fitting_ballot(), txs),
    st.builds(_accept, any_sender_ballot | fitting_ballot(), txs, values, st.booleans()),
    st.builds(_accept, fitting_ballot(), st.just(TX), values, st.booleans()),
    st.tuples(st.just("learn"), txs, values),
)


@settings(max_examples=500, deadline=None)
@given(steps=st.lists(inputs, min_size=1, max_size=10))
def test_every_state_and_input_moves_as_the_table_says_or_is_refused(steps) -> None:
    a = Acceptor(ME)
    key = TX.key
    for step in steps:
        before, record = a.state(key), a.record(key)
        try:
            if step[0] == "learn":
                a.learn(step[1], step[2])
            else:
                a.receive(step[1], step[2])
        except RemoteProtocolError:
            assert a.record(key) is record and a.next_actions() == []
            continue
        actions = a.next_actions()
        after = a.record(key)
        if step[0] == "learn":
            assert a.state(key) is DECIDED and actions == []
            continue
        sender, msg = step[1], step[2]
        assert a.state(key) in EXPECTED[(before, type(msg))], (before, msg)
        if before is DECIDED:
            assert after is record
            assert actions == [Send(sender, Decision(key, record.decided, ME))]
            continue
        # The persist comes first, then the replies; the first reply goes to the sender.
        persists = [x for x in actions if isinstance(x, PersistAcceptor)]
        assert actions[:len(persists)] == persists and len(persists) <= 1
        assert persists == [] or persists[0].record == after
        reply = actions[len(persists)]
        assert isinstance(reply, Send) and reply.to == sender
        assert after is not None and after.tx == msg.tx
        if record is not None and record.promised is not None:
            assert after.promised is not None and after.promised >= record.promised
        if isinstance(reply.msg, Reject):
            assert after is record and reply.msg.promised == record.promised  # type: ignore
            assert msg.ballot < record.promised  # type: ignore[union-attr]
        elif isinstance(msg, PaxosPrepare):
            assert isinstance(reply.msg, Promise) and after.promised == msg.ballot
            assert (reply.msg.accepted_ballot, reply.msg.accepted_value) == (
                after.accepted_ballot, after.accepted_value)
        else:
            assert reply.msg == Accepted(key, msg.ballot, ME, msg.value)
            assert (after.accepted_ballot, after.accepted_value) == (msg.ballot, msg.value)
        if after.accepted_ballot is not None:
            assert after.promised is not None and after.accepted_ballot <= after.promised


def test_the_table_covers_exactly_the_expected_pairs() -> None:
    assert set(acceptor_module._TABLE) == set(EXPECTED)
