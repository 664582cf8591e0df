"""Retention's pure rule: nothing a peer may still ask about is ever selected, and what
is selected is old enough or beyond the count, oldest first."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.epoch_certificate import ROUNDS_PER_EPOCH
from fedorch.core.workflow.retention import (
    EndedWorkflow,
    Leftover,
    compactable,
    created_ms_of,
    forgotten_here,
    leftovers_compactable,
    may_be_asked,
    presumes_abort,
)
from hypothesis import given
from hypothesis import strategies as st

ended_workflows = st.lists(st.builds(
    EndedWorkflow,
    workflow_id=st.text("abc.", min_size=1, max_size=6),
    ended_at=st.floats(0, 1000, allow_nan=False),
    rank=st.integers(0, 50),
    live=st.booleans(), holds_reservation=st.booleans(), unfinished_runs=st.booleans(),
    open_compensations=st.booleans(), kept_certificate=st.booleans(),
    acceptor_record=st.booleans(), acceptor_undecided=st.booleans(),
), max_size=40, unique_by=lambda w: w.workflow_id)


@given(ended_workflows, st.floats(0, 2000, allow_nan=False), st.floats(0.001, 500),
       st.integers(1, 60), st.integers(1, 50), st.floats(0, 300))
def test_never_selects_what_a_peer_may_ask_about(candidates, now, keep, max_ended, limit,
                                                 settle):
    by_id = {w.workflow_id: w for w in candidates}
    chosen = compactable(candidates, now=now, keep_ended_s=keep,
                         max_ended_workflows=max_ended, limit=limit, settle_s=settle)
    assert len(chosen) <= limit
    assert len(set(chosen)) == len(chosen)
    for workflow_id in chosen:
        w = by_id[workflow_id]
        assert not may_be_asked(w)
        assert not w.acceptor_undecided and not w.kept_certificate
        assert not w.holds_reservation and not w.live and not w.unfinished_runs
        # A message signed before the end may still be accepted within settle_s.
        assert now - w.ended_at > settle
        expired = now - w.ended_at > keep
        # An acceptor's record goes only past keep_ended_s, never for the count alone.
        assert expired or (w.rank >= max_ended and not w.acceptor_record)
    # Oldest first: nothing left out that ended before one chosen and was eligible.
    times = [by_id[i].ended_at for i in chosen]
    assert times == sorted(times)


@given(ended_workflows, st.floats(0, 2000, allow_nan=False), st.floats(0.001, 500),
       st.integers(1, 60), st.floats(0, 300))
def test_selects_every_eligible_one_within_the_limit(candidates, now, keep, max_ended, settle):
    chosen = set(compactable(candidates, now=now, keep_ended_s=keep,
                             max_ended_workflows=max_ended, limit=1000, settle_s=settle))
    for w in candidates:
        eligible = not may_be_asked(w) and now - w.ended_at > settle and (
            now - w.ended_at > keep or (w.rank >= max_ended and not w.acceptor_record))
        assert (w.workflow_id in chosen) == eligible


def test_an_in_doubt_participant_keeps_everything_however_old():
    in_doubt = EndedWorkflow("w.1", ended_at=0.0, rank=10_000, holds_reservation=True,
                             acceptor_record=True, acceptor_undecided=True)
    quiet = EndedWorkflow("w.2", ended_at=0.0, rank=10_001)
    assert compactable([in_doubt, quiet], now=1e9, keep_ended_s=1, max_ended_workflows=1,
                       limit=10) == ["w.2"]


def test_an_acceptor_record_waits_for_keep_ended_s_even_beyond_the_count():
    acceptor = EndedWorkflow("w.1", ended_at=100.0, rank=5, acceptor_record=True)
    assert compactable([acceptor], now=100.5, keep_ended_s=1, max_ended_workflows=1,
                       limit=10) == []
    assert compactable([acceptor], now=101.5, keep_ended_s=1, max_ended_workflows=1,
                       limit=10) == ["w.1"]


def test_nothing_goes_while_a_message_sent_before_the_end_may_arrive():
    beyond = EndedWorkflow("w.1", ended_at=100.0, rank=99)
    assert compactable([beyond], now=110.0, keep_ended_s=1, max_ended_workflows=1,
                       limit=10, settle_s=10) == []
    assert compactable([beyond], now=110.5, keep_ended_s=1, max_ended_workflows=1,
                       limit=10, settle_s=10) == ["w.1"]
    with pytest.raises(ValueError, match="settle_s"):
        compactable([], now=0, keep_ended_s=1, max_ended_workflows=1, limit=1, settle_s=-1)


@pytest.mark.parametrize("keep, max_ended, limit", [(0, 1, 1), (1, 0, 1), (1, 1, 0),
                                                    (-1, 1, 1)])
def test_bounds_must_be_positive(keep, max_ended, limit):
    with pytest.raises(ValueError, match="must be positive"):
        compactable([], now=0, keep_ended_s=keep, max_ended_workflows=max_ended, limit=limit)


def test_the_creation_time_is_read_from_the_id():
    assert created_ms_of("eu.west.0000000003e8deadbeef") == 1000
    assert created_ms_of("eu.short") is None
    assert created_ms_of("eu.zzzzzzzzzzzzdeadbeef") is None


@given(st.integers(0, 2**48 - 1), st.integers(-1, 2**48 - 1))
def test_only_ids_named_here_no_newer_than_the_horizon_count_as_forgotten(created, horizon):
    workflow_id = f"eu.west.{created:012x}0badcafe"
    assert forgotten_here(workflow_id, "eu.west", horizon) == (created <= horizon)
    assert not forgotten_here(workflow_id, "us", horizon)


@given(st.lists(st.builds(Leftover, workflow_id=st.one_of(
           st.integers(0, 10_000).map(lambda t: f"eu.{t:012x}00000000"),
           st.text("abc.", max_size=8)),
       acceptor_undecided=st.booleans()), max_size=30, unique_by=lambda x: x.workflow_id),
       st.integers(0, 20_000), st.floats(0.001, 5), st.floats(0, 5), st.integers(1, 40))
def test_a_leftover_goes_only_decided_and_created_long_enough_ago(items, now_ms, keep,
                                                                  settle, limit):
    by_id = {x.workflow_id: x for x in items}
    chosen = leftovers_compactable(items, now_ms=now_ms, keep_ended_s=keep, settle_s=settle,
                                   limit=limit)
    assert len(chosen) <= limit
    for workflow_id in chosen:
        created = created_ms_of(workflow_id)
        assert not by_id[workflow_id].acceptor_undecided
        assert created is not None and now_ms - created > max(keep, settle) * 1000


@given(st.sampled_from(["eu.west", "us", "eu"]), st.integers(0, 3 * ROUNDS_PER_EPOCH),
       st.booleans(), st.booleans())
def test_abort_is_presumed_only_of_a_forgotten_classic_round_of_ones_own_range(
        me, round_, known, classic):
    workflow_id = "eu.west.0000000003e8deadbeef"
    expected = me == "eu.west" and round_ < ROUNDS_PER_EPOCH and not known and classic
    assert presumes_abort(workflow_id, round_, me=me, known=known,
                          classic=classic) == expected


def test_a_successors_round_is_never_presumed_aborted_by_the_original():
    workflow_id = "eu.west.0000000003e8deadbeef"
    assert presumes_abort(workflow_id, 1, me="eu.west", known=False, classic=True)
    assert not presumes_abort(workflow_id, ROUNDS_PER_EPOCH, me="eu.west", known=False,
                              classic=True)
    assert not presumes_abort(workflow_id, ROUNDS_PER_EPOCH + 1, me="us", known=False,
                              classic=True)
