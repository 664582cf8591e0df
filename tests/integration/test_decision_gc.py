"""Presumed abort's rule for the coordinator's log, on real agents: a COMMIT record is
kept until every participant has acknowledged it, then its certificate is dropped; the
fact that the round committed stays, so no later query or restart can turn it into an
ABORT. Run for both commit protocols."""

from __future__ import annotations

import pytest

from tests.integration.federation import (
    TEST_TIMINGS,
    Federation,
    running_federation,
    state_name,
    wait_for,
)

pytestmark = pytest.mark.integration

def _spec(name: str, first: str) -> str:
    """Step a (capability `first`) on p1, then step b on p2."""
    return f"""
name: {name}
steps:
  - {{id: a, capability: {first}, constraints: {{domains: [p1]}}}}
  - {{id: b, capability: gc.work, constraints: {{domains: [p2]}}, needs: [a]}}
"""


SPEC = _spec("collected", "gc.work")
FAILING = _spec("failing", "gc.fail")  # a fails, so b is skipped and never runs


def _domains(commit: str) -> dict[str, dict]:
    work = [{"name": "gc.work", "capacity": 4, "executor": {"type": "builtin", "name": "echo"}},
            {"name": "gc.fail", "capacity": 4, "executor": {"type": "builtin", "name": "fail"}}]
    return {name: {"capabilities": work if name != "c" else [],
                   "negotiation": {**TEST_TIMINGS["negotiation"], "commit": commit}}
            for name in ("c", "p1", "p2")}


def _decisions(fed: Federation, wid: str) -> list[tuple[int, str, bool]]:
    """Coordinator c's decision of each round of `wid`, as (round, outcome, whether its
    COMMIT certificate is still kept), from node.db: its decision records (each kept
    with its certificate until collected) and the workflow's row, which still says the
    round committed once its record is gone."""
    records = {k[1]: v for k, v in fed.node_table("c", "records").items() if k[0] == wid}
    out = [(r, "COMMIT" if v.commit else "ABORT", True) for r, v in records.items()]
    row = fed.node_table("c", "rows").get(wid)
    if row is not None and row.committed and row.round not in records:
        out.append((row.round, "COMMIT", False))
    return sorted(out)


@pytest.fixture(scope="module", params=["paxos", "2pc"])
def federation(request, tmp_path_factory):
    """One federation per commit protocol for the tests that each follow a workflow of
    their own (by its id) and leave every agent running."""
    workdir = tmp_path_factory.mktemp(f"gc-{request.param}")
    with running_federation(workdir, _domains(request.param)) as fed:
        yield fed


@pytest.fixture
async def fed(federation):
    """The module's federation, its gRPC channels bound to this test's event loop."""
    yield federation
    await federation.close_channels()


async def test_commit_certificate_is_collected_once_everyone_has_it(fed):
    wid = await fed.submit("c", SPEC)
    status = await fed.wait_state("c", wid)
    assert state_name(status) == "SUCCEEDED", status

    def decisions() -> list[tuple[int, str, bool]]:
        return _decisions(fed, wid)

    async def collected() -> bool:
        return decisions() == [(1, "COMMIT", False)]

    await wait_for(collected, 30, f"the COMMIT certificate of {wid} to be collected")
    assert fed.metric("c", "fedorch_decision_records_collected_total") >= 1
    # After a restart the workflow is still SUCCEEDED, with no ABORT written. (A query
    # about a collected COMMIT is answered FORGOTTEN, never ABORT, by the coordinator
    # core: tests/unit/core/test_negotiation_cores.py.)
    fed.stop("c")
    await fed.start("c")
    await fed.wait_converged()
    assert state_name(await fed.status("c", wid)) == "SUCCEEDED"
    assert decisions() == [(1, "COMMIT", False)]


async def test_a_participant_whose_steps_never_ran_still_lets_the_certificate_go(fed):
    """p1's step fails, so p2's is skipped and p2 never reports a result: its
    acknowledgement of the COMMIT (a DecisionAck, or its answer to the COMMIT notice)
    still reaches the coordinator after the workflow ended, and the record goes."""
    wid = await fed.submit("c", FAILING)
    status = await fed.wait_state("c", wid)
    assert state_name(status) == "FAILED", status

    async def collected() -> bool:
        return _decisions(fed, wid) == [(1, "COMMIT", False)]

    await wait_for(collected, 30, f"the COMMIT certificate of {wid} to be collected")
