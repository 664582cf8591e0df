"""The Client service of a running agent, fuzzed at the handler: Submit and
SubmitAndWatch with arbitrary specs (as messages, as bytes, as YAML/JSON text through
the client's parser), request ids and workflow ids for GetWorkflow and Cancel, with open
access and with client identities configured.

Each call answers or ends with a gRPC status (no other exception escapes); a refused
one stores nothing (every SQLite table but the audit log, which records refusals, and
what is active); ListWorkflows and ListMembers still answer afterwards."""

from __future__ import annotations

import contextlib
import json

import grpc
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.authority import InvalidWorkflowId, check_workflow_id
from fedorch.core.identity.clients import AccessPolicy, Caller, ClientKeys
from fedorch.core.identity.submission import sign_spec
from fedorch.core.workflow.spec import SpecError, parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, spec_pb2
from fedorch.runtime.client_service import FORWARD_TIMEOUT_S, ClientService
from fedorch.runtime.interceptors import CURRENT_CALLER, ClientAuth
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.runtime.fuzz_harness import Aborted, FakeContext, Harness, fill_message

FUZZ = settings(max_examples=50, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NASTY_STRINGS = ["", ".", "../x", "alpha.../wf", "alpha.wf\x00", "alpha.wf\n1", "alpha.",
                 "alpha." + "w" * 65, "x" * 100_000, "alpha.wf1", "beta.wf1", "x", "echo",
                 "a", "b", "ALPHA.wf"]
STRINGS = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=30))
# Spec documents as a client might write them: the spec's own words, mixed with junk.
SPEC_KEYS = st.sampled_from(["name", "steps", "id", "capability", "needs", "params",
                             "retries", "timeout_s", "constraints", "compensate", "data",
                             "idempotent", "on_domain_loss", "fanout", "x", ""])
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
              STRINGS),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(SPEC_KEYS, inner, max_size=5)),
    max_leaves=20)
NAMES = st.one_of(st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True), STRINGS)
# Near a valid spec: step ids and needs from a few names, capability x (alpha has it).
NEAR_VALID = st.builds(
    lambda name, steps: {"name": name, "steps": steps},
    NAMES,
    st.lists(st.fixed_dictionaries(
        {"id": st.sampled_from(["a", "b", "c", "../a", ""]),
         "capability": st.sampled_from(["x", "x", "y", ""])},
        optional={"needs": st.lists(st.sampled_from(["a", "b", "c", "z"]), max_size=3),
                  "params": st.dictionaries(STRINGS, JSON_VALUES, max_size=3),
                  "retries": st.integers(-2, 2**40),
                  "timeout_s": st.one_of(st.floats(), st.integers(-5, 10**12))}),
        min_size=1, max_size=4))
SPEC_TEXTS = st.one_of(
    st.text(max_size=200),
    NEAR_VALID.map(json.dumps),
    NEAR_VALID.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.dictionaries(SPEC_KEYS, JSON_VALUES, max_size=5).map(json.dumps),
    st.builds(lambda name, steps: json.dumps({"name": name, "steps": steps}),
              STRINGS, st.lists(st.dictionaries(SPEC_KEYS, JSON_VALUES, max_size=5),
                                max_size=4)),
)


def _is_bad_id(value: str) -> bool:
    try:
        check_workflow_id(value)
    except InvalidWorkflowId:
        return True
    return False


BAD_IDS = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=80)).filter(_is_bad_id)
GOOD_IDS = st.from_regex(r"(alpha|beta|gamma)\.[A-Za-z0-9_-]{1,64}", fullmatch=True)
ALICE_KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.close()


def _arbitrary_spec(data) -> spec_pb2.WorkflowSpec:
    """Any field values at all, or a near-valid spec with arbitrary values added."""
    spec = spec_pb2.WorkflowSpec()
    if data.draw(st.booleans()):
        near = data.draw(NEAR_VALID)
        spec.name = near["name"]
        for step in near["steps"]:
            spec.steps.add(id=step["id"], capability=step["capability"],
                           needs=step.get("needs", []))
        if data.draw(st.booleans()):
            return spec
    fill_message(data, spec, STRINGS)
    return spec


