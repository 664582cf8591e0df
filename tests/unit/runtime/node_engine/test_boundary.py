"""The node engine's input boundary (runtime/node_engine/boundary.py): what a NodeTurn
envelope must pass before its messages reach the Node, and that each refusal is counted
and posts nothing (step outputs that are not JSON data included, and a lying
coordinator's PREPARE whose params are not a JSON object: the agent goes on)."""

from __future__ import annotations

import math
import random
import time
from dataclasses import replace

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.identity.submission import sign_spec
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import DecisionAck, DecisionQuery, TxInfo
from fedorch.core.node import Acks, Message, Node, Submit
from fedorch.core.node.authority import ACK_TYPES, MESSAGE_TYPES
from fedorch.core.node.records import AckMsg, PrepareMsg, ResultMsg, Timing, VoteMsg, WfInfo
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2, spec_pb2, status_pb2
from fedorch.runtime.driver import NodeDriver
from fedorch.runtime.node_codec import node_codec
from fedorch.runtime.node_engine.boundary import (
    AuthorizedNode,
    EnvelopeRefused,
    TurnBoundary,
    signed_submissions,
)
from fedorch.runtime.node_engine.status import status_of
from google.protobuf import struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.core.node.test_negotiation import WF, Federation
from tests.unit.runtime import node_values

ME = "alpha"
KEYS = {name: Ed25519PrivateKey.generate() for name in ("alpha", "beta", "stranger")}


class Clock:
    def monotonic(self) -> float:
        return time.monotonic()

    def wall_ms(self) -> int:
        return time.time_ns() // 1_000_000


