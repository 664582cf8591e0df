"""The node engine's client service: the random part of the workflow ids it makes, and
the spec signatures it makes for open-access submissions."""

from __future__ import annotations

import re
from types import SimpleNamespace

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.submission import check_prepare_submission
from fedorch.core.identity.trust import TrustStore
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2
from fedorch.runtime.node_engine.own_specs import SPEC_SIGNATURE_REUSE_MS, OwnSpecSignatures
from fedorch.runtime.node_engine.services import NodeClientService, _RandomSuffixes


def test_id_suffixes_are_eight_hex_digits_and_differ_across_refills():
    suffixes = _RandomSuffixes()
    per_chunk = _RandomSuffixes.CHUNK // 4  # 4 random bytes per suffix
    drawn = [suffixes.next() for _ in range(3 * per_chunk + 5)]  # three refills and more
    assert all(re.fullmatch(r"[0-9a-f]{8}", s) for s in drawn), drawn[:5]
    # 32 random bits each: ~3,000 draws collide with odds of about 1 in 1,000.
    assert len(set(drawn)) >= len(drawn) - 1
    # A refill reads new bytes: the next chunk does not repeat the first.
    assert drawn[:per_chunk] != drawn[per_chunk:2 * per_chunk]


class _Agent:
    """What OwnSpecSignatures reads of the agent: its domain, key, trust store, clock."""

    def __init__(self) -> None:
        self.domain = "c1"
        self.signer = Signer("c1", Ed25519PrivateKey.generate())
        self.trust = TrustStore({"c1": self.signer.public_key()})
        self.wall_ms = 1_000_000

    def now_ms(self) -> int:
        return self.wall_ms


SPEC = parse_spec_text("""
name: s
steps:
  - {id: a, capability: x}
""", "s")


def _check(agent: _Agent, signed) -> None:
    # What a participant checks of the PREPARE's signed spec: it verifies, by c1's key.
    assert check_prepare_submission(signed, coordinator="c1", spec=SPEC,
                                    trust=TrustStore({"c1": agent.signer.public_key()}))


def test_an_own_spec_signature_is_used_again_for_the_same_bytes_within_its_span():
    agent, signatures = _Agent(), OwnSpecSignatures()
    first = signatures.signed(agent, SPEC)
    agent.wall_ms += SPEC_SIGNATURE_REUSE_MS - 1
    again = signatures.signed(agent, SPEC)
    assert (signatures.made, signatures.reused) == (1, 1)
    assert again == first and again is not first  # the same signature, a copy of its own
    again.issued_at_ms = 1  # a submission's copy changes nothing kept
    assert signatures.signed(agent, SPEC) == first
    _check(agent, first)
    # Another spec is signed anew.
    other = parse_spec_text("name: t\nsteps:\n  - {id: b, capability: x}\n", "t")
    assert signatures.signed(agent, other).spec != first.spec
    assert signatures.made == 2


def test_an_own_spec_signature_is_made_anew_after_its_span_a_clock_step_back_or_a_new_key():
    agent, signatures = _Agent(), OwnSpecSignatures()
    first = signatures.signed(agent, SPEC)
    agent.wall_ms += SPEC_SIGNATURE_REUSE_MS  # the span is over
    later = signatures.signed(agent, SPEC)
    assert later.issued_at_ms == agent.wall_ms and later.signature != first.signature
    agent.wall_ms -= 2 * SPEC_SIGNATURE_REUSE_MS  # the wall clock stepped back
    assert signatures.signed(agent, SPEC).issued_at_ms == agent.wall_ms
    assert signatures.made == 3
    agent.signer.rekey(Ed25519PrivateKey.generate())  # a rotation: the old one is not used
    rotated = signatures.signed(agent, SPEC)
    assert signatures.made == 4
    _check(agent, rotated)


# ---- a domain whose own key is revoked takes no submission ---------------------------


class _Aborted(Exception):
    pass


class _Context:
    def set_trailing_metadata(self, metadata) -> None:
        pass

    def peer(self) -> str:
        return "ipv4:127.0.0.1:1"

    async def abort(self, code, details):
        raise _Aborted(code, details)


class _Keys:
    def __init__(self, revoked: bool) -> None:
        self.current = None if revoked else object()
        self.revoked = {b"old"} if revoked else set()


class _SubmittedTo:
    """What the client service reads of the agent before it looks at a submission."""

    def __init__(self, revoked: bool) -> None:
        self.domain = "c1"
        self.trust = type("Trust", (), {"keys_of": lambda _, d: _Keys(revoked)})()
        self.store = type("Store", (), {"write_fault": None})()
        self.membership = type("Membership", (), {"rejoined": lambda _: True})()
        self.refused: list[tuple[str, str]] = []
        agent = self

        class _Audit:
            async def refused(self, request: str, reason: str, **_) -> None:
                agent.refused.append((request, reason))

        self.audit = _Audit()


