"""An `Ended` record's own answers (core/negotiation/coordinator_ended.py): for any
record and any late input, what `record_tx`, `tells_abort_again`, `check_ack` and
`answer_query` say is what the core `revive` builds from that record does."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.coordinator_ended import (
    Ended,
    answer_query,
    check_ack,
    record_tx,
    revive,
    tells_abort_again,
)
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import ABORT, Value, VoteIn
from fedorch.core.negotiation.rounds import ConsensusOptions, SendDecision
from hypothesis import given
from hypothesis import strategies as st

WF = "d0.w1"
ME = "d0"
DOMAINS = ("d0", "d1", "d2", "d3")
COMMIT = Value(True)


@st.composite
def records(draw) -> tuple[Ended, dict[str, str], tuple[str, ...], dict[int, Value]]:
    """A record as `ended` makes them (its last round COMMITTED and collected, or
    ABORTED; the rounds it told ABORT among those it decided ABORT), with the round's
    placement, acceptors and proposal cells on the tables."""
    last = draw(st.integers(0, 4))
    committed = last >= 1 and draw(st.booleans())
    earlier = range(1, last + (0 if committed else 1))
    aborted = tuple(sorted(draw(st.sets(st.sampled_from(earlier)))) if earlier else ())
    told = tuple(r for r in aborted if draw(st.booleans()))
    consensus = draw(st.booleans())
    cells = {r: ABORT for r in aborted} if consensus else {}
    if consensus and committed:
        cells[last] = COMMIT
    placement = {f"s{i}": draw(st.sampled_from(DOMAINS[1:])) for i in range(draw(
        st.integers(1, 3)))}
    acceptors = tuple(sorted({ME, *placement.values()})) if consensus else ()
    record = Ended(last, committed, consensus, tuple(sorted(cells)), aborted, told,
                   (last,) if committed else ())
    return record, placement, acceptors, cells


def core_of(record: Ended, placement: dict[str, str], acceptors: tuple[str, ...],
            cells: dict[int, Value]):
    return revive(record, WF, placement=placement, acceptors=acceptors,
                  cells=cells.get, refusals=(), placer=lambda excluded: None,
                  max_rounds=5, prepare_timeout_s=3.0,
                  consensus=ConsensusOptions(ME, random.Random(0)) if record.consensus
                  else None, me=ME, resend_s=None, decision_resend_s=None, now=10.0)


def _refusal(call) -> str | None:
    try:
        call()
    except RemoteProtocolError as e:
        return str(e)
    return None


@given(records(), st.integers(-1, 6), st.sampled_from(DOMAINS), st.booleans())
def test_the_record_answers_as_the_core_revived_from_it(found, round_, domain, yes):
    record, placement, acceptors, cells = found
    core = core_of(*found)
    assert record_tx(record, WF, me=ME, placement=placement, acceptors=acceptors) \
        == core.tx()

    core.receive_vote(10.0, VoteIn(round_, domain, yes, "", b""))
    told = [a for a in core.next_actions() if isinstance(a, SendDecision)
            and core.decision(a.round) is not None]
    assert tells_abort_again(record, round_, yes) == bool(told)

    assert _refusal(lambda: check_ack(record, placement, domain, round_)) \
        == _refusal(lambda: core.receive_ack(10.0, domain, round_))

    core = core_of(*found)
    answered = _refusal(lambda: answer_query(record, WF, ME, round_))
    revived = _refusal(lambda: core.answer_query(10.0, round_))
    assert answered == revived
    if answered is None:
        answer = answer_query(record, WF, ME, round_)
        from_core = core.answer_query(10.0, round_)
        if answer is None:  # it presumes ABORT: a write, left to the core
            assert core.next_actions(), "a presumed ABORT is written first"
        else:
            assert answer == from_core and core.next_actions() == []


@pytest.mark.parametrize("yes", [True, False])
def test_a_late_vote_of_a_round_told_abort_is_told_it_again_only_if_yes(yes):
    record = Ended(2, True, True, (1, 2), (1,), (1,), (2,))
    assert tells_abort_again(record, 1, yes) is yes
    assert not tells_abort_again(record, 2, yes)