def _submit_and_watch_first(service: ClientService, request, context):
    """SubmitAndWatch as gRPC runs it, up to its first status (the workflow may run on)."""
    async def first():
        stream = service.SubmitAndWatch(request, context)
        try:
            return await anext(stream)
        finally:
            await stream.aclose()
    return first()


# The caller's deadline: a cancel routed to an unreachable coordinator retries for what
# is left of it after one forward's share (client_service._cancel_routed), here 0.1 s.
CALLER_DEADLINE_S = FORWARD_TIMEOUT_S / 5 + 0.1


def _call(h: Harness, service: ClientService, rpc: str, request):
    context = FakeContext(time_remaining_s=CALLER_DEADLINE_S)
    if rpc == "SubmitAndWatch":
        try:
            return h.run(_submit_and_watch_first(service, request, context))
        except Aborted as e:
            return e
    return h.call(getattr(service, rpc), request, context)


def _still_serves(h: Harness, service: ClientService) -> None:
    assert h.agent.fatal is None and not h.agent.stopping
    assert isinstance(_call(h, service, "ListWorkflows", client_pb2.ListWorkflowsRequest()),
                      client_pb2.ListWorkflowsReply)
    members = _call(h, service, "ListMembers", client_pb2.ListMembersRequest())
    assert [m.domain for m in members.members if m.self] == ["alpha"]


def _submitted(h: Harness, service: ClientService, rpc: str, submit: client_pb2.SubmitRequest,
               refused_with: set[grpc.StatusCode]) -> object:
    """Submit (or SubmitAndWatch): accepted, or refused with one of `refused_with` and
    nothing stored. Returns what the call returned."""
    request = submit if rpc == "Submit" else client_pb2.SubmitAndWatchRequest(submit=submit)
    before = h.snapshot()
    result = _call(h, service, rpc, request)
    if isinstance(result, Aborted):
        assert result.code in refused_with, (result.code, result.details)
        assert h.snapshot() == before
    else:
        h.settle()
    _still_serves(h, service)
    return result


OPEN_REFUSALS = {grpc.StatusCode.INVALID_ARGUMENT}


def test_arbitrary_specs_are_accepted_or_refused_invalid_argument(harness: Harness) -> None:
    service = ClientService(harness.agent)

    @settings(FUZZ, max_examples=80)
    @given(rpc=st.sampled_from(["Submit", "SubmitAndWatch"]),
           request_id=STRINGS, as_bytes=st.booleans(), data=st.data())
    def check(rpc: str, request_id: str, as_bytes: bool, data) -> None:
        spec = _arbitrary_spec(data)
        submit = client_pb2.SubmitRequest(request_id=request_id)
        if as_bytes:  # open access takes signed_spec's bytes unsigned
            raw = data.draw(st.one_of(st.binary(max_size=200),
                                      st.just(spec.SerializeToString())))
            submit.signed_spec.CopyFrom(spec_pb2.SignedSpec(spec=raw))
        else:
            submit.spec.CopyFrom(spec)
        _submitted(harness, service, rpc, submit, OPEN_REFUSALS)

    check()


def test_spec_text_either_fails_to_parse_or_is_accepted_or_refused(harness: Harness) -> None:
    """YAML/JSON as `fedorch submit` reads it: the parser says SpecError (the CLI exits
    2), or the spec it makes is submitted and accepted or refused INVALID_ARGUMENT."""
    service = ClientService(harness.agent)

    @FUZZ
    @given(text=SPEC_TEXTS)
    def check(text: str) -> None:
        try:
            spec = parse_spec_text(text, "<fuzz>")
        except SpecError:
            return
        _submitted(harness, service, "Submit", client_pb2.SubmitRequest(spec=spec),
                   OPEN_REFUSALS)

    check()


def test_malformed_workflow_ids_are_refused_invalid_argument(harness: Harness) -> None:
    service = ClientService(harness.agent)

    @FUZZ
    @given(rpc=st.sampled_from(["GetWorkflow", "Cancel"]), workflow_id=BAD_IDS,
           local_only=st.booleans(), reason=STRINGS)
    def check(rpc: str, workflow_id: str, local_only: bool, reason: str) -> None:
        request = client_pb2.GetWorkflowRequest(id=workflow_id, local_only=local_only) \
            if rpc == "GetWorkflow" else \
            client_pb2.CancelRequest(id=workflow_id, local_only=local_only, reason=reason)
        before = harness.snapshot()
        result = _call(harness, service, rpc, request)
        assert isinstance(result, Aborted) and \
            result.code == grpc.StatusCode.INVALID_ARGUMENT, result
        assert harness.snapshot() == before
        _still_serves(harness, service)

    check()


