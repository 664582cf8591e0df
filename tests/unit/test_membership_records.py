"""The membership shell's parsed-record cache never shows one record for another."""

from __future__ import annotations

from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.membership import Membership


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
