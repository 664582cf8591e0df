"""Data-flow policy on three real agents: labels follow the data along the DAG, a domain's
residency refuses what a step would receive (at the vote, before anything runs), egress
holds at placement and at the vote, and `fedorch policy explain` is a dry run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import yaml
from fedorch.core.identity.envelope import new_nonce, seal
from fedorch.core.identity.submission import sign_spec
from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.node.records import PrepareMsg, WfInfo
from fedorch.core.workflow import values
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.node_codec import node_codec

from tests.integration.engine_tables import held, runs
from tests.integration.federation import (
    running_federation,
    state_name,
    step_states,
    wait_for,
)

pytestmark = pytest.mark.integration

ECHO = {"type": "builtin", "name": "echo"}
GATED_STEP = """
import json, os, sys, time
job = json.load(sys.stdin)
deadline = time.monotonic() + 60
while not os.path.exists(job["params"]["gate"]) and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"secret": 42}))
"""

# eu-west extracts (its data.extract outputs carry jurisdiction EU wherever they go), loads
# (data.load adds no label) and can train, dearly. us-east trains cheaply and alone offers us.score; it takes only US data and
# keeps that private, so coordinators learn it when it votes. partner holds a vault whose
# outputs may go only to EU-labelled domains, and publishes that; a CEL rule of its own
# refuses one workflow name.
DOMAINS = {
    "eu-west": {
        "labels": {"jurisdiction": "EU"},
        "capabilities": [
            {"name": "data.extract", "capacity": 4, "executor": ECHO,
             "produces": {"jurisdiction": "EU"}},
            {"name": "ml.train", "capacity": 4, "cost": 5, "executor": ECHO},
            {"name": "data.load", "capacity": 4, "executor": ECHO},
        ],
    },
    "us-east": {
        "labels": {"jurisdiction": "US"},
        "capabilities": [
            {"name": "ml.train", "capacity": 4, "cost": 1, "executor": ECHO},
            {"name": "us.score", "capacity": 4, "executor": ECHO},
        ],
        "policy": {"residency": {"accept": ["US"]}, "publish": False},
    },
    "partner": {
        "labels": {"jurisdiction": "EU"},
        "capabilities": [
            {"name": "vault.read", "capacity": 4, "executor": ECHO},
            # Runs until the test creates the file named by params.gate: lets a test change
            # the policy while the step runs, with no timing involved.
            {"name": "vault.gated", "capacity": 2, "executor": {
                "type": "command", "argv": [sys.executable, "-c", GATED_STEP]}},
        ],
        "policy": {"egress": {"to_labels": {"jurisdiction": ["EU"]}},
                   "rules": [{"name": "no-forbidden", "expression": 'workflow != "forbidden"',
                              "message": "this workflow is not taken here"}]},
    },
}

# No workflow-level label: the EU label comes from where extract runs.
TRAIN_AFTER_EXTRACT = """
name: eu-model
steps:
  - {id: extract, capability: data.extract}
  - {id: train, capability: ml.train, needs: [extract]}
"""

SCORE_EU_DATA = """
name: eu-score
steps:
  - {id: load, capability: data.load, data: {jurisdiction: EU}}
  - {id: score, capability: us.score, needs: [load]}
"""

VAULT_TO_TRAIN = """
name: vault-model
steps:
  - {id: read, capability: vault.read}
  - {id: train, capability: ml.train, needs: [read]}
