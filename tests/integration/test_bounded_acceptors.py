"""Paxos Commit with a bounded acceptor set on real agents (`negotiation.max_acceptors`).

Seven agents: c coordinates and holds no step, p1..p6 each run one step. With
`max_acceptors: 3` every round's acceptors are c and two of the six participants (which
two the workflow id fixes); the other four are learners: they learn the decision from the
acceptors' Accepted, or in doubt from the acceptors' answers.

Timing is made deterministic with signals, never with sleeps: the learner is SIGSTOPped
so that it votes YES only once the coordinator is stopped, and is stopped again before
the COMMIT can reach it; it comes back, in doubt, only after the coordinator is dead.
A first workflow sets up every channel the second one needs before anyone is frozen.
"""

from __future__ import annotations

import json
import signal

import grpc
import pytest
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration import node_tables
from tests.integration.federation import (
    TEST_TIMINGS,
    Federation,
    started_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

LEASE_S = 10  # see _domains
PARTICIPANTS = [f"p{i}" for i in range(1, 7)]
SPEC = "name: wide\nsteps:\n" + "".join(
    f"  - id: s{i}\n    capability: wide.work\n    constraints: {{domains: [p{i}]}}\n"
    for i in range(1, 7))


def _domains() -> dict[str, dict]:
    # A long prepare timeout: the coordinator must still be waiting for the learner's vote
    # while it is stopped, however slow the machine is.
    # Leases long enough that the participants that voted do not recover without the
    # coordinator while it is stopped for the learner's vote (4 s did not last on a
    # loaded host: the round was ABORTED), and a loss grace long enough that the learner,
    # frozen while the others vote, is never taken as lost (nothing here needs a DEAD
    # verdict acted on: the learner recovers on its lease, and a successor takes over
    # after `takeover_after_s` of the coordinator not ALIVE).
    timings = {**TEST_TIMINGS["negotiation"], "prepare_timeout_s": 30, "commit": "paxos",
               "max_acceptors": 3, "lease_s": LEASE_S}
    work = [{"name": "wide.work", "capacity": 2,
             "executor": {"type": "builtin", "name": "echo"}}]
    other = [{"name": "wide.other", "capacity": 1,
              "executor": {"type": "builtin", "name": "echo"}}]
    return {name: {"capabilities": work if name.startswith("p") else other,
                   "gossip": {"profile": "local", "tuning": {"loss_grace": 20}},
                   "negotiation": timings} for name in ["c", *PARTICIPANTS]}


def _acceptors(fed: Federation, wid: str) -> list[str]:
    """The round's acceptors, as the coordinator wrote them before any PREPARE left
    (its workflow row, in either engine's tables)."""
    rows = node_tables.node_table(fed, "c", "rows")
    if rows is not None:
        return list(rows[wid].acceptors) if wid in rows else []
    rows = fed.rows("c", "SELECT acceptors FROM workflows WHERE id=?", (wid,))
    return json.loads(rows[0][0]) if rows else []


_learned = node_tables.learned
_step_runs = node_tables.step_runs


def _acceptor_records(fed: Federation, name: str, wid: str) -> list:
    """The acceptor records of `wid`'s rounds at `name`, either engine."""
    records = node_tables.node_table(fed, name, "acceptor")
    if records is not None:
        return [key for key in records if key[0] == wid]
    return fed.rows(name, "SELECT * FROM acceptor_records WHERE workflow_id=?", (wid,))


async def _prepared(fed: Federation, name: str, wid: str) -> bool:
    return node_tables.prepared(fed, name, wid)


async def _step_succeeded(fed: Federation, name: str, wid: str, step: str) -> bool:
    try:
        status = await fed.client(name).GetWorkflow(
            client_pb2.GetWorkflowRequest(id=wid, local_only=True), timeout=5)
    except grpc.aio.AioRpcError:
        return False
    return step_states(status)[step][0] == "SUCCEEDED"


async def test_a_six_domain_workflow_with_three_acceptors_succeeds(tmp_path):
    async with started_federation(tmp_path, _domains()) as fed:
        wid = await fed.submit("c", SPEC)
        status = await fed.wait_state("c", wid, deadline_s=90)
        assert state_name(status) == "SUCCEEDED", status.reason
        acceptors = _acceptors(fed, wid)
        assert len(acceptors) == 3 and "c" in acceptors
        learners = [p for p in PARTICIPANTS if p not in acceptors]
        assert len(learners) == 4
        # Every participant, acceptor or not, learned the COMMIT and ran its step once.
        for i, p in enumerate(PARTICIPANTS, start=1):
            assert _learned(fed, p, wid) == [(1, "COMMIT")], p
            assert _step_runs(fed, p, wid) == [(f"s{i}", 1)], p
        # A learner accepts nothing: no acceptor record of the round anywhere but at the
        # acceptors.
        for p in learners:
            assert _acceptor_records(fed, p, wid) == [], p


async def test_a_learner_in_doubt_learns_the_commit_after_the_coordinator_is_killed(
        tmp_path):
    async with started_federation(tmp_path, _domains()) as fed:
        # One workflow first, so that the coordinator's channel to every participant is
        # set up before any of them is frozen: a channel opened to a frozen agent needs
        # both ends running to finish its handshake, and below the coordinator is stopped
        # exactly while the learner runs (a full run once saw the learner never receive
        # its PREPARE for that reason).
        warm_up = await fed.submit("c", SPEC)
        status = await fed.wait_state("c", warm_up, deadline_s=90)
        assert state_name(status) == "SUCCEEDED", status.reason
        # ...and with nothing of it still on its way to a participant: a call to a frozen
        # participant that is still out holds back the next ones to it (one call out per
        # peer), and a batch is answered only once all of its items are done.
        async def warm_up_over_everywhere() -> bool:
            for p in PARTICIPANTS:
                local = await fed.local_status(p, warm_up)
                if local is None or state_name(local) != "SUCCEEDED":
                    return False
            return True

        await wait_for(warm_up_over_everywhere, 30, "every participant to see the first end")
        await fed.wait_capacity_free()
        for p in PARTICIPANTS:  # nobody votes before we know who the acceptors are
            fed.signal(p, signal.SIGSTOP)
        wid = await fed.submit("c", SPEC)
        async def round_written():
            return _acceptors(fed, wid)

        acceptors = await wait_for(round_written, 20, "the coordinator's round record")
        learner = next(p for p in PARTICIPANTS if p not in acceptors)
        others = [p for p in PARTICIPANTS if p != learner]
        for p in others:
            fed.signal(p, signal.SIGCONT)
        for p in others:
            await wait_for(lambda p=p: _prepared(fed, p, wid), 30, f"{p} to vote YES")
        # The learner votes into a stopped coordinator, then stops before the COMMIT.
        fed.signal("c", signal.SIGSTOP)
        fed.signal(learner, signal.SIGCONT)
        await wait_for(lambda: _prepared(fed, learner, wid), 30, f"{learner} to vote YES")
        # The reservation is on disk before the vote is sent: a learner stopped right then
        # would keep its vote, and the coordinator would abort the round once its patience
        # ran out (a full run saw this). A status call answered by the learner after the
        # reservation is written shows its event loop went on past the vote's reply.
        await wait_for(lambda: fed.answers_after(learner, wid), 30,
                       f"{learner} to answer a status call after its vote")
        fed.signal(learner, signal.SIGSTOP)
        fed.signal("c", signal.SIGCONT)
        # COMMIT chosen: an acceptor that is a participant learned it and ran its step.
        witness = next(p for p in acceptors if p != "c")
        step = f"s{witness[1:]}"
        await wait_for(lambda: _step_succeeded(fed, witness, wid, step), 30,
                       f"{witness} to learn the COMMIT and run {step}")
        # The coordinator dies for good; so does whatever was on its way to the learner.
        fed.kill("c")
        fed.kill(learner)
        assert node_tables.prepared(fed, learner, wid)
        assert _learned(fed, learner, wid) == []
        await fed.close_channels()
        await fed.start(learner)
        learner_step = f"s{learner[1:]}"
        await wait_for(lambda: _step_succeeded(fed, learner, wid, learner_step),
                       6 * LEASE_S, f"{learner} to learn the COMMIT and run {learner_step}")
        assert _learned(fed, learner, wid) == [(1, "COMMIT")]
        assert _step_runs(fed, learner, wid) == [(learner_step, 1)]
        # It never became an acceptor of the round: it proposed nothing and accepted nothing.
        assert _acceptor_records(fed, learner, wid) == []