def test_unknown_workflows_are_not_found_and_change_nothing(harness: Harness) -> None:
    """Well-formed ids no one knows (this agent's, or a peer's it cannot reach)."""
    service = ClientService(harness.agent)

    @FUZZ
    @given(rpc=st.sampled_from(["GetWorkflow", "Cancel"]), workflow_id=GOOD_IDS,
           local_only=st.booleans())
    def check(rpc: str, workflow_id: str, local_only: bool) -> None:
        request = client_pb2.GetWorkflowRequest(id=workflow_id, local_only=local_only) \
            if rpc == "GetWorkflow" else \
            client_pb2.CancelRequest(id=workflow_id, local_only=local_only)
        before = harness.snapshot()
        result = _call(harness, service, rpc, request)
        assert isinstance(result, Aborted), result
        assert result.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE), \
            (result.code, result.details)
        assert harness.snapshot() == before
        _still_serves(harness, service)

    check()


@contextlib.contextmanager
def _as(caller: Caller | None):
    token = CURRENT_CALLER.set(caller)
    try:
        yield
    finally:
        CURRENT_CALLER.reset(token)


def _with_identities(h: Harness) -> ClientService:
    """Client identities configured (alice), no open access: a spec must be signed by
    the principal whose call brings it."""
    auth = ClientAuth(ClientKeys({"alice": ALICE_KEY.public_key()}), h.agent.trust,
                      AccessPolicy([], open_access=False), 60_000)
    return ClientService(h.agent, auth)


def test_with_identities_an_unsigned_or_badly_signed_spec_is_refused(harness: Harness) -> None:
    service = _with_identities(harness)
    refused = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT}

    @FUZZ
    @given(rpc=st.sampled_from(["Submit", "SubmitAndWatch"]),
           caller=st.sampled_from([None, Caller("alice"), Caller("bob"),
                                   Caller("alice", domain="beta")]),
           how=st.sampled_from(["unsigned", "arbitrary", "other key", "other request"]),
           request_id=STRINGS, data=st.data())
    def check(rpc: str, caller: Caller | None, how: str, request_id: str, data) -> None:
        spec = _arbitrary_spec(data)
        submit = client_pb2.SubmitRequest(request_id=request_id)
        if how == "unsigned":
            submit.spec.CopyFrom(spec)
        elif how == "arbitrary":
            fill_message(data, submit.signed_spec, STRINGS)
            submit.signed_spec.SetInParent()
        else:  # alice's name, but mallory's key; or alice's, for another request
            key = Ed25519PrivateKey.generate() if how == "other key" else ALICE_KEY
            signed_for = request_id if how == "other key" else request_id + "x"
            submit.signed_spec.CopyFrom(sign_spec(
                "alice", key.sign, spec, request_id=signed_for,
                issued_at_ms=harness.agent.now_ms(), coordinator="alpha"))
        with _as(caller):
            result = _submitted(harness, service, rpc, submit, refused)
        assert isinstance(result, Aborted), f"accepted {result}"

    check()


def test_with_identities_alices_own_signed_spec_is_accepted(harness: Harness) -> None:
    """The control for the test above: what it refuses is refused for what was wrong
    with it, since the same spec, signed by alice for this request, is taken."""
    service = _with_identities(harness)
    spec = spec_pb2.WorkflowSpec(name="n", steps=[spec_pb2.StepSpec(id="a", capability="x")])
    signed = sign_spec("alice", ALICE_KEY.sign, spec, request_id="r1",
                       issued_at_ms=harness.agent.now_ms(), coordinator="alpha")
    with _as(Caller("alice")):
        reply = _call(harness, service, "Submit",
                      client_pb2.SubmitRequest(request_id="r1", signed_spec=signed))
    assert isinstance(reply, client_pb2.SubmitReply), reply
    assert reply.id.startswith("alpha.")
    assert reply.id in harness.agent.active \
        or harness.run(harness.store.get_workflow(reply.id)) is not None
