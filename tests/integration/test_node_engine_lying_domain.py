"""A trusted domain that lies, on real `engine: node` agents: the test holds us-east's
key (a compromised partner) and sends each forgery as a NodeTurn message, signed and
fresh, so that the boundary's authentication passes (runtime/node_engine/boundary.py);
the Node's authority table (core/node/authority.py, applied by the driver right before
the Node steps a message) refuses each for want of authority, the agent counts it in
`fedorch_rejected_messages_total{reason}`, and nothing changes. A PREPARE placing a
step against the step's own signed constraints is not refused but voted NO, saying why
(core/node/votes.py), whether its coordinator lied or placed on a stale record: the
coordinator's round ends on it at once. A step's outputs that are not JSON data are
refused even from the step's own domain. Lies in gossip are
tests/integration/test_lying_domain.py's."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.submission import sign_spec
from fedorch.core.membership import swim_codec
from fedorch.core.membership.swim_types import ClaimBody, ClaimKind, Gossip, sign_claim
from fedorch.core.negotiation.messages import Accept, Ballot, Decision, TxInfo, Value, VoteIn
from fedorch.core.node.records import FinalMsg, PrepareMsg, ResultMsg, VoteMsg, WfInfo
from fedorch.core.node.takeover_grants import sign_round
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2, spec_pb2, swim_pb2
from fedorch.runtime.claim_signing import ClaimSigner
from fedorch.runtime.node_codec import node_codec

from tests.integration.federation import (
    node_engine_domains,
    running_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.submissions import signed

pytestmark = pytest.mark.integration

LIAR = "us-east"
ECHO = {"type": "builtin", "name": "echo"}
SLEEP = {"type": "builtin", "name": "sleep"}
DOMAINS = node_engine_domains(("eu-west", "us-east", "partner"), lambda name: {
    "eu-west": [{"name": "data.extract", "capacity": 4, "executor": ECHO}],
    "us-east": [],
    "partner": [{"name": "report.publish", "capacity": 2, "executor": ECHO},
                {"name": "test.sleep", "capacity": 2, "executor": SLEEP}],
}[name])
DOMAINS["partner"]["labels"] = {"cloud": "onprem"}
SPEC = parse_spec_text("name: lie\nsteps:\n  - {id: report, capability: report.publish}\n",
                       "test")
LONG = """
name: long
steps:
  - id: nap
    capability: test.sleep
    params: {seconds: 120}
    constraints: {domains: [partner]}
"""


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    with running_federation(tmp_path_factory.mktemp("node-liars"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def fed(federation):
    yield federation
    await federation.close_channels()


async def _tell(fed, signer: Signer, recipient: str, *msgs: object) -> None:
    """The messages in one NodeTurn: authenticated, so posted (answered OK); what the
    Node makes of them is decided in the recipient's next driver turn."""
    envelope = seal(signer, recipient=recipient, now_ms=int(time.time() * 1000),
                    nonce=new_nonce(),
                    node_turn=peer_pb2.NodeTurn(messages=node_codec().encode(msgs)))
    assert await fed.peer_call(recipient, "NodeTurn", envelope) == peer_pb2.Envelope()


def _rejected(fed, domain: str, reason: str) -> float:
    return fed.metric(domain, "fedorch_rejected_messages_total", reason=reason)


async def _refused(fed, domain: str, expected: dict[str, int], send) -> None:
    """`send()` makes `domain`'s Node refuse, by authority, exactly `expected` (reason ->
    count) more messages; waited for, since the refusal happens in a driver turn."""
    reasons = sorted(expected)

    def counts() -> dict[str, float]:
        return {r: _rejected(fed, domain, r) for r in reasons}

    before = await asyncio.to_thread(counts)
    await send()
    wanted = {r: before[r] + n for r, n in expected.items()}

    async def counted() -> bool:
        return await asyncio.to_thread(counts) == wanted

    await wait_for(counted, 20, f"{domain} to refuse {expected}")


def _prepare(workflow_id: str, coordinator: str) -> PrepareMsg:
    tx = TxInfo(workflow_id, 1, coordinator, ("partner",), ("eu-west", "partner"))
    return PrepareMsg(tx, (("report", "report.publish"),),
                      WfInfo(SPEC, {"report": "partner"}, coordinator, submission=signed(SPEC)))