class Recorder:
    """Ports that keep what the driver did with them."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, object]] = []
        self.writes: list[object] = []

    def send(self, dst: str, msg: object) -> None:
        self.sent.append((dst, msg))

    def write(self, writes) -> None:
        self.writes.extend(writes)

    def start(self, run) -> None:
        raise AssertionError(f"no step may start here: {run}")

    stop = start


class Harness:
    def __init__(self) -> None:
        self.clock = Clock()
        self.trust = TrustStore({name: KEYS[name].public_key() for name in ("alpha", "beta")})
        self.posted: list[object] = []
        self.metric: list[str] = []
        self.boundary = TurnBoundary(ME, self.trust, ReplayGuard(60_000), self.clock,
                                     node_codec(), self.posted.append,
                                     on_refused=self.metric.append)
        self.node = Node(ME, policy=config_pb2.Policy(accept_from=["*"]), capacities={},
                         timing=Timing(), peers=[ME, "beta"], rng=random.Random(1),
                         now=self.clock.monotonic())
        self.gate = AuthorizedNode(self.node, on_refused=self.metric.append)
        self.ports = Recorder()
        self.driver = NodeDriver(self.gate, self.clock, self.ports, self.ports, self.ports)

    def envelope(self, sender: str, msgs: tuple, *, recipient: str = ME,
                 payload: bytes | None = None) -> peer_pb2.Envelope:
        data = node_codec().encode(msgs) if payload is None else payload
        return seal(Signer(sender, KEYS[sender]), recipient=recipient,
                    now_ms=self.clock.wall_ms(), nonce=new_nonce(),
                    node_turn=peer_pb2.NodeTurn(messages=data))

    def refused_envelope(self, envelope: peer_pb2.Envelope) -> str:
        with pytest.raises(EnvelopeRefused) as refused:
            self.boundary.receive(envelope)
        return refused.value.reason


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_a_good_envelope_is_posted_and_stepped(h):
    query = DecisionQuery(("beta.wf-1", 1), "beta")
    sender, refused = h.boundary.receive(h.envelope("beta", (query,)))
    assert (sender, refused) == ("beta", [])
    assert h.posted == [Message("beta", query)]
    h.driver.turn(h.posted)
    assert h.driver.refused == {} and h.gate.refused == {}
    assert [dst for dst, _ in h.ports.sent] == ["beta"]  # the Node answered the query


def test_a_bad_signature_is_refused_and_counted(h):
    envelope = h.envelope("beta", (DecisionQuery(("beta.wf-1", 1), "beta"),))
    body = peer_pb2.Body.FromString(envelope.body)
    body.sent_at_ms += 1  # the bytes no longer match the signature
    envelope.body = body.SerializeToString()
    reason = h.refused_envelope(envelope)
    assert h.posted == [] and h.boundary.refused[reason] == 1 and h.metric == [reason]


def test_an_unknown_signer_is_refused(h):
    reason = h.refused_envelope(
        h.envelope("stranger", (DecisionQuery(("stranger.wf-1", 1), "stranger"),)))
    assert h.posted == [] and h.boundary.refused == {reason: 1}


def test_a_signer_removed_from_trust_is_refused(h):
    assert h.trust.remove("beta")
    h.refused_envelope(h.envelope("beta", (DecisionQuery(("beta.wf-1", 1), "beta"),)))
    assert h.posted == [] and sum(h.boundary.refused.values()) == 1


def test_an_envelope_for_another_domain_or_seen_before_is_refused(h):
    h.refused_envelope(h.envelope("beta", (AckMsg(("x", "beta")),), recipient="beta"))
    envelope = h.envelope("beta", (AckMsg(("x", "beta")),))
    h.boundary.receive(envelope)
    h.refused_envelope(envelope)  # a replay of the same envelope
    assert h.posted == [Acks("beta", (AckMsg(("x", "beta")),))]
    assert sum(h.boundary.refused.values()) == 2


def test_bytes_that_do_not_decode_are_refused(h):
    for payload in (b"not json", b'["Disk"]', b'"a string, not a tuple"'):
        assert h.refused_envelope(h.envelope("beta", (), payload=payload)) == "undecodable"
    assert h.posted == [] and h.boundary.refused == {"undecodable": 3}


def test_a_value_that_is_no_peer_message_is_dropped_alone(h):
    ack = AckMsg(("final", "alpha.wf-1", "beta"))
    sender, refused = h.boundary.receive(h.envelope("beta", (Timing(), ack)))
    assert [r.reason for r in refused] == ["not_a_message"]
    assert h.posted == [Acks("beta", (ack,))]
    assert h.boundary.refused == {"not_a_message": 1}


@pytest.mark.parametrize("msg, reason", [
    # A vote that names another domain than its signer.
    (VoteMsg(("alpha.wf-1", 1), "gamma", True, ""), "impersonation"),
    # A step result of a workflow not committed here.
    (ResultMsg("alpha.wf-2", "a", 1, StepState.SUCCEEDED, {}, ""), "not_known"),
    # An acknowledgement in another domain's name.
    (AckMsg(("final", "alpha.wf-1", "gamma")), "impersonation"),
])
def test_a_message_without_authority_never_reaches_the_node(h, msg, reason):
    h.boundary.receive(h.envelope("beta", (msg,)))
    # Signed and well formed: posted, and checked in the turn (ResultMsg has no __eq__).
    posted = Acks("beta", (msg,)) if type(msg) is AckMsg else Message("beta", msg)
    assert repr(h.posted) == repr([posted])
    before = (dict(h.node.state.rows), dict(h.node.state.results), dict(h.node.pending))
    h.driver.turn(h.posted)
    assert h.gate.refused == {reason: 1} and h.metric == [reason]
    assert h.driver.refused == {type(posted).__name__: 1}
    assert (dict(h.node.state.rows), dict(h.node.state.results), dict(h.node.pending)) \
        == before
    assert h.ports.sent == [] and h.ports.writes == []


def test_the_gate_refuses_as_the_node_does(h):
    with pytest.raises(RemoteProtocolError):
        h.gate.step(h.clock.monotonic(), Message("beta", VoteMsg(("alpha.wf-1", 1), "gamma",
                                                                True, "")))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=st.one_of(st.binary(max_size=300),
                         st.text(max_size=200).map(str.encode),
                         st.sampled_from([b'["t",["Submit","alpha.wf","x"]]', b'["t",["Tick"]]',
                                          b'["t",["CoordRow"]]', b'["t"]', b"[]", b"null"])))
def test_arbitrary_signed_bytes_post_only_peer_messages(payload):
    """Signed by a trusted peer, any bytes: refused whole, or only values of the Node's
    peer message types are posted; nothing raises but EnvelopeRefused."""
    h = Harness()
    try:
        h.boundary.receive(h.envelope("beta", (), payload=payload))
    except EnvelopeRefused as e:
        assert h.posted == [] and h.boundary.refused[e.reason] == 1
        return
    assert all(m.src == "beta" for m in h.posted)
    assert all(type(m.msg) in MESSAGE_TYPES if type(m) is Message
               else type(m) is Acks and m.acks and set(map(type, m.acks)) <= ACK_TYPES
               for m in h.posted)


def test_a_message_with_fields_of_the_wrong_shape_is_refused(h):
    """Its key an int: the checked decoding refuses the envelope, nothing is posted."""
    payload = msgpack.packb(["t", ["VoteMsg", 5, "beta", True, "", b""]])
    assert h.refused_envelope(h.envelope("beta", (), payload=payload)) == "undecodable"
    assert h.posted == [] and h.boundary.refused == {"undecodable": 1}


def test_a_wrong_shape_that_got_past_the_decoding_is_refused_by_the_gate(h):
    """The gate's own check stays: a value built unchecked (a row's decoding) with a
    key of the wrong shape is refused there, and the driver goes on."""
    (vote,) = node_codec().decode(msgpack.packb(["t", ["VoteMsg", 5, "beta", True, "", b""]]))
    h.driver.turn([Message("beta", vote)])
    assert h.gate.refused == {"malformed": 1} and h.driver.stopped is None


def _prepare(signed: spec_pb2.SignedSpec, spec: spec_pb2.WorkflowSpec) -> PrepareMsg:
    tx = TxInfo("beta.wf-1", 1, "beta", ("alpha", "beta"), ("alpha", "beta"))
    return PrepareMsg(tx, (("a", "test.echo"),), WfInfo(spec, {"a": "alpha"}, "beta",
                                                         submission=signed))


def test_a_prepare_is_admitted_only_with_its_submitters_signature():
    h = Harness()
    node = Node(ME, policy=config_pb2.Policy(accept_from=["*"]), capacities={"test.echo": 1},
                timing=Timing(), peers=[ME, "beta"], rng=random.Random(1),
                admit=signed_submissions(h.trust), now=h.clock.monotonic())
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="a",
                                                                    capability="test.echo")])
    signed = sign_spec("domain:beta", Signer("beta", KEYS["beta"]).sign, spec,
                       coordinator="beta")
    forged = spec_pb2.SignedSpec()
    forged.CopyFrom(signed)
    forged.signature = Signer("stranger", KEYS["stranger"]).sign(b"something else")
    altered = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(
        id="a", capability="test.echo", params=struct_pb2.Struct(fields={
            "rm": struct_pb2.Value(string_value="-rf")}))])
    for bad in (_prepare(forged, spec), _prepare(signed, altered)):
        with pytest.raises(RemoteProtocolError, match="submission"):
            node.step(h.clock.monotonic(), Message("beta", bad))
        ready = node.ready()
        assert len(node.state.holds) == 0 and not ready.send_now and not ready.writes
        node.advance(ready)
    node.step(h.clock.monotonic(), Message("beta", _prepare(signed, spec)))
    ready = node.ready()
    votes = [o.msg for o in (*ready.send_now, *ready.send_after_write)]
    assert [(type(v).__name__, v.yes) for v in votes] == [("VoteMsg", True)]


def _vote_on(node: Node, now: float, msg: PrepareMsg) -> VoteMsg:
    node.step(now, Message("beta", msg))
    ready = node.ready()
    node.advance(ready)
    (vote,) = [o.msg for o in (*ready.send_now, *ready.send_after_write)
               if type(o.msg) is VoteMsg]
    return vote


def test_the_policy_weighs_the_principal_of_the_prepares_signed_spec():
    """`accept_from: [{domain: beta, principals: [alice]}]`: a YES for alice's signed
    spec, a NO naming the rule for bob's, and for a PREPARE that carries none (the
    coordinator's word alone: principal domain:beta)."""
    h = Harness()
    clients = {name: Ed25519PrivateKey.generate() for name in ("alice", "bob")}
    policy = config_pb2.Policy(accept_from_principals=[
        config_pb2.AcceptFrom(domain="beta", principals=["alice"])])
    node = Node(ME, policy=policy, capacities={"test.echo": 4}, timing=Timing(),
                peers=[ME, "beta"], rng=random.Random(1), admit=signed_submissions(h.trust),
                wall_ms=lambda now: time.time_ns() // 1_000_000, now=h.clock.monotonic())
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="a",
                                                                    capability="test.echo")])

    def prepare(workflow: str, principal: str | None) -> PrepareMsg:
        signed = None if principal is None else sign_spec(
            principal, clients[principal].sign, spec,
            clients[principal].public_key().public_bytes_raw(), request_id=workflow,
            issued_at_ms=time.time_ns() // 1_000_000, coordinator="beta")
        tx = TxInfo(f"beta.{workflow}", 1, "beta", ("alpha", "beta"), ("alpha", "beta"))
        return PrepareMsg(tx, (("a", "test.echo"),),
                          WfInfo(spec, {"a": "alpha"}, "beta", submission=signed))

    yes = _vote_on(node, h.clock.monotonic(), prepare("wf-alice", "alice"))
    assert (yes.yes, yes.reason) == (True, "")
    no = _vote_on(node, h.clock.monotonic(), prepare("wf-bob", "bob"))
    assert not no.yes
    assert "accept_from: principal 'bob@beta' is not accepted from coordinator 'beta'" \
        in no.reason, no.reason
    unsigned = _vote_on(node, h.clock.monotonic(), prepare("wf-none", None))
    assert not unsigned.yes and "principal 'domain:beta'" in unsigned.reason, unsigned.reason
    assert set(node.state.holds) == {("beta.wf-alice", 1)}  # only alice's is held


@pytest.mark.parametrize("constraints, labels, why", [
    ({"domains": ["beta"]}, {}, "constraints: step 'a' may run only in beta, not alpha"),
    ({"labels": {"zone": "vault"}}, {"zone": "open"},
     "constraints: step 'a' wants zone=vault; alpha has zone=open"),
])
def test_a_prepare_placing_a_step_against_its_constraints_passes_the_hook_and_gets_a_no(
        constraints, labels, why):
    """The spec is the submitter's, the placement only its coordinator's word: a signed
    spec placed here against its own constraints passes the admit hook (nothing is
    wrong with its evidence) and gets a NO saying why from the Node (core/node/votes.py),
    nothing held; placed where they allow (the labels a reconfigure gave), a YES."""
    h = Harness()
    node = Node(ME, policy=config_pb2.Policy(accept_from=["*"]), capacities={"test.echo": 1},
                timing=Timing(), peers=[ME, "beta"], rng=random.Random(1),
                admit=signed_submissions(h.trust), labels=labels, now=h.clock.monotonic())
    step = spec_pb2.StepSpec(id="a", capability="test.echo")
    step.constraints.domains.extend(constraints.get("domains", []))
    step.constraints.labels.update(constraints.get("labels", {}))
    spec = spec_pb2.WorkflowSpec(name="w", steps=[step])
    signed = sign_spec("domain:beta", Signer("beta", KEYS["beta"]).sign, spec,
                       coordinator="beta")
    vote = _vote_on(node, h.clock.monotonic(), _prepare(signed, spec))
    assert (vote.yes, vote.reason) == (False, f"invalid PREPARE: {why}")
    assert len(node.state.holds) == 0
    # Allowed here (its labels changed, or the step unbound): YES.
    node.reconfigure(policy=node.policy, capacities=node.capacities,
                     labels={**labels, **constraints.get("labels", {})})
    del step.constraints.domains[:]
    allowed = spec_pb2.WorkflowSpec(name="w", steps=[step])
    signed = sign_spec("domain:beta", Signer("beta", KEYS["beta"]).sign, allowed,
                       coordinator="beta")
    prepare = _prepare(signed, allowed)
    tx = replace(prepare.tx, workflow_id="beta.wf-2")
    vote = _vote_on(node, h.clock.monotonic(), replace(prepare, tx=tx))
    assert vote.yes, vote.reason


def test_each_run_of_acknowledgements_is_posted_as_one_input_in_its_place(h):
    acks = (AckMsg(("result", "alpha.wf-1", "s", "beta")), DecisionAck(("alpha.wf-1", 1), "beta"))
    query = DecisionQuery(("beta.wf-1", 1), "beta")
    last = AckMsg(("final", "alpha.wf-2", "beta"))
    h.boundary.receive(h.envelope("beta", (*acks, query, last)))
    assert h.posted == [Acks("beta", acks), Message("beta", query), Acks("beta", (last,))]
    assert (h.boundary.posted, h.boundary.inputs) == (4, 3)
    h.driver.turn(h.posted)
    assert h.driver.refused == {} and h.gate.refused == {}


def test_an_acknowledgement_without_authority_is_refused_alone(h):
    # beta acknowledges in gamma's name once, in its own once: the second is stepped.
    h.node.pending[("final", "alpha.wf-1", "beta")] = ["beta", None, 1e18, 1.0]
    h.node.pending[("final", "alpha.wf-1", "gamma")] = ["gamma", None, 1e18, 1.0]
    forged = AckMsg(("final", "alpha.wf-1", "gamma"))
    own = AckMsg(("final", "alpha.wf-1", "beta"))
    h.boundary.receive(h.envelope("beta", (forged, own)))
    h.driver.turn(h.posted)
    assert h.gate.refused == {"impersonation": 1} and h.metric == ["impersonation"]
    assert h.driver.refused == {"Acks": 1}
    assert ("final", "alpha.wf-1", "beta") not in h.node.pending
    assert ("final", "alpha.wf-1", "gamma") in h.node.pending


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs=node_values.not_json_outputs)
def test_a_result_whose_outputs_are_not_json_data_is_decoded_then_refused(outputs):
    """A dict of bytes, a NaN, a key that is no str, nesting past values.MAX_DEPTH: the
    checked decoding lets it through (`outputs` is a dict), the gate refuses it
    (`not_json`) before the Node sees it, counted and logged; the driver goes on."""
    h = Harness()
    bad = ResultMsg("alpha.wf-1", "s", 1, StepState.SUCCEEDED, outputs, "")
    h.boundary.receive(h.envelope("beta", (bad,)))
    assert len(h.posted) == 1 and h.boundary.refused == {}
    h.driver.turn(h.posted)
    assert h.gate.refused == {"not_json": 1} and h.metric == ["not_json"]
    assert h.driver.refused == {"Message": 1} and h.driver.stopped is None
    assert h.node.state.results == {} and h.ports.sent == [] and h.ports.writes == []