def _service(revoked: bool):
    import collections

    from fedorch.runtime.node_engine.services import NodeClientService

    service = NodeClientService.__new__(NodeClientService)
    service.agent = _SubmittedTo(revoked)
    service.engine = type("Engine", (), {"write_fault": None})()
    service._by_request = collections.OrderedDict(r1="c1.known")
    return service


async def test_a_domain_whose_key_is_revoked_refuses_submissions_naming_why():
    import grpc
    from fedorch.gen.fedorch.v1 import client_pb2

    request = client_pb2.SubmitRequest(request_id="r1")
    # With a valid key the submission goes on (here: a retry, answered its workflow).
    assert await _service(revoked=False)._take(request, _Context()) == "c1.known"
    service = _service(revoked=True)
    try:
        await service._take(request, _Context())
    except _Aborted as e:
        code, details = e.args
    else:
        raise AssertionError("a domain without a valid key took a submission")
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "domain c1 has no valid key (its key is revoked)" in details
    assert service.agent.refused == [("submit", details)]  # audited


# ---- a spec no domain can take is taken, with why -----------------------------------


async def test_a_spec_no_domain_can_take_is_taken_with_the_steps_and_why():
    import collections

    from fedorch.runtime.node_engine.placing import SubmissionPlans

    service = _service(revoked=False)
    service._by_request = collections.OrderedDict()
    service.agent.now_ms = lambda: 1_000
    service.plans = SubmissionPlans("c1")
    service.candidates = SimpleNamespace(now=lambda: [])  # no member offers anything
    service._id_suffixes = _RandomSuffixes()
    service._own_signatures = SimpleNamespace(signed=lambda agent, spec: None)
    spec = parse_spec_text("name: nowhere\nsteps:\n  - {id: s, capability: x}\n", "test")

    async def signed_spec(request, context):
        return request.spec, None

    service._signed_spec = signed_spec
    taken = await service._take(client_pb2.SubmitRequest(spec=spec), _Context())
    assert taken.workflow_id.startswith("c1.") and taken.placement == {}
    assert taken.unplaceable == {"s": "no eligible domain for 'x' (no members known)"}, taken


# ---- GetWorkflow at a participant that follows a successor ------------------------------

WF = "coord.01a245ee5d7c985ee38f"


class _Stub:
    """A peer's client stub that answers GetWorkflow with `status` (None: unreachable)."""

    def __init__(self, status: status_pb2.WorkflowStatus | None) -> None:
        self.status, self.asked = status, []

    async def GetWorkflow(self, request, timeout):
        self.asked.append((request.id, request.local_only))
        if self.status is None:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                       grpc.aio.Metadata(), "unreachable")
        return self.status


def _participant(local: status_pb2.WorkflowStatus, stubs: dict[str, _Stub]):
    """The client service of p2, which knows WF as `local`; `stubs`: its peers'."""
    service = object.__new__(NodeClientService)

    async def read(workflow_id: str):
        return local if workflow_id == WF else None

    service.engine = SimpleNamespace(view=SimpleNamespace(read=read))
    service.agent = SimpleNamespace(domain="p2")
    service._stub = stubs.get
    return service


def _status(coordinator: str, epoch: int, compensation: str) -> status_pb2.WorkflowStatus:
    return status_pb2.WorkflowStatus(
        id=WF, coordinator=coordinator, epoch=epoch,
        state=status_pb2.WORKFLOW_STATE_FAILED,
        compensation=status_pb2.CompensationSummary.Value(f"COMPENSATION_SUMMARY_{compensation}"))


async def test_a_participant_following_a_successor_answers_the_successors_status():
    successor = _Stub(_status("p1", 1, "DONE"))
    service = _participant(_status("p1", 1, "NONE"), {"coord": _Stub(None), "p1": successor})
    answer = await service.GetWorkflow(client_pb2.GetWorkflowRequest(id=WF), context=None)
    assert answer.compensation == status_pb2.COMPENSATION_SUMMARY_DONE
    assert successor.asked == [(WF, True)]  # asked for what it knows itself


async def test_its_own_status_when_the_successor_cannot_answer_or_local_only_is_asked():
    local = _status("p1", 1, "NONE")
    service = _participant(local, {"coord": _Stub(None), "p1": _Stub(None)})
    assert await service.GetWorkflow(client_pb2.GetWorkflowRequest(id=WF), None) == local
    successor = _Stub(_status("p1", 1, "DONE"))
    service = _participant(local, {"p1": successor})
    answer = await service.GetWorkflow(client_pb2.GetWorkflowRequest(id=WF, local_only=True),
                                       None)
    assert answer == local and successor.asked == []


async def test_in_epoch_0_the_original_is_the_one_asked_not_a_successor():
    original = _Stub(_status("coord", 0, "DONE"))
    service = _participant(_status("coord", 0, "NONE"), {"coord": original})
    answer = await service.GetWorkflow(client_pb2.GetWorkflowRequest(id=WF), None)
    assert answer.compensation == status_pb2.COMPENSATION_SUMMARY_DONE
    assert original.asked == [(WF, True)]