"""


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    with running_federation(tmp_path_factory.mktemp("dataflow"), DOMAINS) as started:
        yield started


@pytest.fixture
async def fed(federation):
    """The module's federation, channels bound to this test's loop, every slot free."""
    await federation.wait_capacity_free()
    yield federation
    await federation.close_channels()


def _runs(fed, domain: str, workflow_id: str) -> list[tuple]:
    return [(step,) for step, _ in runs(fed, domain, workflow_id)]


async def test_eu_outputs_never_reach_a_us_step_refused_at_vote_then_replaced(fed):
    wid = await fed.submit("eu-west", TRAIN_AFTER_EXTRACT)
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "SUCCEEDED", status
    # us-east was cheaper for train, voted NO on what train would receive, and the
    # second round put train on eu-west.
    assert [(r.round, r.domain, list(r.steps)) for r in status.refusals] == \
        [(1, "us-east", ["train"])]
    assert status.refusals[0].reason.startswith(
        "residency: step 'train' would receive jurisdiction EU"), status.refusals[0].reason
    assert step_states(status) == {"extract": ("SUCCEEDED", "eu-west", 1),
                                   "train": ("SUCCEEDED", "eu-west", 1)}
    assert _runs(fed, "us-east", wid) == []
    assert held(fed, "us-east", wid) == []


async def test_step_data_labels_abort_a_workflow_with_no_compliant_domain(fed):
    wid = await fed.submit("eu-west", SCORE_EU_DATA)
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "ABORTED", status
    # load's own data label, not the workflow's, made score's input EU data.
    assert [(r.round, r.domain, list(r.steps)) for r in status.refusals] == \
        [(1, "us-east", ["score"])]
    assert status.refusals[0].reason.startswith(
        "residency: step 'score' would receive jurisdiction EU"), status.refusals[0].reason
    assert "us-east: refused earlier" in status.reason, status.reason
    # Nothing ran anywhere: the vote came before any step.
    for domain in DOMAINS:
        assert _runs(fed, domain, wid) == [], domain


async def test_published_egress_keeps_outputs_on_eu_domains(fed):
    wid = await fed.submit("eu-west", VAULT_TO_TRAIN)
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "SUCCEEDED", status
    # us-east is cheaper for train, but partner's egress lets read's outputs go only to
    # EU-labelled domains: placement never asks us-east.
    assert step_states(status)["train"] == ("SUCCEEDED", "eu-west", 1)
    assert list(status.refusals) == [] and status.rounds == 1
    assert _runs(fed, "us-east", wid) == []


EGRESS_REFUSAL = ("egress: step 'read' outputs may not go to us-east: us-east has "
                  "jurisdiction=US, to_labels allows jurisdiction in [EU]")


@pytest.fixture
def engine_federation(tmp_path):
    """This file's domains, in a federation of this test's own."""
    with running_federation(tmp_path / "node", DOMAINS) as started:
        yield started


async def test_egress_refuses_at_the_vote_a_placement_sending_outputs_to_a_us_domain(
        engine_federation):
    """A coordinator that ignores the published egress (or saw it late) gets a NO: a
    PrepareMsg in a NodeTurn, its NO in partner's audit log (it goes to eu-west, which
    coordinates no such workflow)."""
    fed = engine_federation
    try:
        await fed.wait_capacity_free()
        spec = parse_spec_text(VAULT_TO_TRAIN, "test")
        wid = f"eu-west.egress-{new_nonce().hex()[:8]}"
        assert await _node_vote(fed, spec, wid, "us-east") == (False, EGRESS_REFUSAL)
        assert held(fed, "partner", wid) == []
        # The same PREPARE with train on eu-west is taken.
        assert await _node_vote(fed, spec, wid + "-ok", "eu-west") == (True, "")
    finally:
        await fed.close_channels()


async def _node_vote(fed, spec, wid: str, train_on: str) -> tuple[bool, str]:
    """eu-west's PREPARE of `read` on partner (train on `train_on`) through NodeTurn, as
    a node-engine coordinator sends it; partner's vote, as its audit log records it."""
    placement = {"read": "partner", "train": train_on}
    tx = TxInfo(wid, 1, "eu-west", tuple(sorted(set(placement.values()))), ("eu-west",))
    submission = sign_spec("domain:eu-west", fed.signer("eu-west").sign, spec,
                           request_id=new_nonce().hex(), issued_at_ms=int(time.time() * 1000),
                           coordinator="eu-west")
    prepare = PrepareMsg(tx, (("read", "vault.read"),),
                         WfInfo(spec, placement, "eu-west", submission=submission))
    turn = peer_pb2.NodeTurn(messages=node_codec().encode((prepare,)))
    envelope = seal(fed.signer("eu-west"), recipient="partner", now_ms=int(time.time() * 1000),
                    nonce=new_nonce(), node_turn=turn)
    await fed.peer_call("partner", "NodeTurn", envelope)

    def voted() -> list:
        """partner's votes on `wid`: records of their own, or acts of an `acts` record."""
        votes = []
        for kind, body in fed.rows("partner", "SELECT kind, body FROM audit"
                                   " WHERE workflow_id=?", (wid,)):
            data = json.loads(body)["data"]
            if kind == "vote":
                votes.append(data)
            elif kind == "acts":
                votes += [act["data"] for act in data["acts"] if act["kind"] == "vote"]
        return votes

    async def recorded() -> list:
        return voted()

    [vote] = await wait_for(recorded, 20, "partner's vote in its audit log")
    return vote["yes"], vote["reason"]


