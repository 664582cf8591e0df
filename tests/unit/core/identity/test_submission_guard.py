"""A signed submission is admitted under one workflow id only, within its window
(agent/core/identity/submission_guard.py)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.submission import MAX_CLOCK_SKEW_MS, SubmissionError, sign_spec
from fedorch.core.identity.submission_guard import SubmissionGuard, submission_key
from fedorch.gen.fedorch.v1 import spec_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

KEY = Ed25519PrivateKey.generate()
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="a", capability="x")])
NOW_MS = 1_800_000_000_000
WINDOW_MS = 600_000


def _signed(request_id: str = "r-1", issued_at_ms: int = NOW_MS,
            principal: str = "alice", public_key: bytes = b"k" * 32) -> spec_pb2.SignedSpec:
    return sign_spec(principal, KEY.sign, SPEC, public_key=public_key,
                     request_id=request_id, issued_at_ms=issued_at_ms)


def _admit(guard: SubmissionGuard, signed, workflow_id: str, now_ms: int = NOW_MS):
    admission = guard.check(signed, workflow_id, now_ms)
    if admission is not None:
        guard.record(admission)
    return admission


def test_a_submission_is_admitted_under_its_first_workflow_id_only():
    guard = SubmissionGuard(WINDOW_MS)
    first = _admit(guard, _signed(), "eu-west.1")
    assert first is not None and first.new
    again = guard.check(_signed(), "eu-west.1", NOW_MS + 1000)  # a later round of it
    assert again is not None and not again.new
    with pytest.raises(SubmissionError, match="admitted here as workflow eu-west.1: "
                                              "replayed as eu-west.2"):
        guard.check(_signed(), "eu-west.2", NOW_MS + 1000)


def test_check_alone_admits_nothing():
    guard = SubmissionGuard(WINDOW_MS)
    guard.check(_signed(), "eu-west.1", NOW_MS)  # checked, then a NO: not recorded
    assert len(guard) == 0
    assert guard.check(_signed(), "eu-west.2", NOW_MS) is not None


def test_stale_and_future_submissions_are_refused():
    guard = SubmissionGuard(WINDOW_MS)
    with pytest.raises(SubmissionError, match="older than"):
        guard.check(_signed(issued_at_ms=NOW_MS - WINDOW_MS - 1), "w.1", NOW_MS)
    with pytest.raises(SubmissionError, match="in the future"):
        guard.check(_signed(issued_at_ms=NOW_MS + MAX_CLOCK_SKEW_MS + 1), "w.1", NOW_MS)
    unbound = _signed(request_id="")
    with pytest.raises(SubmissionError, match="not bound to a request"):
        guard.check(unbound, "w.1", NOW_MS)


def test_a_domains_own_spec_is_not_bound():
    guard = SubmissionGuard(WINDOW_MS)
    own = sign_spec("domain:eu-west", KEY.sign, SPEC)
    assert guard.check(own, "eu-west.1", NOW_MS) is None


def test_a_restarted_guard_still_refuses_the_replay():
    guard = SubmissionGuard(WINDOW_MS)
    admission = _admit(guard, _signed(), "eu-west.1")
    restarted = SubmissionGuard(WINDOW_MS)
    restarted.restore([(admission.key, admission.workflow_id, admission.issued_at_ms)])
    with pytest.raises(SubmissionError, match="replayed"):
        restarted.check(_signed(), "eu-west.2", NOW_MS)


def test_the_key_names_principal_key_and_request():
    base = submission_key(_signed())
    assert submission_key(_signed(issued_at_ms=NOW_MS + 5)) == base  # re-signed later
    assert submission_key(_signed(request_id="r-2")) != base
    assert submission_key(_signed(principal="bob")) != base
    assert submission_key(_signed(public_key=b"j" * 32)) != base


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4),
                                 st.integers(0, 3 * WINDOW_MS)), max_size=40))
def test_no_submission_is_ever_admitted_under_two_workflow_ids(events):
    """Any sequence of PREPAREs (request, workflow id, time; time only moves forward),
    with sweeps between them: each request id is admitted under one workflow id at most,
    and nothing older than the window is admitted."""
    guard = SubmissionGuard(WINDOW_MS)
    admitted: dict[str, str] = {}
    now = NOW_MS
    for request, workflow, step in sorted(events, key=lambda e: e[2]):
        now = NOW_MS + step
        signed = _signed(request_id=f"r-{request}")
        guard.forget_before(now)
        try:
            admission = _admit(guard, signed, f"eu-west.{workflow}", now)
        except SubmissionError:
            continue
        assert admission is not None
        assert now - signed.issued_at_ms <= WINDOW_MS or not admission.new
        assert admitted.setdefault(signed.request_id, admission.workflow_id) \
            == admission.workflow_id
