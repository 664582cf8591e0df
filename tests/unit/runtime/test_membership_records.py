"""Membership's parsed-record cache never shows one record for another."""

from __future__ import annotations

from dataclasses import replace

from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.membership import JOIN_PATIENCE_S, Membership


def _raw(rack: str) -> bytes:
    return peer_pb2.DomainRecord(domain="beta", labels={"rack": rack}).SerializeToString(
        deterministic=True)


async def test_same_version_other_bytes_is_parsed_again(agent) -> None:
    m = Membership(agent, incarnation=5)
    old = m._record("beta", 1, _raw("r1"))
    assert dict(old.labels) == {"rack": "r1"}
    assert m._record("beta", 1, _raw("r1")) is old  # cached
    # Another life of beta whose record carries the same version: its labels, not r1's.
    assert dict(m._record("beta", 1, _raw("r2")).labels) == {"rack": "r2"}


async def test_no_seeds_means_ready_once_the_record_is_out(agent) -> None:
    m = Membership(agent, incarnation=5)
    assert not m.rejoined()  # its own record is not out yet
    m.publish(agent.current_record(), force=True)
    assert m.rejoined()


async def test_silent_seeds_hold_work_back_until_the_patience_ends(agent, monkeypatch) -> None:
    agent.config.seeds.append("127.0.0.1:2")
    now = [100.0]
    monkeypatch.setattr(agent, "now", lambda: now[0])
    m = Membership(agent, incarnation=5)
    m.publish(agent.current_record(), force=True)
    assert not m.rejoined()
    now[0] += JOIN_PATIENCE_S - 0.5
    assert not m.rejoined()
    now[0] += 1.0
    assert m.rejoined()


async def test_get_is_the_member_the_list_shows(agent) -> None:
    m = Membership(agent, incarnation=5)
    m.publish(agent.current_record(), force=True)
    listed = m.members()
    assert [x.domain for x in listed] == [agent.domain]
    # The same member (its last-heard time is converted to wall time at each call).
    assert replace(m.get(agent.domain), last_heard=None) == replace(listed[0], last_heard=None)
    assert m.get(agent.domain).record.domain == agent.domain
    assert m.get("nobody") is None
