"""The transition table, the claim encoding and the core's input boundary."""

from __future__ import annotations

import random

import pytest
from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_profiles import make_profile
from fedorch.core.membership.swim_table import (
    TRANSITIONS,
    Age,
    Outcome,
    Standing,
    transition,
)
from fedorch.core.membership.swim_types import (
    Ack,
    Claim,
    ClaimBody,
    ClaimKind,
    EventKind,
    Gossip,
    LocalProtocolError,
    MemberState,
    Ping,
    PushPull,
    RemoteProtocolError,
    sign_claim,
)
from fedorch.sim.membership import HmacKeyring
from hypothesis import given, settings
from hypothesis import strategies as st

NAMES = ["a", "b", "c"]


def make_member(name: str, keyring: HmacKeyring, now: float = 0.0, **kw) -> Swim:
    return Swim(name, f"{name}:1", make_profile("lan", **kw), keyring.signer_for(name),
                keyring.verifier_for(name), random.Random(name), now)


def alive(keyring: HmacKeyring, name: str, incarnation: int, record: bytes = b"") -> Claim:
    body = ClaimBody(ClaimKind.ALIVE, name, incarnation, name, f"{name}:1",
                     1 if record else 0, record)
    return sign_claim(body, name, keyring.signer_for(name))


def left(keyring: HmacKeyring, name: str, incarnation: int) -> Claim:
    return sign_claim(ClaimBody(ClaimKind.LEFT, name, incarnation, name), name,
                      keyring.signer_for(name))


def test_every_standing_and_kind_has_a_rule():
    for standing in Standing:
        for kind in ClaimKind:
            assert (standing, kind) in TRANSITIONS


@pytest.mark.parametrize("standing", list(Standing))
@pytest.mark.parametrize("kind", list(ClaimKind))
def test_older_claims_never_change_anything(standing, kind):
    assert transition(standing, kind, Age.OLDER) is Outcome.IGNORE


@pytest.mark.parametrize("standing, kind", [
    (Standing.LEFT, ClaimKind.ALIVE),
    (Standing.ALIVE, ClaimKind.LEFT),
])
def test_contradictory_self_signed_claims_at_one_incarnation_are_illegal(standing, kind):
    with pytest.raises(RemoteProtocolError):
        transition(standing, kind, Age.SAME)
    assert transition(standing, kind, Age.NEWER) is not Outcome.ILLEGAL


def test_only_a_newer_alive_claim_undoes_death_or_leave():
    for standing in (Standing.DEAD, Standing.LEFT):
        for kind in (ClaimKind.SUSPECT,):
            assert transition(standing, kind, Age.NEWER) is Outcome.IGNORE
        assert transition(standing, ClaimKind.ALIVE, Age.NEWER) is Outcome.BECOME_ALIVE
    assert transition(Standing.DEAD, ClaimKind.ALIVE, Age.SAME) is Outcome.IGNORE


def test_core_counts_an_illegal_pair_and_keeps_state():
    keyring = HmacKeyring(NAMES)
    a = make_member("a", keyring)
    a.handle_message(0.1, "b:1", Gossip("b", (alive(keyring, "b", 2), left(keyring, "b", 3))))
    assert a.member("b").state is MemberState.LEFT
    # ALIVE signed by b at the incarnation it left with: b contradicts itself.
    a.handle_message(0.2, "b:1", Gossip("b", (alive(keyring, "b", 3),)))
    assert a.member("b").state is MemberState.LEFT
    assert a.stats["invalid_claims"] == 1
    rejected = [e for e in a.events() if e.kind is EventKind.INPUT_REJECTED]
    assert len(rejected) == 1 and "same incarnation" in rejected[0].detail


def test_equivocation_is_refused():
    keyring = HmacKeyring(NAMES)
    a = make_member("a", keyring)
    a.handle_message(0.1, "b:1", Gossip("b", (alive(keyring, "b", 4, b"one"),)))
    a.handle_message(0.2, "b:1", Gossip("b", (alive(keyring, "b", 4, b"two"),)))
    assert a.member("b").record == b"one"
    assert a.stats["invalid_claims"] == 1


def test_claim_body_round_trip_and_rejections():
    body = ClaimBody(ClaimKind.ALIVE, "eu-west", 7, "eu-west", "10.0.0.1:7101", 3, b"\x00rec")
    assert ClaimBody.decode(body.encode()) == body
    raw = body.encode()
    for bad in (raw[:-1], raw + b"x", b"\x02" + raw[1:], raw[:1] + b"\x09" + raw[2:]):
        with pytest.raises(RemoteProtocolError):
            ClaimBody.decode(bad)
    for invalid in (
        ClaimBody(ClaimKind.ALIVE, "a", 1, "b", "a:1"),  # alive signed by another
        ClaimBody(ClaimKind.SUSPECT, "a", 1, "a"),  # self-accusation
        ClaimBody(ClaimKind.DEAD, "a", 1, "b", "a:1"),  # dead carrying an address
        ClaimBody(ClaimKind.ALIVE, "a", 1, "a", ""),  # alive without address
    ):
        with pytest.raises(RemoteProtocolError):
            ClaimBody.decode(invalid.encode())


def test_caller_misuse_raises_local_protocol_error():
    keyring = HmacKeyring(NAMES)
    a = make_member("a", keyring, now=10.0)
    with pytest.raises(LocalProtocolError):
        a.handle_timer(9.0)  # time went backwards
    with pytest.raises(LocalProtocolError):
        a.handle_message(11.0, "b:1", "not a message")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        a.publish_record(11.0, b"x" * (a.profile.max_record_bytes + 1))
    with pytest.raises(LocalProtocolError):
        a.publish_record(11.0, "text")  # type: ignore[arg-type]
    a.leave(12.0)
    with pytest.raises(LocalProtocolError):
        a.join(12.0, ["b:1"])
    with pytest.raises(LocalProtocolError):
        a.publish_record(12.0, b"late")


def test_misdirected_ping_is_dropped_without_reply():
    keyring = HmacKeyring(NAMES)
    a = make_member("a", keyring)
    a.datagrams_to_send()
    a.handle_message(0.1, "b:1", Ping(1, "b", "c"))
    assert a.datagrams_to_send() == []
    assert a.stats["invalid_messages"] == 1


_text = st.text(max_size=12)
_claims = st.lists(st.builds(Claim, _text, st.binary(max_size=80), st.binary(max_size=20)),
                   max_size=4).map(tuple)
_messages = st.one_of(
    st.builds(Ping, st.integers(-5, 2**70), _text, _text, _claims),
    st.builds(Ack, st.integers(-5, 2**70), _text, _claims),
    st.builds(Gossip, _text, _claims),
    st.builds(PushPull, _text, st.booleans(), _claims),
)


@settings(max_examples=300, deadline=None)
@given(msgs=st.lists(_messages, min_size=1, max_size=5))
def test_garbage_from_peers_never_crashes_and_changes_nothing(msgs):
    keyring = HmacKeyring(NAMES)
    a = make_member("a", keyring)
    for i, msg in enumerate(msgs):
        a.handle_message(0.1 + i, "x:1", msg)
        a.handle_timer(0.1 + i)
    assert [m.name for m in a.members()] == ["a"]
    assert a.incarnation == 0
