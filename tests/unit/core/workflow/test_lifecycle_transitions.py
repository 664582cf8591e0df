"""Workflow lifecycle core: every (state, input) pair, in the h2 style.

The expected table is written out here on its own (from the module's theory of
operation), so a change of the core's table that the docs do not follow fails.
"""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.workflow import lifecycle as lc
from fedorch.core.workflow.lifecycle import WorkflowState as S
from fedorch.gen.fedorch.v1 import status_pb2
from hypothesis import given
from hypothesis import strategies as st

ENDS = (S.SUCCEEDED, S.FAILED, S.ABORTED, S.CANCELLED)
FINAL = "final"  # the terminal state the end notice carries

EXPECTED: dict[tuple[S, type[lc.Event]], S | str] = {
    (S.PENDING, lc.Submitted): S.NEGOTIATING,
    (S.PENDING, lc.Committed): S.RUNNING,
    (S.PENDING, lc.Ended): FINAL,
    (S.NEGOTIATING, lc.Committed): S.RUNNING,
    (S.NEGOTIATING, lc.Aborted): S.ABORTED,
    (S.NEGOTIATING, lc.Cancelled): S.CANCELLED,
    (S.RUNNING, lc.Committed): S.RUNNING,
    (S.RUNNING, lc.Succeeded): S.SUCCEEDED,
    (S.RUNNING, lc.Failed): S.FAILED,
    (S.RUNNING, lc.Cancelled): S.CANCELLED,
    (S.RUNNING, lc.Ended): FINAL,
}
for _end in ENDS:
    for _kind in (lc.Committed, lc.Succeeded, lc.Failed, lc.Cancelled, lc.Ended):
        EXPECTED[(_end, _kind)] = _end

reasons = st.text(max_size=20)
events = st.one_of(
    st.builds(lc.Submitted),
    st.builds(lc.Committed),
    st.builds(lc.Aborted, reason=reasons),
    st.builds(lc.Cancelled, reason=reasons),
    st.builds(lc.Succeeded),
    st.builds(lc.Failed, reason=reasons),
    st.builds(lc.Ended, final=st.sampled_from(ENDS), reason=reasons),
)


@given(state=st.sampled_from(list(S)), event=events)
def test_every_state_and_input_moves_as_the_table_says_or_is_refused(state, event) -> None:
    expected = EXPECTED.get((state, type(event)))
    if expected is None:
        error = RemoteProtocolError if isinstance(event, lc.Ended) else LocalProtocolError
        with pytest.raises(error, match=f"{state.name}: {type(event).__name__}"):
            lc.step(state, event)
        assert lc.target(state, type(event)) is None
        return
    after = lc.step(state, event)
    assert after is (event.final if expected == FINAL else expected)  # type: ignore[union-attr]
    assert isinstance(after, S)


@given(state=st.sampled_from(sorted(lc.TERMINAL)), event=events)
def test_a_terminal_state_never_leaves(state, event) -> None:
    try:
        assert lc.step(state, event) is state
    except LocalProtocolError:  # only our own impossible inputs: a submission, an abort
        assert isinstance(event, lc.Submitted | lc.Aborted)


@given(state=st.sampled_from(list(S)), events=st.lists(events, max_size=12))
def test_any_sequence_of_inputs_ends_where_it_entered_a_terminal_state(state, events) -> None:
    first_end = None
    for event in events:
        try:
            state = lc.step(state, event)
        except (LocalProtocolError, RemoteProtocolError):
            continue  # refused: nothing changed
        if state in lc.TERMINAL and first_end is None:
            first_end = state
    assert first_end is None or state is first_end


def test_the_table_covers_exactly_the_expected_pairs() -> None:
    allowed = {(s, k) for s in S for k in lc.EVENT_TYPES if lc.target(s, k) is not None}
    assert allowed == set(EXPECTED)


def test_states_are_the_proto_values_and_names() -> None:
    proto = {n.removeprefix("WORKFLOW_STATE_"): v for n, v in status_pb2.WorkflowState.items()
             if v != status_pb2.WORKFLOW_STATE_UNSPECIFIED}
    assert {s.name: int(s) for s in S} == proto
    assert lc.TERMINAL_NAMES == {"SUCCEEDED", "FAILED", "ABORTED", "CANCELLED"}


def test_a_cancel_is_its_own_input_not_a_reason() -> None:
    assert lc.step(S.NEGOTIATING, lc.Aborted("cancelled: by request")) is S.ABORTED
    assert lc.step(S.NEGOTIATING, lc.Cancelled("no reason given")) is S.CANCELLED


@pytest.mark.parametrize("value", [status_pb2.WORKFLOW_STATE_UNSPECIFIED,
                                   status_pb2.WORKFLOW_STATE_RUNNING,
                                   status_pb2.WORKFLOW_STATE_NEGOTIATING, 99])
def test_an_end_notice_without_a_terminal_state_is_the_peers_error(value) -> None:
    with pytest.raises(RemoteProtocolError, match="terminal state"):
        lc.Ended.from_wire(value, "done")


def test_an_end_notice_carries_its_state_and_reason() -> None:
    event = lc.Ended.from_wire(status_pb2.WORKFLOW_STATE_FAILED, "step a failed")
    assert event.final is S.FAILED and event.reason == "step a failed"
    assert lc.step(S.RUNNING, event) is S.FAILED


def test_step_states_are_the_protos_names() -> None:
    from fedorch.core.workflow.progress import StepState

    proto = {n.removeprefix("STEP_STATE_") for n, v in status_pb2.StepState.items()
             if v != status_pb2.STEP_STATE_UNSPECIFIED}
    assert {s.value for s in StepState} == proto
