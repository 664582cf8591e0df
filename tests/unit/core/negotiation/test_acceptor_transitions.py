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


# ---- records only of stated rounds ---------------------------------------------------------

def _refuse_unstated(sender: str, tx: TxInfo) -> None:
    """Stands for the shell's check of the coordinator's signed round: here, a round is
    stated when it carries b"signed", or when its coordinator sends it."""
    if sender != tx.coordinator and tx.round_tx != b"signed":
        raise RemoteProtocolError(f"{sender} stated {tx.key} without its signed round")


@given(st.lists(st.tuples(senders, st.sampled_from([b"", b"signed"]), st.booleans()),
                max_size=8))
@settings(max_examples=200, deadline=None)
def test_a_record_is_made_only_of_a_stated_round(inputs) -> None:
    """Whatever arrives, the first record of a round comes from a stated message; an
    unstated one before it is refused and changes nothing; once a record exists, later
    messages of the same round are not checked again (the record is evidence)."""
    acc = Acceptor(ME, stated=_refuse_unstated)
    made_by = None
    for sender, signed, prepare in inputs:
        tx = TxInfo(TX.workflow_id, TX.round, TX.coordinator, TX.participants,
                    TX.acceptors, signed)
        ballot = Ballot(2, sender) if prepare or sender != "c" else Ballot(0, "c")
        msg = PaxosPrepare(tx, ballot) if prepare and ballot.n else \
            Accept(tx, ballot, Value(False))
        before = acc.record(TX.key)
        stated = sender == tx.coordinator or signed == b"signed"
        try:
            acc.receive(sender, msg)
        except RemoteProtocolError:
            assert acc.record(TX.key) == before and acc.next_actions() == []
            assert before is not None or not stated
            continue
        if before is None:
            assert stated, "a record made of a round nobody stated"
            made_by = signed
        rec = acc.record(TX.key)
        assert rec is not None and rec.tx.round_tx == made_by  # kept as it came
        acc.next_actions()


def test_an_unstated_round_is_refused_with_the_checks_reason() -> None:
    acc = Acceptor(ME, stated=_refuse_unstated)
    try:
        acc.receive("p2", PaxosPrepare(TX, Ballot(1, "p2")))
    except RemoteProtocolError as e:
        assert "without its signed round" in str(e)
    else:
        raise AssertionError("an unstated round was taken")
    assert acc.state(TX.key) is NEW and acc.next_actions() == []
    signed = TxInfo(*(getattr(TX, f) for f in ("workflow_id", "round", "coordinator",
                                               "participants", "acceptors")), b"signed")
    acc.receive("p2", PaxosPrepare(signed, Ballot(1, "p2")))
    assert acc.state(TX.key) is OPEN and acc.record(TX.key).tx.round_tx == b"signed"
