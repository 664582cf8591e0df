"""Every Peer RPC of a running agent, fuzzed at the handler as gRPC calls it: random
envelopes, signed messages with arbitrary fields, malformed ids, replays, messages
re-signed by another trusted domain, untrusted keys, no authority, oversized input.

Each call answers or ends with a gRPC status (no other exception escapes), an input
that must be refused changes nothing (SQLite rows, what is active, holds, early
results, trust), and the agent still answers a valid request afterwards."""

from __future__ import annotations

import grpc
import pytest
from fedorch.core.identity.authority import InvalidWorkflowId, check_workflow_id
from fedorch.core.identity.envelope import Signer, new_nonce
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.paxos_wire import PAXOS_REQUESTS
from fedorch.runtime.peer_service import MAX_BATCH_ITEMS, PeerService
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.runtime.fuzz_harness import Aborted, Harness, fill_message

FUZZ = settings(max_examples=50, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Each Peer RPC and the payload kinds it takes (Paxos: any of its requests).
RPC_KINDS: dict[str, tuple[str, ...]] = {
    "Swim": ("swim",),
    "Prepare": ("prepare",),
    "Decide": ("decision_notice",),
    "QueryDecision": ("decision_query",),
    "ReportStep": ("step_result",),
    "CancelWorkflow": ("cancel",),
    "Paxos": tuple(sorted(PAXOS_REQUESTS)),
    "Batch": ("batch",),
    "Compensate": ("compensate",),
    "Takeover": ("takeover_claim",),
}
# The kinds that name one workflow, and where its id is in the payload.
ID_PATHS: dict[str, tuple[str, ...]] = {
    "prepare": ("workflow_id",),
    "decision_query": ("workflow_id",),
    "step_result": ("workflow_id",),
    "cancel": ("workflow_id",),
    "compensate": ("workflow_id",),
    "takeover_claim": ("workflow_id",),
    "decision_ack": ("workflow_id",),
    "paxos_prepare": ("tx", "workflow_id"),
    "paxos_accept": ("tx", "workflow_id"),
    "paxos_promise": ("workflow_id",),
    "paxos_accepted": ("workflow_id",),
    "paxos_reject": ("workflow_id",),
}
RPC_OF_KIND = {kind: rpc for rpc, kinds in RPC_KINDS.items() for kind in kinds}

NASTY_STRINGS = ["", ".", "..", "../alpha.wf1", "alpha.../wf", "alpha.wf/../x", "alpha.wf\x00",
                 "alpha.wf\n1", "alpha.wf\r\n", "alpha. wf", "ALPHA.wf", "alpha.", ".wf1",
                 "alpha." + "w" * 65, "alpha.wf1" * 20_000, "alpha.\u202ewf",
                 "beta", "alpha", "gamma", "alpha.wf1", "beta.wf1", "gamma.wf1", "x" * 5000]
STRINGS = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=40))


def _is_bad_id(value: str) -> bool:
    try:
        check_workflow_id(value)
    except InvalidWorkflowId:
        return True
    return False


BAD_IDS = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=80)).filter(_is_bad_id)
# (payload kind, RPC): each RPC alike often, whatever number of kinds it takes.
RPC_WITH_KIND = st.sampled_from(sorted(RPC_KINDS)).flatmap(
    lambda rpc: st.sampled_from(RPC_KINDS[rpc]).map(lambda kind: (kind, rpc)))
GOOD_IDS = st.one_of(st.sampled_from(["alpha.wf1", "beta.wf1", "gamma.wf1"]),
                     st.from_regex(r"(alpha|beta|gamma)\.[A-Za-z0-9_-]{1,64}", fullmatch=True))
KIND_WITH_ID = st.sampled_from(sorted(ID_PATHS))


def _payload_class(kind: str):
    return peer_pb2.Body.DESCRIPTOR.fields_by_name[kind].message_type._concrete_class


def _arbitrary(data, kind: str, good_id: bool = False):
    """A `kind` payload with arbitrary fields; `good_id`: a well-formed workflow id in
    it, so that the message gets past the id check to the shells."""
    msg = _payload_class(kind)()
    fill_message(data, msg, STRINGS)
    if good_id and kind in ID_PATHS:
        _with_id(msg, kind, data.draw(GOOD_IDS))
    if good_id and kind == "batch":
        kinds = sorted(set(ID_PATHS) - {"takeover_claim"})
        for item_kind in data.draw(st.lists(st.sampled_from(kinds), max_size=4)):
            msg.items.add().CopyFrom(
                peer_pb2.Body(**{item_kind: _arbitrary(data, item_kind, good_id=True)}))
    return msg


def _with_id(msg, kind: str, workflow_id: str):
    *outer, last = ID_PATHS[kind]
    target = msg
    for name in outer:
        target = getattr(target, name)
    setattr(target, last, workflow_id)
    return msg


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    try:
        yield h
    finally:
        h.close()


def _method(h: Harness, rpc: str):
    return getattr(PeerService(h.agent), rpc)