def test_the_status_of_a_workflow_is_built_after_a_result_not_json_was_refused():
    """d1 runs s, which t needs: its result with outputs that are not JSON data is
    refused at d0's gate, so t does not start on them and d0's status is built (once
    such outputs were taken, `values.write_object` raised for every status of it); the
    good result that follows is taken."""
    fed = Federation()
    spec_ = spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s", capability="a"),
        spec_pb2.StepSpec(id="t", capability="a", needs=["s"])])
    fed.step("d0", Submit(WF, spec_, placement={"s": "d1", "t": "d0"}))
    fed.deliver()
    (run,) = fed.running["d1"]
    gate = AuthorizedNode(fed.nodes["d0"])
    bad = ResultMsg(WF, "s", run[2], StepState.SUCCEEDED, {"x": b"raw", "n": math.nan}, "")
    with pytest.raises(RemoteProtocolError, match="not_json"):
        gate.step(fed.now, Message("d1", bad))
    assert gate.refused == {"not_json": 1} and fed.running["d0"] == set()
    steps = {s.id: s for s in status_of(fed.nodes["d0"], WF).steps}
    assert steps["t"].state == status_pb2.STEP_STATE_WAITING
    assert steps["s"].outputs_json == ""
    good = ResultMsg(WF, "s", run[2], StepState.SUCCEEDED, {"x": "cmF3"}, "")
    gate.step(fed.now, Message("d1", good))
    fed.flush("d0")
    steps = {s.id: s for s in status_of(fed.nodes["d0"], WF).steps}
    assert steps["s"].state == status_pb2.STEP_STATE_SUCCEEDED
    assert steps["s"].outputs_json == '{"x":"cmF3"}'
    assert fed.running["d0"] == {(WF, "t", 1)}


