"""Presumed abort's rule for the coordinator's log, on real agents: a COMMIT record is
kept until every participant has acknowledged it, then its certificate is dropped; the
fact that the round committed stays, so no later query or restart can turn it into an
ABORT. Run for both commit protocols."""

from __future__ import annotations

import signal
import time

import pytest
from fedorch.core.identity.envelope import new_nonce, seal
from fedorch.gen.fedorch.v1 import peer_pb2

from tests.integration.federation import (
    TEST_TIMINGS,
    Federation,
    running_federation,
    started_federation,
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
    COMMIT certificate is still kept), from its engine's store: agent.db's `decisions`
    rows (the certificate: the signed envelope), or node.db's decision records (each
    kept with its certificate until collected) and the workflow's row, which still says
    the round committed once its record is gone."""
    if not fed.on_node_engine("c"):
        return [(r, outcome, size > 0) for r, outcome, size in fed.rows(
            "c", "SELECT round, outcome, length(envelope) FROM decisions WHERE workflow_id=?"
            " ORDER BY round", (wid,))]
    records = {k[1]: v for k, v in fed.node_table("c", "records").items() if k[0] == wid}
    out = [(r, "COMMIT" if v.commit else "ABORT", True) for r, v in records.items()]
    row = fed.node_table("c", "rows").get(wid)
    if row is not None and row.committed and row.round not in records:
        out.append((row.round, "COMMIT", False))
    return sorted(out)


async def _ask(fed: Federation, asker: str, workflow_id: str) -> peer_pb2.DecisionAnswer:
    query = seal(fed.signer(asker), recipient="c", now_ms=int(time.time() * 1000),
                 nonce=new_nonce(),
                 decision_query=peer_pb2.DecisionQuery(workflow_id=workflow_id, round=1))
    reply = await fed.peer_call("c", "QueryDecision", query)
    return peer_pb2.Body.FromString(reply.body).decision_answer


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
    if not fed.on_node_engine("c"):
        # The shells drop the round's proposal with its certificate; the node engine
        # keeps its write-once proposal cell until retention forgets the workflow
        # (docs/architecture.md, "Not built yet in the node engine").
        assert fed.rows("c", "SELECT count(*) FROM proposals WHERE workflow_id=?",
                        (wid,)) == [(0,)]
        # A participant asking now (it has the decision) is told the workflow's end,
        # and nothing is presumed: the round stays COMMIT. Through the shells'
        # QueryDecision RPC; the node engine's coordinator core answers a query about a
        # collected COMMIT FORGOTTEN, never ABORT: tests/unit/core/
        # test_negotiation_cores.py::test_commit_is_announced_only_once_a_majority_accepted.
        answer = await _ask(fed, "p1", wid)
        assert not answer.known and answer.final_state, answer
        assert decisions() == [(1, "COMMIT", False)]

    # After a restart the workflow is still SUCCEEDED, with no ABORT written.
    fed.stop("c")
    await fed.start("c")
    await fed.wait_converged()
    assert state_name(await fed.status("c", wid)) == "SUCCEEDED"
    if not fed.on_node_engine("c"):
        answer = await _ask(fed, "p2", wid)
        assert not answer.known and answer.final_state
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


@pytest.mark.parametrize("commit", ["paxos", "2pc"])
async def test_a_participant_silent_past_the_end_is_offered_the_commit_again(tmp_path, commit):
    """p2 (its step skipped after p1's fails) votes YES and is frozen before the decision
    reaches it, until the coordinator's core has stopped waiting for its acknowledgement:
    the record is kept. Once p2 is back, the certificate sweep offers it the COMMIT
    again, p2 acknowledges it, and the certificate goes. Timing by signals: p2 is
    stopped before the submit; c is stopped while p2 votes, and p2 again before c reads
    the vote."""
    domains = _domains(commit)
    for name in domains:  # c must still wait for p2's vote after p2 was stopped
        domains[name]["negotiation"]["prepare_timeout_s"] = 20
        # ... and not take p2 as lost meanwhile: frozen for longer than a DEAD verdict
        # and its loss grace take (a loaded host slows p1's vote, which p2's freeze
        # waits for), p2 was acted on as DEAD and the round ABORTED.
        domains[name]["gossip"] = {"profile": "local", "tuning": {"suspicion_alpha": 60}}
        # The shells' certificate sweep, its offers and their metrics, and agent.db's
        # tables: the node engine's coordinator core resends the COMMIT to a participant
        # that has not acknowledged it and keeps the record until it does (tests/unit/
        # core/test_negotiation_cores.py::test_commit_is_announced_only_once_a_majority_
        # accepted, tests/unit/core/node/test_retention.py::test_the_coordinator_keeps_
        # it_while_the_commit_is_not_acknowledged).
        domains[name]["engine"] = "shells"
    domains["c"]["negotiation"]["certificate_sweep_s"] = 0.5
    async with started_federation(tmp_path, domains) as fed:
        fed.signal("p2", signal.SIGSTOP)
        wid = await fed.submit("c", FAILING)
        await wait_for(lambda: fed.prepared("p1", wid), 20, "p1 to vote YES")
        fed.signal("c", signal.SIGSTOP)
        fed.signal("p2", signal.SIGCONT)
        await wait_for(lambda: fed.prepared("p2", wid), 20, "p2 to vote YES")
        await wait_for(lambda: fed.answers_after("p2", wid), 20, "p2's vote to leave it")
        fed.signal("p2", signal.SIGSTOP)
        fed.signal("c", signal.SIGCONT)
        assert state_name(await fed.wait_state("c", wid)) == "FAILED"

        def kept() -> bool:
            return fed.rows("c", "SELECT length(envelope) > 0 FROM decisions"
                                 " WHERE workflow_id=? AND outcome='COMMIT'", (wid,)) == [(1,)]

        async def offered_in_vain() -> bool:  # only once the core has let the record go
            return fed.metric("c", "fedorch_commit_offers_total", answer="unanswered") >= 1

        await wait_for(offered_in_vain, 30, "the sweep to offer the COMMIT to frozen p2")
        assert kept(), "the certificate went while p2 could not have acknowledged it"

        fed.signal("p2", signal.SIGCONT)

        async def collected() -> bool:
            return fed.rows("c", "SELECT round, outcome, length(envelope) FROM decisions"
                                 " WHERE workflow_id=?", (wid,)) == [(1, "COMMIT", 0)]

        await wait_for(collected, 30, f"the COMMIT certificate of {wid} to be collected")
        assert fed.metric("c", "fedorch_commit_offers_total", answer="acknowledged") >= 1
        assert fed.metric("c", "fedorch_commit_certificates_kept") == 0
        # The late COMMIT brought nothing back to life at p2: its step never ran.
        assert fed.rows("p2", "SELECT * FROM step_runs WHERE workflow_id=?", (wid,)) == []