def _refused(h: Harness, rpc: str, envelope, code: grpc.StatusCode) -> None:
    """The call ends with `code` and leaves everything as it was; the agent still serves."""
    before = h.snapshot()
    result = h.call(_method(h, rpc), envelope)
    assert isinstance(result, Aborted), f"{rpc} accepted {result}"
    assert result.code == code, (result.code, result.details)
    after = h.snapshot()
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    h.check_alive()


# RPCs of the node engine (`engine: node`): the shells' PeerService does not serve them
# (UNIMPLEMENTED); its own boundary is fuzzed in tests/unit/runtime/node_engine.
NODE_ENGINE_RPCS = {"NodeTurn", "NodeTurns"}


def test_the_table_covers_every_peer_rpc() -> None:
    service = peer_pb2.DESCRIPTOR.services_by_name["Peer"]
    assert set(RPC_KINDS) | NODE_ENGINE_RPCS == {m.name for m in service.methods}


def test_random_envelopes_are_refused_unauthenticated(harness: Harness) -> None:
    @FUZZ
    @given(rpc=st.sampled_from(sorted(RPC_KINDS)), raw=st.binary(max_size=600),
           data=st.data())
    def check(rpc: str, raw: bytes, data) -> None:
        try:  # what gRPC would hand the handler, had the bytes parsed
            envelope = peer_pb2.Envelope.FromString(raw)
        except DecodeError:
            envelope = peer_pb2.Envelope()
            fill_message(data, envelope, STRINGS)
        _refused(harness, rpc, envelope, grpc.StatusCode.UNAUTHENTICATED)

    check()


def test_signed_messages_with_arbitrary_fields_get_an_answer_or_a_status(
        harness: Harness) -> None:
    """From a trusted peer, correctly signed: it may be accepted (state may change), but
    nothing escapes the handler as an exception and no batch item fails INTERNAL."""
    @settings(FUZZ, max_examples=100)
    @given(rpc_kind=RPC_WITH_KIND, good_id=st.booleans(), data=st.data())
    def check(rpc_kind: tuple[str, str], good_id: bool, data) -> None:
        kind, rpc = rpc_kind
        envelope = harness.seal(harness.beta, **{kind: _arbitrary(data, kind, good_id)})
        result = harness.call(_method(harness, rpc), envelope)
        if isinstance(result, Aborted):
            assert result.code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL), \
                result.details
        else:
            body = peer_pb2.Body.FromString(result.body)
            assert body.sender == "alpha"
            for item in body.batch_reply.results:
                assert item.error_code != "INTERNAL", item.error
        harness.check_alive()

    check()


def test_malformed_workflow_ids_are_refused_invalid_argument(harness: Harness) -> None:
    @FUZZ
    @given(kind=KIND_WITH_ID, workflow_id=BAD_IDS, data=st.data())
    def check(kind: str, workflow_id: str, data) -> None:
        msg = _with_id(_arbitrary(data, kind), kind, workflow_id)
        envelope = harness.seal(harness.beta, **{kind: msg})
        _refused(harness, RPC_OF_KIND[kind], envelope, grpc.StatusCode.INVALID_ARGUMENT)

    check()


def test_malformed_workflow_ids_in_a_batch_are_refused_item_by_item(harness: Harness) -> None:
    batchable = sorted(ID_PATHS)

    @FUZZ
    @given(items=st.lists(st.tuples(st.sampled_from(batchable), BAD_IDS), min_size=1,
                          max_size=5), data=st.data())
    def check(items: list[tuple[str, str]], data) -> None:
        batch = peer_pb2.BatchRequest(items=[
            peer_pb2.Body(**{kind: _with_id(_arbitrary(data, kind), kind, workflow_id)})
            for kind, workflow_id in items])
        before = harness.snapshot()
        reply = harness.call(_method(harness, "Batch"), harness.seal(harness.beta, batch=batch))
        assert isinstance(reply, peer_pb2.Envelope), reply
        results = peer_pb2.Body.FromString(reply.body).batch_reply.results
        assert [r.error_code for r in results] == ["INVALID_ARGUMENT"] * len(items)
        assert harness.snapshot() == before
        harness.check_alive()

    check()


def test_a_replayed_envelope_is_refused_and_changes_nothing(harness: Harness) -> None:
    @FUZZ
    @given(rpc_kind=RPC_WITH_KIND, data=st.data())
    def check(rpc_kind: tuple[str, str], data) -> None:
        kind, rpc = rpc_kind
        envelope = harness.seal(harness.beta, **{kind: _arbitrary(data, kind)})
        harness.call(_method(harness, rpc), envelope)  # first delivery: whatever it earns
        _refused(harness, rpc, envelope, grpc.StatusCode.UNAUTHENTICATED)

    check()


def _claiming(signer: Signer, sender: str, kind: str, msg, now_ms: int) -> peer_pb2.Envelope:
    """A body in `sender`'s name, signed by `signer` (someone else)."""
    body = peer_pb2.Body(sender=sender, recipient="alpha", nonce=new_nonce(),
                         sent_at_ms=now_ms, **{kind: msg})
    data = body.SerializeToString(deterministic=True)
    return peer_pb2.Envelope(body=data, signature=signer.sign(data))