class _Steps(Recorder):
    """Ports that start the steps (they never end here)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[tuple[str, str, int]] = []

    def start(self, run) -> None:
        self.started.append(run)

    def stop(self, run) -> None:
        raise AssertionError(f"no step is stopped here: {run}")


def _lying_coordinator(params_json: str):
    """beta, an honest Node, and what it sends alpha with every PREPARE's spec given
    `params_json` on its step (beta's own spec stays good: its lie is to alpha only)."""
    def lie(msg: object) -> object:
        if type(msg) is not PrepareMsg:
            return msg
        spec = spec_pb2.WorkflowSpec()
        spec.CopyFrom(msg.info.spec)
        spec.steps[0].params_json = params_json
        return replace(msg, info=replace(msg.info, spec=spec))
    return lie


def _relay(h: Harness, beta: Node, lie=lambda msg: msg) -> None:
    """beta's messages to alpha through alpha's boundary and driver, alpha's answers
    stepped into beta, until neither sends any more."""
    for _ in range(20):
        ready = beta.ready()
        beta.advance(ready)
        out = [(o.to, o.msg) for o in (*ready.send_now, *ready.send_after_write)]
        to_alpha = tuple(lie(msg) for to, msg in out if to == ME)
        if to_alpha:
            h.posted.clear()
            h.boundary.receive(h.envelope("beta", to_alpha))
            h.driver.turn(list(h.posted))
        while h.driver.looped:  # what alpha sent itself (its acceptor's, say)
            h.driver.turn()
        answers, h.ports.sent = h.ports.sent, []
        now = h.clock.monotonic()
        for msg in (msg for to, msg in out if to == "beta"):
            beta.step(now, Message("beta", msg))
        for dst, msg in answers:
            assert dst == "beta", dst
            beta.step(now, Message(ME, msg))
        if not (to_alpha or answers or any(to == "beta" for to, _ in out)):
            return
    raise AssertionError("beta and alpha did not settle")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params_json=node_values.not_json_params)
