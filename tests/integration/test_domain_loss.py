"""A DEAD domain stops no workflow: its steps are resolved, and an undecided round recovers.

Real agents on 127.0.0.1. The deadlines below are behaviour bounds (the workflow
ends, the decision arrives, without waiting for the dead agent's return or a whole
lease), not speed benchmarks: each is well above what the mechanism needs on an
idle machine (DEAD after ~4 s with the `local` gossip profile) and well below what
waiting would take (the dead agent is restarted only after the check; the lease
is 30 s).
"""

from __future__ import annotations

import pathlib
import signal
import sys

import pytest

from tests.integration.durable_facts import (
    held_slots,
    learned_outcomes,
    prepared_here,
    started_attempts,
)
from tests.integration.federation import (
    TEST_TIMINGS,
    Federation,
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

NAP = pathlib.Path(__file__).parent / "steps" / "nap.py"
ECHO = {"type": "builtin", "name": "echo"}
DOMAINS = {
    "home": {"capabilities": [{"name": "test.echo", "capacity": 2, "executor": ECHO}]},
    "worker": {"capabilities": [
        {"name": "test.nap", "capacity": 2,
         "executor": {"type": "command", "argv": [sys.executable, str(NAP)]}},
    ]},
    "third": {"capabilities": [{"name": "test.echo", "capacity": 2, "executor": ECHO}]},
}
# From the kill: DEAD (~4 s), then one step-result path; far below "until it restarts".
ENDED_WITHIN_S = 30


def _spec(seconds: str, *, idempotent: bool = False, retries: int = 0) -> str:
    return f"""
name: lossy
steps:
  - id: nap
    capability: test.nap
    params: {{seconds: "{seconds}"}}
    retries: {retries}
    idempotent: {str(idempotent).lower()}
    constraints: {{domains: [worker]}}
  - id: after
    capability: test.echo
    needs: [nap]
    constraints: {{domains: [third]}}
"""


async def _kill_worker_while_napping(fed: Federation, spec: str, seconds: str) -> str:
    wid = await fed.submit("home", spec)

    async def napping():
        return len(naps_running(seconds)) == 1

    await wait_for(napping, 30, "the nap to run on worker")
    fed.kill("worker")
    await fed.close_channels()
    return wid


async def test_a_lost_domain_fails_its_started_step_naming_it_and_never_runs_it_again(
        tmp_path, seconds):
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await _kill_worker_while_napping(fed, _spec(seconds, retries=2), seconds)
        # Worker is not restarted: the workflow must end without it.
        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "FAILED", status
        steps = step_states(status)
        assert steps["nap"][:2] == ("FAILED", "worker") and steps["after"][0] == "SKIPPED"
        error = next(s.error for s in status.steps if s.id == "nap")
        assert error.startswith("domain worker was lost (DEAD) while the step ran"), error
        assert "not idempotent" in error, error
        assert "worker" in status.reason, status.reason

        async def third_knows():  # the live participant got its end notice
            s = await fed.local_status("third", wid)
            return s is not None and state_name(s) == "FAILED"

        await wait_for(third_knows, 20, "third to learn the end")
        assert state_name(await fed.status("third", wid)) == "FAILED"  # status answered

        # Back from the dead: it learns the end and runs nothing again.
        await fed.start("worker")

        async def worker_knows():
            s = await fed.local_status("worker", wid)
            return s is not None and state_name(s) == "FAILED"

        await wait_for(worker_knows, 30, "the restarted worker to learn the end")
        assert not naps_running(seconds)
        assert started_attempts(fed, "worker", wid) == [("nap", 1)]
        # Its report (interrupted, FAILED) was refused, not applied: the reason stands.
        after = await fed.status("home", wid)
        assert next(s.error for s in after.steps if s.id == "nap") == error
        assert state_name(after) == "FAILED" and after.reason == status.reason


async def test_an_idempotent_step_of_a_workflow_that_ended_meanwhile_is_not_retried(
        tmp_path, seconds):
    async with started_federation(tmp_path, DOMAINS) as fed:
        spec = _spec(seconds, idempotent=True, retries=1)
        wid = await _kill_worker_while_napping(fed, spec, seconds)
        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "FAILED", status
        error = next(s.error for s in status.steps if s.id == "nap")
        assert "domain worker was lost (DEAD)" in error, error
        # Constrained to the lost domain: no other can take it.
        assert "could not place the step again" in error, error
        assert "no eligible domain" in error, error

        # Back with an interrupted idempotent attempt and a retry left: it asks first,
        # learns the end, and does not run attempt 2.
        await fed.start("worker")

        async def worker_knows():
            s = await fed.local_status("worker", wid)
            return s is not None and state_name(s) == "FAILED"

        await wait_for(worker_knows, 30, "the restarted worker to learn the end")
        assert started_attempts(fed, "worker", wid) == [("nap", 1)]  # attempt 2 never ran
        assert held_slots(fed, "worker", wid) == []


async def test_on_domain_loss_fail_names_the_domain(tmp_path, seconds):
    spec = _spec(seconds, idempotent=True).replace(
        "    idempotent: true\n", "    idempotent: true\n    on_domain_loss: fail\n")
    async with started_federation(tmp_path, DOMAINS) as fed:
        wid = await _kill_worker_while_napping(fed, spec, seconds)
        status = await fed.wait_state("home", wid, deadline_s=ENDED_WITHIN_S)
        assert state_name(status) == "FAILED", status
        error = next(s.error for s in status.steps if s.id == "nap")
        assert error == ("domain worker was lost (DEAD) while the step ran; not placed"
                         " again: on_domain_loss: fail"), error


LEASE_S = 30


def _paxos_domains() -> dict[str, dict]:
    # A 30 s lease, as the issue measured; a long prepare timeout so that the
    # coordinator still waits for p2's vote when it is stopped.
    timings = {**TEST_TIMINGS["negotiation"], "prepare_timeout_s": 20, "lease_s": LEASE_S,
               "commit": "paxos"}
    work = [{"name": "nb.work", "capacity": 2, "executor": ECHO}]
    return {name: {"capabilities": work, "negotiation": timings}
            for name in ("c", "p1", "p2")}


PAXOS_SPEC = """
name: undecided
steps:
  - id: a
    capability: nb.work
    constraints: {domains: [p1]}
  - id: b
    capability: nb.work
    constraints: {domains: [p2]}
"""


# Setting the premise up again: see _undecided_with_both_prepared.
PREMISE_ATTEMPTS = 3


async def _prepared_within(fed: Federation, name: str, wid: str, deadline_s: float) -> bool:
    async def prepared():
        return prepared_here(fed, name, wid)

    try:
        await wait_for(prepared, deadline_s, f"{name} to vote YES")
    except AssertionError:
        return False
    return True


async def _undecided_with_both_prepared(fed: Federation) -> str:
    """A workflow whose participants p1 and p2 both voted YES while its coordinator c,
    stopped (SIGSTOP), decided nothing: the id.

    p2 is stopped first, so that c waits for its vote; once p1 voted, c is stopped and p2
    resumed, and p2 votes on the PREPARE c sent it. That PREPARE must have left c before
    c stopped, which nothing outside c shows: it may still be in c's per-peer lane, or in
    a channel reconnecting to the stopped p2. So the premise is checked (p2's YES on its
    disk) rather than assumed; when it does not hold, c resumes, ends that workflow on
    its own, and the setup starts again with a new one. A first workflow run to its end
    beforehand opens c's channels to p1 and p2: a PREPARE to a p2 stopped before c ever
    reached it waits for the channel's handshake, which a stopped p2 never answers."""
    warm = await fed.submit("c", PAXOS_SPEC)
    await fed.wait_state("c", warm, deadline_s=60)
    for _ in range(PREMISE_ATTEMPTS):
        fed.signal("p2", signal.SIGSTOP)  # the coordinator waits for its vote
        wid = await fed.submit("c", PAXOS_SPEC)
        if not await _prepared_within(fed, "p1", wid, 20):
            raise AssertionError("timed out waiting for p1 to vote YES")
        fed.signal("c", signal.SIGSTOP)  # it never reads p2's vote: nothing is decided
        fed.signal("p2", signal.SIGCONT)
        if await _prepared_within(fed, "p2", wid, 20):
            return wid
        fed.signal("c", signal.SIGCONT)  # the premise did not hold: c ends it
        await fed.wait_state("c", wid, deadline_s=60)
    raise AssertionError(f"p2 never received its PREPARE before c stopped, in"
                         f" {PREMISE_ATTEMPTS} attempts")


async def test_a_dead_coordinator_does_not_keep_its_participants_waiting_a_lease(tmp_path):
    async with started_federation(tmp_path, _paxos_domains()) as fed:
        wid = await _undecided_with_both_prepared(fed)
        fed.kill("c")  # never restarted

        def learned(p: str):
            return learned_outcomes(fed, p, wid)

        async def both_learned():
            return all(learned(p) for p in ("p1", "p2"))

        # Below the lease (30 s): only the DEAD coordinator's early recovery gets here.
        await wait_for(both_learned, LEASE_S - 8, "p1 and p2 to learn the decision")
        assert learned("p1") == learned("p2") == [(1, "ABORT")]
