"""Chaos on real agents: 4 agents, 200 concurrent workflows, SIGKILLs at random moments.

The coordinator of in-flight workflows and a participant are killed (SIGKILL,
no shutdown path) at seeded random moments and restarted from their data
dirs. Afterwards, with every agent stopped, their SQLite files are read and
the invariants of ARCHITECTURE §4 checked: one decision per workflow
everywhere, no step attempt run twice or outside its domain, no reservation
left, every committed workflow terminal.
"""

from __future__ import annotations

import asyncio
import random
import time

import grpc
import pytest
import yaml
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2

from tests.integration.federation import TERMINAL, Federation, state_name
from tests.integration.node_tables import node_table

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

NAMES = ["k1", "k2", "k3", "k4"]
CAPABILITIES = [
    {"name": "chaos.noop", "capacity": 1000, "executor": {"type": "builtin", "name": "echo"}},
    {"name": "chaos.sleep", "capacity": 1000, "executor": {"type": "builtin", "name": "sleep"}},
]
WORKFLOWS = 200
SEED = 20261125  # the workload and the kill moments; process timing adds the rest


def _spec(rng: random.Random, i: int):
    steps = []
    for j in range(rng.randint(1, 3)):
        step = {"id": f"s{j}", "constraints": {"domains": [rng.choice(NAMES)]}}
        if rng.random() < 0.4:
            step.update(capability="chaos.sleep", params={"seconds": rng.uniform(0.05, 0.4)},
                        retries=1)
        else:
            step["capability"] = "chaos.noop"
        if j:
            step["needs"] = [f"s{j - 1}"]
        steps.append(step)
    return parse_spec_text(yaml.safe_dump({"name": f"chaos-{i}", "steps": steps}), "chaos")


async def _submit_all(fed: Federation, rng: random.Random) -> dict[str, str]:
    """Submit every workflow to a random live coordinator; returns id -> coordinator."""
    owners: dict[str, str] = {}

    async def one(i: int) -> None:
        spec = _spec(rng, i)
        for _ in range(100):
            coordinator = rng.choice(sorted(fed.procs))
            try:
                reply = await fed.client(coordinator).Submit(
                    client_pb2.SubmitRequest(spec=spec, request_id=f"chaos-{i}"), timeout=5)
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.05)  # that agent is down; pick another
                continue
            owners[reply.id] = coordinator
            return
        raise AssertionError(f"workflow {i} could not be submitted")

    await asyncio.gather(*(one(i) for i in range(WORKFLOWS)))
    return owners


async def _chaos(fed: Federation, rng: random.Random, rounds: int) -> list[str]:
    killed = []
    for _ in range(rounds):
        await asyncio.sleep(rng.uniform(0.2, 1.0))  # a random moment, not synchronisation
        victims = rng.sample(NAMES, 2)  # a coordinator (every agent coordinates) and a peer
        for victim in victims:
            fed.kill(victim)
            killed.append(victim)
        await fed.start(*victims)  # clients' channels reconnect by themselves
    return killed


async def _final_states(fed: Federation, owners: dict[str, str], deadline_s: float):
    deadline = time.monotonic() + deadline_s
    finals: dict[str, str] = {}
    while True:
        for wid, owner in owners.items():
            if wid in finals:
                continue
            try:
                status = await fed.client(owner).GetWorkflow(
                    client_pb2.GetWorkflowRequest(id=wid, local_only=True), timeout=5)
            except grpc.aio.AioRpcError:
                continue
            if state_name(status) in TERMINAL:
                finals[wid] = state_name(status)
        if len(finals) == len(owners):
            return finals
        if time.monotonic() > deadline:
            missing = sorted(set(owners) - set(finals))[:5]
            raise AssertionError(f"{len(owners) - len(finals)} workflows not terminal: {missing}")
        await asyncio.sleep(0.2)


