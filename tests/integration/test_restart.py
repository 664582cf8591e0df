"""Agents restarted from their data dirs: committed work carries on, undecided work aborts."""

from __future__ import annotations

import os
import signal

import pytest
import yaml
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.conftest import DOMAINS
from tests.integration.federation import (
    running_federation,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration


# Restarts here are quick and must not be taken for losses: a long suspicion (30 s)
# keeps a killed agent from being declared DEAD (which fails its started steps at the
# coordinator: tests/integration/test_domain_loss.py) before it is back.
PATIENT = {name: {**body, "gossip": {"profile": "local", "tuning": {"suspicion_alpha": 60}}}
           for name, body in DOMAINS.items()}


@pytest.fixture
async def fresh(tmp_path):
    async with started_federation(tmp_path, PATIENT) as fed:
        yield fed


async def _local_step_state(fed, domain, wid, step):
    try:
        status = await fed.client(domain).GetWorkflow(
            client_pb2.GetWorkflowRequest(id=wid, local_only=True), timeout=5)
    except Exception:
        return None
    return step_states(status)[step]


async def _held(fed, domain: str) -> int:
    reply = await fed.client(domain).ListMembers(client_pb2.ListMembersRequest(), timeout=5)
    me = next(m for m in reply.members if m.self)
    return sum(c.capacity - c.available for c in me.capabilities)


SLEEPY = """
name: sleepy
steps:
  - id: nap
    capability: test.sleep
    params: {seconds: 1.5}
    retries: 1
    idempotent: true  # an interrupted attempt may run again
    constraints: {domains: [partner]}
"""


async def _wait_running_at_partner(fed, wid):
    async def running_at_partner():
        s = await _local_step_state(fed, "partner", wid, "nap")
        return s is not None and s[0] == "RUNNING"

    await wait_for(running_at_partner, 20, "nap to run at partner")


async def test_participant_killed_mid_step_retries_after_restart(fresh):
    wid = await fresh.submit("eu-west", SLEEPY)
    await _wait_running_at_partner(fresh, wid)
    fresh.kill("partner")
    await fresh.close_channels()
    await fresh.start("partner")
    status = await fresh.wait_state("eu-west", wid)
    assert state_name(status) == "SUCCEEDED", status
    # The interrupted attempt counts; the retry is attempt 2, never attempt 1 again.
    assert step_states(status)["nap"] == ("SUCCEEDED", "partner", 2)


async def test_coordinator_killed_after_commit_finishes_after_restart(fresh):
    wid = await fresh.submit("eu-west", SLEEPY)
    await _wait_running_at_partner(fresh, wid)
    fresh.kill("eu-west")
    await fresh.close_channels()
    await fresh.start("eu-west")
    status = await fresh.wait_state("eu-west", wid)
    assert state_name(status) == "SUCCEEDED", status
    assert step_states(status)["nap"] == ("SUCCEEDED", "partner", 1)
    # The restarted agent rejoined: the others see it alive again.
    await fresh.wait_converged()


async def test_coordinator_crash_before_decision_is_presumed_abort(fresh):
    partner = fresh.procs["partner"]
    os.kill(partner.pid, signal.SIGSTOP)  # partner will not vote in time
    wid = await fresh.submit("eu-west", SLEEPY)

    async def round_one_on_disk():
        s = await fresh.status("eu-west", wid)
        return state_name(s) == "NEGOTIATING" and s.rounds == 1

    await wait_for(round_one_on_disk, 10, "round 1 to start")
    fresh.kill("eu-west")
    os.kill(partner.pid, signal.SIGCONT)
    await fresh.close_channels()
    await fresh.start("eu-west")
    status = await fresh.wait_state("eu-west", wid)
    assert state_name(status) == "ABORTED", status
    assert "presumed abort" in status.reason

    async def partner_holds_nothing():
        return await _held(fresh, "partner") == 0

    # Whatever partner reserved (if the PREPARE reached it) ends: it asks, hears ABORT.
    await wait_for(partner_holds_nothing, 30, "partner to release its reservation")


async def test_graceful_restart_keeps_history_and_serves(fresh):
    wid = await fresh.submit("eu-west", SLEEPY.replace("1.5", "0.1"))
    await fresh.wait_state("eu-west", wid)
    proc = fresh.procs["eu-west"]
    fresh.stop("eu-west")  # SIGTERM: drain and close, exit 0
    assert proc.popen.returncode == 0
    assert "shutting down" in proc.log_path.read_text()
    await fresh.close_channels()
    await fresh.start("eu-west")
    status = await fresh.status("eu-west", wid)
    assert state_name(status) == "SUCCEEDED", status
    await fresh.wait_converged()
    again = await fresh.submit("eu-west", SLEEPY.replace("1.5", "0.1"))
    assert state_name(await fresh.wait_state("eu-west", again)) == "SUCCEEDED"


@pytest.fixture(scope="module")
def reloading(tmp_path_factory):
    """eu-west and partner (the SIGHUP tests need no third agent), shared by the tests
    that reload partner: none of them restarts or stops an agent. Yields the federation
    and partner's config file as written at the start."""
    domains = {name: PATIENT[name] for name in ("eu-west", "partner")}
    with running_federation(tmp_path_factory.mktemp("reload"), domains) as fed:
        yield fed, fed.configs["partner"].read_text()


@pytest.fixture
async def reload_fed(reloading):
    """The shared federation with partner's config file as it was at the start (what a
    test reloads is its own change alone), every slot free again, and gRPC channels
    bound to this test's event loop."""
    fed, original = reloading
    fed.configs["partner"].write_text(original)
    await fed.wait_capacity_free()
    yield fed
    await fed.close_channels()


async def test_sighup_reload_publishes_a_new_capability(reload_fed):
    fresh = reload_fed
    config = yaml.safe_load(fresh.configs["partner"].read_text())
    config["capabilities"].append(
        {"name": "bench.fresh", "capacity": 3, "executor": {"type": "builtin", "name": "echo"}})
    config["listen"] = "127.0.0.1:1"  # needs a restart: logged, not applied
    config["log_level"] = "warning"  # applied at once: the reload's own info line is not logged
    fresh.configs["partner"].write_text(yaml.safe_dump(config))
    os.kill(fresh.procs["partner"].pid, signal.SIGHUP)

    async def eu_west_sees_it():
        reply = await fresh.client("eu-west").ListMembers(client_pb2.ListMembersRequest(),
                                                          timeout=5)
        partner = next(m for m in reply.members if m.domain == "partner")
        return any(c.name == "bench.fresh" and c.capacity == 3 for c in partner.capabilities)

    await wait_for(eu_west_sees_it, 20, "the new capability to reach eu-west")
    wid = await fresh.submit("eu-west", """
name: fresh
steps:
  - id: a
    capability: bench.fresh
""")
    assert state_name(await fresh.wait_state("eu-west", wid)) == "SUCCEEDED"
    log = fresh.procs["partner"].log_path.read_text()
    assert "reload: listen, advertise changed" in log
    assert "reload: log level info -> warning" in log
    # Logged by the reload after the level changed, at info: not written any more.
    assert "configuration reloaded" not in log.split("reload: log level info -> warning")[1]


async def test_sighup_with_a_broken_config_keeps_the_running_one(reload_fed):
    fresh = reload_fed
    fresh.configs["partner"].write_text("domain: [not, a, name]\n")
    os.kill(fresh.procs["partner"].pid, signal.SIGHUP)

    async def refused_in_log():
        return "reload refused" in fresh.procs["partner"].log_path.read_text()

    await wait_for(refused_in_log, 10, "the reload to be refused")
    wid = await fresh.submit("eu-west", SLEEPY.replace("1.5", "0.1"))
    assert state_name(await fresh.wait_state("eu-west", wid)) == "SUCCEEDED"