def test_a_prepare_whose_params_are_not_a_json_object_is_refused_and_the_agent_goes_on(
        params_json):
    """beta coordinates a step placed on alpha and lies in the PREPARE it sends: the
    step's params are text alpha cannot read as a JSON object. Taken, alpha voted YES
    and its driver stopped at the COMMIT (building the workflow's progress raised);
    the gate refuses the PREPARE (`not_json`), alpha holds and sends nothing for it,
    and the next workflow beta places on it is voted on and started."""
    h = Harness()
    h.node = Node(ME, policy=config_pb2.Policy(accept_from=["*"]),
                  capacities={"test.echo": 1}, timing=Timing(), peers=[ME, "beta"],
                  rng=random.Random(1), now=h.clock.monotonic())
    h.gate = AuthorizedNode(h.node, on_refused=h.metric.append)
    h.ports = _Steps()
    h.driver = NodeDriver(h.gate, h.clock, h.ports, h.ports, h.ports, loopback=ME)
    beta = Node("beta", policy=config_pb2.Policy(accept_from=["*"]), capacities={},
                timing=Timing(), peers=[ME, "beta"], rng=random.Random(2),
                now=h.clock.monotonic())
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(
        id="a", capability="test.echo", params_json='{"rows":3}')])
    beta.step(h.clock.monotonic(), Submit("beta.w1", spec, placement={"a": ME}))
    _relay(h, beta, _lying_coordinator(params_json))
    assert h.driver.stopped is None
    assert h.gate.refused == {"not_json": 1} and h.metric == ["not_json"]
    assert h.driver.refused == {"Message": 1}
    assert h.node.state.holds == {} and h.node.state.info == {} and h.ports.started == []
    beta.step(h.clock.monotonic(), Submit("beta.w2", spec, placement={"a": ME}))
    _relay(h, beta)
    assert h.driver.stopped is None and h.ports.started == [("beta.w2", "a", 1)]