async def test_a_cel_rule_refuses_at_the_vote_with_its_message(fed):
    wid = await fed.submit("eu-west", "name: forbidden\nsteps: [{id: read, capability: vault.read}]\n")
    status = await fed.wait_state("eu-west", wid)
    assert state_name(status) == "ABORTED", status
    assert [(r.domain, list(r.steps), r.reason) for r in status.refusals] == [
        ("partner", ["read"], "rule no-forbidden: this workflow is not taken here (step 'read')")]
    assert _runs(fed, "partner", wid) == []


async def _egress_published(fed, domain: str, values: list[str]) -> bool:
    me = next((m for m in await fed.members(domain) if m.self), None)
    return me is not None and \
        list(me.policy.egress.to_labels["jurisdiction"].values) == values


def _set_egress(fed, domain: str, values: list[str]) -> None:
    config = yaml.safe_load(fed.configs[domain].read_text())
    config["policy"]["egress"]["to_labels"]["jurisdiction"] = values
    fed.configs[domain].write_text(yaml.safe_dump(config, sort_keys=False))
    fed.sighup(domain)


async def test_egress_holds_when_a_result_is_sent_after_the_policy_changed(fed, tmp_path):
    gate = tmp_path / "gate"
    spec = ("name: gated\nsteps:\n"
            f"  - {{id: read, capability: vault.gated, params: {{gate: '{gate}'}}}}\n"
            "  - {id: train, capability: ml.train, needs: [read]}\n")
    wid = await fed.submit("eu-west", spec)

    async def read_running():
        status = await fed.status("eu-west", wid)
        return step_states(status).get("read", ("",))[0] == "RUNNING"

    await wait_for(read_running, 30, "the gated step to run on partner")
    try:
        # Voted under "EU may receive"; now partner lets nothing leave for EU domains.
        _set_egress(fed, "partner", ["NOWHERE"])
        await wait_for(lambda: _egress_published(fed, "partner", ["NOWHERE"]), 30,
                       "partner to apply its new egress policy")
        gate.write_text("go")
        status = await fed.wait_state("eu-west", wid)
    finally:
        _set_egress(fed, "partner", ["EU"])
        await wait_for(lambda: _egress_published(fed, "partner", ["EU"]), 30,
                       "partner to restore its egress policy")
    read = next(s for s in status.steps if s.id == "read")
    assert values.read_object(read, "outputs") == {}  # the secret never left partner
    assert read.error.startswith("outputs withheld by partner: egress: eu-west has "
                                 "jurisdiction=EU"), read.error
    assert step_states(status)["read"][0] == "SUCCEEDED"


def _explain(fed, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FEDORCH_PEER": fed.address("eu-west")}
    return subprocess.run([sys.executable, "-m", "fedorch.cli.main", "policy", "explain", *args],
                          capture_output=True, text=True, env=env, timeout=60)


async def test_policy_explain_shows_verdicts_and_reserves_nothing(fed, tmp_path):
    spec_file = tmp_path / "score.yaml"
    spec_file.write_text(VAULT_TO_TRAIN)
    before = {d: held(fed, d) for d in DOMAINS}
    done = _explain(fed, str(spec_file), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["coordinator"] == "eu-west"
    assert result["placement"] == {"read": "partner", "train": "eu-west"}
    verdicts = {(v["step"], v["domain"]): v for v in result["verdicts"]}
    assert len(verdicts) == 2 * len(DOMAINS)
    us = verdicts[("train", "us-east")]
    assert us["verdict"] == "no"
    assert any(r.startswith("egress of partner (step 'read'): us-east has jurisdiction=US")
               for r in us["reasons"]), us
    assert us["basis"] == "policy private; decided at PREPARE"
    assert verdicts[("read", "partner")]["chosen"]
    assert verdicts[("read", "partner")]["basis"] == "summary; private rules decide at PREPARE"
    for domain in DOMAINS:  # a dry run: no reservation made anywhere
        assert held(fed, domain) == before[domain], domain
    spec_file.write_text("name: x\nsteps: [{id: a, capability: c, needs: [zz]}]\n")
    bad = _explain(fed, str(spec_file))
    assert bad.returncode == 2 and "names no step" in bad.stderr, bad.stderr