def test_a_message_re_signed_by_another_trusted_domain_is_refused(harness: Harness) -> None:
    """gamma, trusted, signs a message that claims to come from beta: either beta's own
    body re-signed, or a body gamma made in beta's name."""
    @FUZZ
    @given(rpc_kind=RPC_WITH_KIND, resign_original=st.booleans(), data=st.data())
    def check(rpc_kind: tuple[str, str], resign_original: bool, data) -> None:
        kind, rpc = rpc_kind
        msg = _arbitrary(data, kind)
        if resign_original:
            original = harness.seal(harness.beta, **{kind: msg})
            envelope = peer_pb2.Envelope(body=original.body,
                                         signature=harness.gamma.sign(original.body))
        else:
            envelope = _claiming(harness.gamma, "beta", kind, msg, harness.agent.now_ms())
        _refused(harness, rpc, envelope, grpc.StatusCode.UNAUTHENTICATED)

    check()


def test_a_message_from_an_untrusted_key_is_refused(harness: Harness) -> None:
    @FUZZ
    @given(rpc_kind=RPC_WITH_KIND, claim=st.sampled_from(["mallory", "beta", "alpha", ""]),
           data=st.data())
    def check(rpc_kind: tuple[str, str], claim: str, data) -> None:
        kind, rpc = rpc_kind
        envelope = _claiming(harness.mallory, claim, kind, _arbitrary(data, kind),
                             harness.agent.now_ms())
        _refused(harness, rpc, envelope, grpc.StatusCode.UNAUTHENTICATED)

    check()


def test_a_message_its_sender_has_no_authority_for_is_refused(harness: Harness) -> None:
    """beta speaks for gamma's workflows (PREPARE, cancel at epoch 0, compensate at epoch
    0) or reports a step in gamma's name: PERMISSION_DENIED, nothing changes."""
    @FUZZ
    @given(kind=st.sampled_from(["prepare", "cancel", "compensate", "step_result"]),
           local=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True), data=st.data())
    def check(kind: str, local: str, data) -> None:
        msg = _arbitrary(data, kind)
        if kind == "step_result":
            msg.workflow_id, msg.domain = f"alpha.{local}", "gamma"
        else:
            msg.workflow_id = f"gamma.{local}"
            if kind != "prepare":
                msg.epoch = 0
        envelope = harness.seal(harness.beta, **{kind: msg})
        _refused(harness, RPC_OF_KIND[kind], envelope, grpc.StatusCode.PERMISSION_DENIED)

    check()


def test_oversized_input_is_refused(harness: Harness) -> None:
    """A batch over the cap (INVALID_ARGUMENT), a megabyte of junk as body
    (UNAUTHENTICATED), a megabyte-long workflow id in a signed message (INVALID_ARGUMENT)."""
    item = peer_pb2.Body(decision_query=peer_pb2.DecisionQuery(workflow_id="alpha.wf1"))
    too_many = peer_pb2.BatchRequest(items=[item] * (MAX_BATCH_ITEMS + 1))
    _refused(harness, "Batch", harness.seal(harness.beta, batch=too_many),
             grpc.StatusCode.INVALID_ARGUMENT)
    junk = peer_pb2.Envelope(body=b"\xff" * (1 << 20), signature=b"\x00" * 64)
    _refused(harness, "Prepare", junk, grpc.StatusCode.UNAUTHENTICATED)
    huge = peer_pb2.PrepareRequest(workflow_id="beta." + "w" * (1 << 20), round=1, steps=["a"])
    _refused(harness, "Prepare", harness.seal(harness.beta, prepare=huge),
             grpc.StatusCode.INVALID_ARGUMENT)


@pytest.mark.parametrize("state", [-1, 0, 99, "STEP_STATE_COMPENSATED",
                                   "STEP_STATE_COMPENSATION_FAILED"])
def test_a_step_result_in_no_reportable_state_is_refused_and_changes_nothing(
        harness: Harness, state) -> None:
    """A number no step state has, UNSPECIFIED, or a state only the coordinator's
    compensation sets: the domain gets ok=False naming it (once, the fuzz found a -1
    raising in the handler)."""
    from fedorch.gen.fedorch.v1 import status_pb2

    value = status_pb2.StepState.Value(state) if isinstance(state, str) else state
    result = peer_pb2.StepResult(workflow_id="alpha.wf1", step_id="s", domain="beta",
                                 state=value)
    before = harness.snapshot()
    reply = harness.call(_method(harness, "ReportStep"),
                         harness.seal(harness.beta, step_result=result))
    assert isinstance(reply, peer_pb2.Envelope), reply
    ack = peer_pb2.Body.FromString(reply.body).ack
    assert not ack.ok and "is no step result" in ack.error, ack
    assert harness.snapshot() == before
    harness.check_alive()