async def _quiescent(fed: Federation, deadline_s: float) -> None:
    """Every agent's capacity is free again: no reservation is left anywhere."""
    deadline = time.monotonic() + deadline_s
    while True:
        held = {}
        for name in NAMES:
            members = await fed.members(name)
            me = next((m for m in members if m.self), None)
            held[name] = None if me is None else sum(
                c.capacity - c.available for c in me.capabilities)
        if all(v == 0 for v in held.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"reservations still held: {held}")
        await asyncio.sleep(0.2)


def _node_facts(fed: Federation) -> tuple[dict, dict, dict[str, list], dict[str, list],
                                           dict[str, list]]:
    """The facts the invariants read, from node.db: decisions (coordinators'
    records and what participants learned), each workflow's placements (its committed
    one, and any step placed again after a domain was lost), and, by agent, the holds
    left, the step attempts started and the final states known."""
    decisions: dict[str, dict[int, str]] = {}
    placements: dict[str, dict[str, set[str]]] = {}
    holds, runs, ends = {}, {}, {}
    for name in NAMES:
        for table in ("records", "learned"):
            for (wid, rnd), value in node_table(fed, name, table).items():
                decisions.setdefault(wid, {})[rnd] = "COMMIT" if value.commit else "ABORT"
        for wid, row in node_table(fed, name, "rows").items():
            for step, domain in row.info.placement.items():
                placements.setdefault(wid, {}).setdefault(step, set()).add(domain)
        for wid, moved in node_table(fed, name, "placements").items():
            for step, (_, domain, _) in moved.items():
                placements.setdefault(wid, {}).setdefault(step, set()).add(domain)
        holds[name] = sorted(node_table(fed, name, "holds"))
        runs[name] = sorted((wid, step) for wid, step, _ in node_table(fed, name, "runs"))
        rows = node_table(fed, name, "rows")
        ends[name] = [(wid, row.state.name) for wid, row in rows.items()] + [
            (wid, state.name) for wid, state in node_table(fed, name, "final").items()
            if wid not in rows]
    return decisions, placements, holds, runs, ends


def _check_invariants(fed: Federation, owners: dict[str, str], finals: dict[str, str]) -> None:
    decisions, placements, holds, runs, ends = _node_facts(fed)
    for wid, final in finals.items():
        commits = [r for r, o in decisions.get(wid, {}).items() if o == "COMMIT"]
        # Atomicity: at most one committed round; a workflow that ran has one.
        assert len(commits) <= 1, (wid, decisions[wid])
        if final in ("SUCCEEDED", "FAILED"):
            assert len(commits) == 1, (wid, final, decisions.get(wid))
        if final == "ABORTED":
            assert not commits, (wid, decisions.get(wid))
    for name in NAMES:
        # No reservation outlives its workflow.
        assert holds[name] == [], name
        # Steps ran only where a committed placement put them, each attempt once
        # (the attempt is the key of its run record), and only for committed workflows.
        for wid, step in runs[name]:
            assert wid in owners, wid
            assert any(o == "COMMIT" for o in decisions.get(wid, {}).values()), (wid, name)
            assert name in placements[wid].get(step, ()), (wid, step, name, placements[wid])
        # Every participant that knows a final state agrees with the coordinator.
        for wid, state in ends[name]:
            if wid in finals and state in TERMINAL:
                assert state == finals[wid], (wid, name, state, finals[wid])


async def test_chaos_kills_and_restarts_keep_every_invariant(tmp_path):
    rng = random.Random(SEED)
    fed = Federation(tmp_path, {n: {"capabilities": CAPABILITIES} for n in NAMES})
    fed.write_configs()
    try:
        await fed.start()
        await fed.wait_converged()
        async with asyncio.TaskGroup() as tg:
            submitting = tg.create_task(_submit_all(fed, rng))
            killed = await _chaos(fed, rng, rounds=3)
        owners = submitting.result()
        await fed.wait_converged(deadline_s=60)
        finals = await _final_states(fed, owners, deadline_s=180)
        await _quiescent(fed, deadline_s=60)
    finally:
        await fed.close_channels()
        fed.stop()
    assert len(killed) == 6 and len(owners) == WORKFLOWS
    assert "SUCCEEDED" in finals.values()
    _check_invariants(fed, owners, finals)