async def test_prepares_for_another_coordinators_workflow_or_a_bad_id_are_refused(fed):
    liar = fed.signer(LIAR)
    bad_ids = (f"{LIAR}.../../etc", f"{LIAR}.a\x00b", f"{LIAR}.a\nb", f"{LIAR}.")

    async def send() -> None:
        # In eu-west's name, and as its own coordinator of eu-west's workflow.
        await _tell(fed, liar, "partner", _prepare("eu-west.0123456789abcdef0123", "eu-west"),
                    _prepare("eu-west.0123456789abcdef0124", LIAR))
        await _tell(fed, liar, "partner", *(_prepare(w, LIAR) for w in bad_ids))

    await _refused(fed, "partner", {"not_coordinator": 1, "foreign_workflow": 1,
                                    "bad_workflow_id": len(bad_ids)}, send)
    # No PREPARE was taken: partner knows no such workflow, and the same id check guards
    # the Client API.
    listed = await fed.client("partner").ListWorkflows(client_pb2.ListWorkflowsRequest(),
                                                       timeout=5)
    assert not [w.id for w in listed.workflows if w.id.startswith("eu-west.0123")]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await fed.client("partner").GetWorkflow(
            client_pb2.GetWorkflowRequest(id="eu-west.../x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_outsiders_cannot_end_a_workflow_nor_vote_or_report_for_others(fed):
    """eu-west coordinates a workflow whose step runs at partner; the liar, no party to
    it, tells partner the workflow FAILED, and tells eu-west partner's NO vote and a
    FAILED result of partner's step. Each is refused; the step keeps running; eu-west's
    own cancel ends it."""
    liar = fed.signer(LIAR)
    workflow_id = await fed.submit("eu-west", LONG)

    async def running_at_partner() -> bool:  # as partner, which runs it, shows it
        status = await fed.local_status("partner", workflow_id)
        return status is not None and step_states(status)["nap"][0] == "RUNNING"

    await wait_for(running_at_partner, 30, "the step to run at partner")

    async def end_it() -> None:
        await _tell(fed, liar, "partner", FinalMsg(workflow_id, WorkflowState.FAILED))

    await _refused(fed, "partner", {"not_coordinator": 1}, end_it)

    async def speak_for_partner() -> None:
        await _tell(fed, liar, "eu-west",
                    VoteMsg((workflow_id, 1), "partner", False, "a lie"),
                    ResultMsg(workflow_id, "nap", 1, StepState.FAILED, {}, "forged"))

    await _refused(fed, "eu-west", {"impersonation": 1, "not_step_domain": 1},
                   speak_for_partner)
    for domain in ("eu-west", "partner"):
        status = await fed.local_status(domain, workflow_id)
        assert status is not None and state_name(status) == "RUNNING", (domain, status)
        assert step_states(status)["nap"][0] != "FAILED", (domain, status)
    assert await running_at_partner()
    await fed.client("eu-west").Cancel(client_pb2.CancelRequest(id=workflow_id), timeout=15)
    assert state_name(await fed.wait_state("eu-west", workflow_id)) == "CANCELLED"


async def test_a_result_for_a_step_the_liar_did_not_run_is_refused(fed):
    workflow_id = await fed.submit("eu-west", "name: r\nsteps:\n"
                                   "  - {id: extract, capability: data.extract}\n")
    status = await fed.wait_state("eu-west", workflow_id)
    assert state_name(status) == "SUCCEEDED"

    async def report() -> None:
        await _tell(fed, fed.signer(LIAR), "eu-west", ResultMsg(
            workflow_id, "extract", 999, StepState.FAILED, {}, "forged by the liar"))

    await _refused(fed, "eu-west", {"not_step_domain": 1}, report)
    after = await fed.status("eu-west", workflow_id)
    assert state_name(after) == "SUCCEEDED"
    assert step_states(after)["extract"] == ("SUCCEEDED", "eu-west", 1)


async def test_a_result_whose_outputs_are_not_json_data_is_refused_from_the_steps_domain(
        fed):
    """partner's own key (its agent compromised) reports its running step SUCCEEDED with
    outputs that are no JSON data: eu-west refuses it (`not_json`) and keeps serving the
    workflow's status, the step still RUNNING (taken, such outputs made every status of
    the workflow fail: `values.write_object`); eu-west's cancel ends it."""
    workflow_id = await fed.submit("eu-west", LONG)

    async def running() -> bool:
        status = await fed.local_status("eu-west", workflow_id)
        return status is not None and step_states(status)["nap"][0] == "RUNNING"

    await wait_for(running, 30, "the step to run at partner, as eu-west shows it")

    async def report() -> None:
        await _tell(fed, fed.signer("partner"), "eu-west",
                    ResultMsg(workflow_id, "nap", 1, StepState.SUCCEEDED,
                              {"x": b"raw", "n": float("nan"), "deep": [[[{1: "k"}]]]}, ""))

    await _refused(fed, "eu-west", {"not_json": 1}, report)
    status = await fed.status("eu-west", workflow_id)
    assert state_name(status) == "RUNNING"
    assert step_states(status)["nap"][0] == "RUNNING"
    await fed.client("eu-west").Cancel(client_pb2.CancelRequest(id=workflow_id), timeout=15)
    assert state_name(await fed.wait_state("eu-west", workflow_id)) == "CANCELLED"


def _submission(alice, spec, *, coordinator: str = "eu-west", age_s: float = 0.0):
    """alice's signed spec, with the key its coordinator vouches for."""
    return sign_spec(alice.principal, alice.key.sign, spec,
                     public_key=alice.key.public_key().public_bytes_raw(),
                     request_id=uuid.uuid4().hex,
                     issued_at_ms=int((time.time() - age_s) * 1000), coordinator=coordinator)


def _prepare_for(fed, spec, submission) -> PrepareMsg:
    """A PREPARE of a fresh workflow of eu-west's for partner, made as eu-west makes one:
    its round signed by eu-west (`round_tx`, `stated`), so that a YES left in doubt
    (eu-west's agent never heard of the round) is resolved by partner's recovery
    ballot, an ABORT, once its lease passes, and its slot is free again."""
    workflow_id = f"eu-west.{uuid.uuid4().hex[:20]}"
    acceptors = ("eu-west", "partner")
    stated = sign_round(fed.signer("eu-west").sign, workflow_id, 1, "eu-west", ("partner",),
                        acceptors)
    tx = TxInfo(workflow_id, 1, "eu-west", ("partner",), acceptors,
                round_tx=stated.signature)
    return PrepareMsg(tx, (("report", "report.publish"),),
                      WfInfo(spec, {"report": "partner"}, "eu-west", submission=submission,
                             stated=stated))


async def test_a_coordinator_that_alters_replays_or_strips_a_signed_spec_is_refused(
        fed, tmp_path):
    """eu-west lies as coordinator (the test holds its key): partner, checking the signed
    spec every PREPARE carries (boundary.py `signed_submissions`), takes none of an
    altered spec, a signature by another key, an empty signed spec, alice's submission
    replayed under a second workflow id, one signed two hours ago, or one signed for
    another coordinator; each is refused (no vote, nothing held: the Node never takes
    it) and logged with its reason. The genuine first one is taken."""
    alice = load_identity(init_client_keys("alice", tmp_path)[0])
    altered = parse_spec_text("name: lie\nsteps:\n  - {id: report, capability:"
                              " report.publish, params: {table: wages}}\n", "test")
    genuine = _submission(alice, SPEC)
    forged = _submission(alice, SPEC)
    forged.signature = Ed25519PrivateKey.generate().sign(b"anything")
    lies = {
        "differs from the one alice signed": _prepare_for(fed, altered, _submission(alice, SPEC)),
        "bad signature": _prepare_for(fed, SPEC, forged),
        "signed spec: no principal": _prepare_for(fed, SPEC, spec_pb2.SignedSpec()),
        "was admitted here as workflow": _prepare_for(fed, SPEC, genuine),
        "older than the 3600 s window": _prepare_for(fed, SPEC, _submission(alice, SPEC,
                                                                       age_s=7200)),
        "signed for coordinator us-east, not eu-west": _prepare_for(
            fed, SPEC, _submission(alice, SPEC, coordinator="us-east")),
    }
    log = fed.workdir / "partner.log"
    refusal = "refused Message(PrepareMsg from eu-west): submission: "

    def refusals() -> list[str]:
        return [line for line in log.read_text().splitlines() if refusal in line]

    before = len(await asyncio.to_thread(refusals))
    # The genuine PREPARE first, in the same envelope as its replay: stepped in order.
    await _tell(fed, fed.signer("eu-west"), "partner", _prepare_for(fed, SPEC, genuine),
                *lies.values())

    async def all_refused() -> bool:
        return len(await asyncio.to_thread(refusals)) >= before + len(lies)

    await wait_for(all_refused, 20, "partner to refuse every lie")
    made = (await asyncio.to_thread(refusals))[before:]
    assert len(made) == len(lies), made  # the genuine one was taken
    for reason in lies:
        assert any(reason in line for line in made), (reason, made)


async def test_forged_decisions_and_ballots_are_refused_and_commit_nothing(fed, tmp_path):
    """partner holds a YES in a round of eu-west's (the PREPARE made as eu-west makes
    one); then COMMITs without partner's signed YES (none at all, from the coordinator;
    a YES of partner made by another key), an ABORT and a COMMIT from us-east (no party
    to the round), and us-east's recovery ballot carrying a partial certificate: each is
    refused, and partner starts nothing of the workflow (no COMMIT reached its Node)."""
    alice = load_identity(init_client_keys("alice", tmp_path)[0])
    prepare = _prepare_for(fed, SPEC, _submission(alice, SPEC))
    tx, key = prepare.tx, prepare.tx.key
    eu_west, liar = fed.signer("eu-west"), fed.signer(LIAR)
    log = fed.workdir / "partner.log"

    def refused_lines() -> list[str]:
        return [line for line in log.read_text().splitlines() if "refused Message(" in line
                and any(kind in line for kind in ("Decision from", "Accept from"))]

    before = len(await asyncio.to_thread(refused_lines))
    await _tell(fed, eu_west, "partner", prepare)
    forged_yes = VoteIn(1, "partner", True, "", b"not partner's signed vote")
    forgeries = [
        (eu_west, Decision(key, Value(True), "eu-west")),  # no certificate at all
        (eu_west, Decision(key, Value(True, (forged_yes,)), "eu-west")),
        (liar, Decision(key, Value(False), LIAR)),
        (liar, Decision(key, Value(True, (forged_yes,)), LIAR)),
        (liar, Accept(tx, Ballot(2, LIAR), Value(True, (forged_yes,)))),
    ]
    for signer, forged in forgeries:
        await _tell(fed, signer, "partner", forged)

    async def all_refused() -> list[str] | None:
        made = (await asyncio.to_thread(refused_lines))[before:]
        return made if len(made) >= len(forgeries) else None

    made = await wait_for(all_refused, 20, "partner to refuse every forgery")
    assert len(made) == len(forgeries), made
    whys = ("lacks a YES vote", "(forged_vote)", "(not_party)", "(not_party)", "(not_proposer)")
    for why, line in zip(whys, made, strict=True):
        assert why in line, (why, line)
    assert await fed.local_status("partner", tx.workflow_id) is None  # nothing committed


def _audited_noes(fed, domain: str, workflow_id: str) -> list[dict]:
    """The NO votes `domain`'s audit log holds for `workflow_id` (each act's data: the
    node engine writes a workflow's acts of one batch as one `acts` record)."""
    rows = fed.rows(domain, "SELECT body FROM audit WHERE workflow_id=? AND kind='acts'"
                    " ORDER BY seq", (workflow_id,))
    return [act["data"] for (body,) in rows for act in json.loads(body)["data"]["acts"]
            if act["kind"] == "vote" and not act["data"]["yes"]]


async def _no_shown(fed, domain: str, workflow_id: str, coordinator: str,
                    reason: str) -> None:
    """`domain` voted NO on `workflow_id`'s round 1 with `reason`: logged ("refused WF
    round 1 from COORDINATOR: REASON") and in its audit log (records are appended in
    batches: waited for)."""
    async def audited() -> list[dict]:
        return await asyncio.to_thread(_audited_noes, fed, domain, workflow_id)

    [no] = await wait_for(audited, 20, f"{domain}'s NO in its audit log")
    assert (no["coordinator"], no["round"], no["reason"]) == (coordinator, 1, reason), no
    line = f"refused {workflow_id} round 1 from {coordinator}: {reason}"
    assert line in await asyncio.to_thread((fed.workdir / f"{domain}.log").read_text)


@pytest.mark.parametrize(("constraints", "why"), [
    ({"domains": ["eu-west"]}, "may run only in eu-west, not partner"),
    ({"labels": {"cloud": "aws"}}, "wants cloud=aws; partner has cloud=onprem"),
])
async def test_a_prepare_placing_a_step_against_its_own_constraints_gets_a_no(
        fed, tmp_path, constraints, why):
    """The liar coordinates its own workflow (authority holds) but places the step where
    the submitter's signed spec forbids: partner checks the step's constraints against
    its own name and labels, votes NO saying why (core/node/votes.py: a vote, not a
    refusal of the message), and holds nothing. (The liar's agent, which the test
    speaks for and which runs no such round, refuses the vote.)"""
    alice = load_identity(init_client_keys("alice", tmp_path)[0])
    spec = parse_spec_text("name: bound\nsteps:\n  - {id: report, capability: report.publish}\n",
                           "test")
    spec.steps[0].constraints.domains.extend(constraints.get("domains", []))
    spec.steps[0].constraints.labels.update(constraints.get("labels", {}))
    workflow_id = f"{LIAR}.{uuid.uuid4().hex[:20]}"
    tx = TxInfo(workflow_id, 1, LIAR, ("partner",), (LIAR, "partner"))
    prepare = PrepareMsg(tx, (("report", "report.publish"),), WfInfo(
        spec, {"report": "partner"}, LIAR,
        submission=_submission(alice, spec, coordinator=LIAR)))
    await _tell(fed, fed.signer(LIAR), "partner", prepare)
    await _no_shown(fed, "partner", workflow_id, LIAR,
                    f"invalid PREPARE: constraints: step 'report' {why}")
    assert await fed.local_status("partner", workflow_id) is None


async def _member(fed, observer: str, domain: str) -> client_pb2.MemberInfo:
    reply = await fed.client(observer).ListMembers(client_pb2.ListMembersRequest(), timeout=5)
    return next(m for m in reply.members if m.domain == domain)


def _claim_of(fed, domain: str, recipient: str, body: ClaimBody) -> peer_pb2.Envelope:
    """A SWIM gossip from `domain` (signed with its key) carrying its own claim `body`."""
    signer = fed.signer(domain)
    claim = sign_claim(body, domain, ClaimSigner(signer))
    batch = swim_pb2.SwimBatch(reply_to=fed.address(domain),
                               messages=[swim_codec.encode(Gossip(domain, (claim,)))])
    return seal(signer, recipient=recipient, now_ms=int(time.time() * 1000),
                nonce=new_nonce(), swim=batch)


WANTS_AWS = """
name: aws
steps:
  - {id: report, capability: report.publish, constraints: {labels: {cloud: aws}}}
"""


async def test_a_coordinator_placing_on_a_record_partner_no_longer_matches_hears_why(fed):
    """eu-west, an honest coordinator, holds a record of partner saying cloud=aws (as
    partner would have published it before its labels changed: the test makes it with
    partner's key while partner is frozen, so that partner cannot refute it yet), and
    places a step wanting cloud=aws there. partner, labelled cloud=onprem, votes NO
    saying why; eu-west's round ends on that NO (no vote is waited for past the
    prepare timeout), no other domain offers the step's capability, and the workflow is
    ABORTED with partner's reason. Once partner is back, its own record replaces the
    stale one."""
    before = await _member(fed, "eu-west", "partner")
    assert before.labels["cloud"] == "onprem"
    record = peer_pb2.DomainRecord(domain="partner", labels={"cloud": "aws"}, capabilities=[
        peer_pb2.CapabilityInfo(name=c.name, capacity=c.capacity, available=c.capacity)
        for c in before.capabilities])
    fed.signal("partner", signal.SIGSTOP)
    try:
        async def stale_record_held() -> bool:
            # One incarnation above what eu-west holds now: a claim partner made just
            # before it was frozen (a refutation under load) may still reach eu-west
            # with that same incarnation first, so the stale one is sent until it holds.
            now = await _member(fed, "eu-west", "partner")
            if now.labels["cloud"] == "aws":
                return True
            stale = ClaimBody(ClaimKind.ALIVE, "partner", now.incarnation + 1, "partner",
                              fed.address("partner"), record_version=now.version + 1,
                              record=record.SerializeToString())
            await fed.peer_call("eu-west", "Swim", _claim_of(fed, "partner", "eu-west", stale))
            return False

        await wait_for(stale_record_held, 10, "eu-west to hold the stale record of partner")

        async def placed() -> str | None:
            try:
                return await fed.submit("eu-west", WANTS_AWS)
            except grpc.aio.AioRpcError as e:
                # Placement's candidates are made again within a second of a change.
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
                return None

        workflow_id = await wait_for(placed, 10, "eu-west to place the step on partner")
    finally:
        fed.signal("partner", signal.SIGCONT)
    status = await fed.wait_state("eu-west", workflow_id, deadline_s=30)
    reason = "invalid PREPARE: constraints: step 'report' wants cloud=aws; partner has" \
             " cloud=onprem"
    assert state_name(status) == "ABORTED", status
    assert f"round 1 partner (report): {reason}" in status.reason, status.reason
    assert "no vote within" not in status.reason, status.reason
    await _no_shown(fed, "partner", workflow_id, "eu-west", reason)

    async def refuted() -> bool:
        return (await _member(fed, "eu-west", "partner")).labels["cloud"] == "onprem"

    await wait_for(refuted, 30, "partner's own record to replace the stale one")
