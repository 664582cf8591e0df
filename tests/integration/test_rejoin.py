"""A restarted agent: its new record replaces the old one at its peers promptly, and it
takes submissions only once it has rejoined (never aborting them for knowing no one)."""

from __future__ import annotations

import grpc
import pytest
import yaml
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import started_federation, state_name, step_states, wait_for

pytestmark = pytest.mark.integration

DOMAINS = {
    name: {"labels": {"rack": "r1"}, "capabilities": [
        {"name": "test.echo", "capacity": 4, "executor": {"type": "builtin", "name": "echo"}}]}
    for name in ("alpha", "beta", "gamma")
}


@pytest.fixture
async def fed(tmp_path):
    async with started_federation(tmp_path, DOMAINS) as fed:
        yield fed


async def _member(fed, observer: str, subject: str) -> client_pb2.MemberInfo | None:
    reply = await fed.client(observer).ListMembers(client_pb2.ListMembersRequest(), timeout=5)
    return next((m for m in reply.members if m.domain == subject), None)


async def _labels_seen(fed, observer: str, subject: str) -> dict[str, str] | None:
    member = await _member(fed, observer, subject)
    return dict(member.labels) if member is not None and member.state == 1 else None


def _relabel(fed, name: str, labels: dict[str, str]) -> None:
    config = yaml.safe_load(fed.configs[name].read_text())
    config["labels"] = labels
    fed.configs[name].write_text(yaml.safe_dump(config, sort_keys=False))


async def test_a_restarted_agents_new_labels_reach_its_peers(fed):
    assert await _labels_seen(fed, "alpha", "beta") == {"rack": "r1"}
    fed.kill("beta")
    await fed.close_channels()
    _relabel(fed, "beta", {"rack": "r2"})
    await fed.start("beta")

    async def relabelled():
        return all([await _labels_seen(fed, o, "beta") == {"rack": "r2"}
                    for o in ("alpha", "gamma")])

    await wait_for(relabelled, 15, "alpha and gamma to see beta's new labels")
    wid = await fed.submit("alpha", """
name: on-r2
steps:
  - id: s
    capability: test.echo
    constraints: {labels: {rack: r2}}
""")
    status = await fed.wait_state("alpha", wid)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status)["s"][1] == "beta"


async def test_a_restarted_agent_takes_work_only_once_it_has_rejoined(fed):
    spec = """
name: elsewhere
steps:
  - id: s
    capability: test.echo
    constraints: {domains: [gamma]}
"""
    fed.kill("beta")
    await fed.close_channels()

    async def dead_at_gamma():
        member = await _member(fed, "gamma", "beta")
        return member is not None and member.state == client_pb2.MEMBER_STATE_DEAD

    # Down long enough for gamma to give up on it (as a slow restart is): gamma's
    # channel to beta has backed off its dials to the longest by then, and the vote it
    # sends back to beta's first round must not wait for that backoff to end.
    await wait_for(dead_at_gamma, 30, "gamma to see beta DEAD")
    await fed.start("beta")
    accepted: list[str] = []
    refusals: list[str] = []

    async def one_accepted():
        try:
            accepted.append(await fed.submit("beta", spec))
        except grpc.aio.AioRpcError as e:
            assert e.code() == grpc.StatusCode.UNAVAILABLE, e
            assert "has not rejoined its federation yet" in e.details()
            assert ("retry-after-ms", "1000") in tuple(e.trailing_metadata() or ())
            refusals.append(e.details())
            return False
        return True

    await wait_for(one_accepted, 30, "beta to take a submission", interval=0.05)
    for wid in accepted:
        status = await fed.wait_state("beta", wid)
        assert state_name(status) == "SUCCEEDED", status  # never "no members known"
