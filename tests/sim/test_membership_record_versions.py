"""Record versions are monotonic across a member's lives: a restarted member's new
record replaces its old one everywhere, and is announced as an update."""

from __future__ import annotations

import random

from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_profiles import make_profile
from fedorch.core.membership.swim_types import EventKind, Gossip, PushPull
from fedorch.sim.membership import HmacKeyring

KEYRING = HmacKeyring(["a", "b"])


def _member(name: str, incarnation: int, now: float = 0.0) -> Swim:
    return Swim(name, f"{name}:1", make_profile("lan"), KEYRING.signer_for(name),
                KEYRING.verifier_for(name), random.Random(name), now, incarnation=incarnation)


def _hear(observer: Swim, speaker: Swim, now: float) -> list:
    observer.handle_message(now, f"{speaker.name}:1", Gossip(speaker.name, (speaker.own_claim,)))
    return observer.events()


def test_versions_grow_within_a_life() -> None:
    b = _member("b", incarnation=100)
    versions = [b.publish_record(1.0 + i, f"labels: {i}".encode()) for i in range(3)]
    assert versions == sorted(set(versions)) and versions[0] > 0
    assert b.publish_record(5.0, b"labels: 2") == versions[-1]  # unchanged: same version


def test_a_restarted_members_new_record_replaces_the_old_one() -> None:
    a = _member("a", incarnation=1)
    first = _member("b", incarnation=1_000)
    for i in range(5):  # an earlier life published often: its version went up
        old_version = first.publish_record(1.0 + i, f"rack: r{i}".encode())
    a.handle_message(6.0, "b:1", PushPull("b", False, (first.own_claim,)))
    a.events()
    assert a.member("b").record == b"rack: r4"

    # The new life starts above any incarnation the old one used (the shell passes the
    # larger of its stored counter + 1 and the wall clock) and publishes once.
    second = _member("b", incarnation=2_000, now=10.0)
    new_version = second.publish_record(10.0, b"rack: new")
    assert new_version > old_version

    events = _hear(a, second, 11.0)
    view = a.member("b")
    assert view.record == b"rack: new" and view.record_version == new_version
    assert any(e.kind is EventKind.RECORD_UPDATED and e.name == "b"
               and e.record_version == new_version for e in events)

    # The old life's claim, replayed late, changes nothing.
    _hear(a, first, 12.0)
    assert a.member("b").record == b"rack: new"


def test_a_record_given_at_start_has_a_version_from_the_incarnation() -> None:
    b = Swim("b", "b:1", make_profile("lan"), KEYRING.signer_for("b"),
             KEYRING.verifier_for("b"), random.Random(1), 0.0, record=b"x", incarnation=77)
    assert b.own_claim.parsed.record_version == 77
    assert b.publish_record(1.0, b"y") > 77
