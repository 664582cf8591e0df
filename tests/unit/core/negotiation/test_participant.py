"""Participant core: votes, holds and their leases, decisions, step ends, in-doubt queries."""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.participant import DecisionEffect, Hold, HoldState, Participant
from fedorch.gen.fedorch.v1 import config_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

LEASE = 30.0
QUERY = 5.0
EU = {"jurisdiction": "EU"}
TRAIN = [("train", "ml.train")]


def make(*, max_steps: int = 0, capacities: dict[str, int] | None = None) -> Participant:
    policy = config_pb2.Policy(
        accept_from=["eu-west", "us-east"],
        residency=config_pb2.Residency(accept=["EU"]),
        quotas=config_pb2.Quotas(max_steps_per_coordinator=max_steps),
    )
    caps = {"ml.train": 2, "data.extract": 4} if capacities is None else capacities
    return Participant("partner", policy, caps, lease_s=LEASE, query_interval_s=QUERY)


def prepare(p: Participant, now: float = 0.0, *, wf: str = "wf-1", rnd: int = 1,
            coordinator: str = "eu-west", data: dict[str, str] | None = None,
            steps: list[tuple[str, str]] | None = None):
    return p.prepare(now, workflow_id=wf, round=rnd, coordinator=coordinator,
                     data_labels=EU if data is None else data,
                     steps=TRAIN if steps is None else steps,
                     coordinator_endpoint="127.0.0.1:7101")


def committed(p: Participant, steps: list[tuple[str, str]], wf: str = "wf-1") -> Hold:
    out = prepare(p, wf=wf, steps=steps)
    assert out.yes
    assert p.decide(1.0, wf, 1, True) is DecisionEffect.COMMITTED
    return out.hold


# ---- PREPARE ----------------------------------------------------------------------------


def test_yes_creates_a_prepared_hold_with_a_lease() -> None:
    p = make()
    out = prepare(p, 100.0, steps=[("train", "ml.train"), ("extract", "data.extract")])
    assert out.yes and out.fresh and out.reason == ""
    assert out.lease_expires == 100.0 + LEASE
    hold = out.hold
    assert hold is not None
    assert (hold.workflow_id, hold.round, hold.coordinator) == ("wf-1", 1, "eu-west")
    assert hold.state is HoldState.PREPARED
    assert hold.steps == [("train", "ml.train"), ("extract", "data.extract")]
    assert hold.lease_expires == 100.0 + LEASE
    assert hold.coordinator_endpoint == "127.0.0.1:7101"
    assert hold.key == ("wf-1", 1)
    assert p.holds() == [hold]
    assert p.in_use() == {"ml.train": 1, "data.extract": 1}
    assert p.available() == {"ml.train": 1, "data.extract": 3}


def test_duplicate_prepare_repeats_the_yes_without_a_new_hold() -> None:
    p = make()
    first = prepare(p, 100.0)
    again = prepare(p, 120.0)
    assert again.yes and not again.fresh
    assert again.hold is None  # nothing new to persist
    assert again.lease_expires == first.lease_expires == 100.0 + LEASE  # not extended
    assert len(p.holds()) == 1
    assert p.available()["ml.train"] == 1


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"data": {"jurisdiction": "US"}},
         "residency: data jurisdiction US is not accepted here (accepts: EU)"),
        ({"coordinator": "mallory"},
         "accept_from: coordinator 'mallory' is not accepted (accepts: eu-west, us-east)"),
        ({"steps": [("t1", "ml.train"), ("t2", "ml.train"), ("t3", "ml.train")]},
         "capacity: ml.train has 2 of 2 slots free, 3 needed"),
        ({"steps": [("x", "gpu.render")]}, "capability: this domain does not offer 'gpu.render'"),
    ],
)
def test_policy_no_creates_nothing_and_a_duplicate_repeats_it(kwargs: dict, reason: str) -> None:
    p = make()
    out = prepare(p, 5.0, **kwargs)
    assert (out.yes, out.reason, out.hold, out.fresh) == (False, reason, None, True)
    assert p.holds() == []
    assert p.available() == {"ml.train": 2, "data.extract": 4}
    again = prepare(p, 6.0, **kwargs)
    assert (again.yes, again.reason, again.hold, again.fresh) == (False, reason, None, False)
    assert p.holds() == []


def test_a_no_stays_a_no_even_when_capacity_frees_later() -> None:
    p = make()
    assert prepare(p, wf="big", steps=[("a", "ml.train"), ("b", "ml.train")]).yes
    refused = prepare(p, wf="small")
    assert not refused.yes
    p.decide(1.0, "big", 1, False)
    assert p.available()["ml.train"] == 2
    again = prepare(p, 2.0, wf="small")
    assert (again.yes, again.reason, again.fresh) == (False, refused.reason, False)


def test_capacity_is_counted_across_holds() -> None:
    p = make()
    assert prepare(p, wf="wf-1", steps=[("a", "ml.train")]).yes
    assert prepare(p, wf="wf-2", steps=[("b", "ml.train")]).yes
    out = prepare(p, wf="wf-3", steps=[("c", "ml.train")])
    assert not out.yes
    assert out.reason == "capacity: ml.train has 0 of 2 slots free, 1 needed"
    assert p.available() == {"ml.train": 0, "data.extract": 4}
    # Committed holds count too; a free capability still takes work.
    assert p.decide(1.0, "wf-1", 1, True) is DecisionEffect.COMMITTED
    assert not prepare(p, wf="wf-4", steps=[("d", "ml.train")]).yes
    assert prepare(p, wf="wf-5", steps=[("e", "data.extract")]).yes


def test_quota_counts_the_coordinators_steps_across_holds() -> None:
    p = make(max_steps=2, capacities={"ml.train": 10})
    assert prepare(p, wf="wf-1", steps=[("a", "ml.train")]).yes
    assert prepare(p, wf="wf-2", steps=[("b", "ml.train")]).yes
    out = prepare(p, wf="wf-3", steps=[("c", "ml.train")])
    assert out.reason == "quota: coordinator 'eu-west' already holds 2 of 2 steps here, 1 more asked"
    assert prepare(p, wf="wf-4", coordinator="us-east", steps=[("d", "ml.train")]).yes


def test_prepare_for_no_steps_is_a_remote_error() -> None:
    p = make()
    with pytest.raises(RemoteProtocolError):
        prepare(p, steps=[])
    assert p.holds() == []


# ---- decisions --------------------------------------------------------------------------


def test_commit_moves_the_hold_to_committed_and_keeps_its_slots() -> None:
    p = make()
    hold = prepare(p).hold
    assert p.decide(2.0, "wf-1", 1, True) is DecisionEffect.COMMITTED
    assert hold.state is HoldState.COMMITTED
    assert p.available()["ml.train"] == 1
    assert p.decide(3.0, "wf-1", 1, True) is DecisionEffect.NOTHING  # duplicate
    again = prepare(p, 4.0)  # a duplicated PREPARE still gets its YES
    assert again.yes and not again.fresh and again.hold is None


def test_abort_releases_the_hold_and_its_slots() -> None:
    p = make()
    prepare(p, steps=[("a", "ml.train"), ("b", "ml.train")])
    assert p.available()["ml.train"] == 0
    assert p.decide(2.0, "wf-1", 1, False) is DecisionEffect.RELEASED
    assert p.holds() == []
    assert p.available() == {"ml.train": 2, "data.extract": 4}
    assert p.decide(3.0, "wf-1", 1, False) is DecisionEffect.NOTHING  # duplicate


def test_abort_of_a_round_voted_no_does_nothing() -> None:
    p = make()
    assert not prepare(p, data={"jurisdiction": "US"}).yes
    assert p.decide(1.0, "wf-1", 1, False) is DecisionEffect.NOTHING


def test_commit_for_a_round_never_voted_yes_is_a_remote_error() -> None:
    p = make()
    with pytest.raises(RemoteProtocolError):
        p.decide(1.0, "wf-unknown", 1, True)
    assert not prepare(p, data={"jurisdiction": "US"}).yes
    with pytest.raises(RemoteProtocolError):
        p.decide(1.0, "wf-1", 1, True)  # we voted NO in that round
    assert prepare(p, wf="wf-2").yes
    with pytest.raises(RemoteProtocolError):
        p.decide(1.0, "wf-2", 2, True)  # YES in round 1 says nothing about round 2
    assert p.holds()[0].state is HoldState.PREPARED


def test_abort_after_commit_is_a_remote_error() -> None:
    p = make()
    hold = prepare(p).hold
    p.decide(1.0, "wf-1", 1, True)
    with pytest.raises(RemoteProtocolError, match="ABORT after COMMIT"):
        p.decide(2.0, "wf-1", 1, False)
    assert hold.state is HoldState.COMMITTED
    assert p.holds() == [hold]


def test_late_prepare_after_abort_cannot_reserve_again() -> None:
    p = make()
    prepare(p)
    p.decide(1.0, "wf-1", 1, False)
    late = prepare(p, 2.0)
    assert (late.yes, late.reason, late.hold, late.fresh) == (
        False, "round already decided", None, False)
    assert p.holds() == []
    assert p.available()["ml.train"] == 2
    assert prepare(p, 3.0, rnd=2).yes  # a new round is a new transaction


def test_commit_after_abort_of_the_same_round_is_a_remote_error() -> None:
    p = make()
    prepare(p)
    assert p.decide(1.0, "wf-1", 1, False) is DecisionEffect.RELEASED
    with pytest.raises(RemoteProtocolError):
        p.decide(2.0, "wf-1", 1, True)


def test_abort_that_overtakes_its_prepare_closes_the_round() -> None:
    p = make()
    assert p.decide(1.0, "wf-1", 1, False) is DecisionEffect.NOTHING
    late = prepare(p, 2.0)
    assert not late.yes
    assert p.holds() == []


# ---- step ends and release --------------------------------------------------------------


def test_step_ended_releases_slots_one_by_one_and_the_last_removes_the_hold() -> None:
    p = make()
    hold = committed(p, [("extract", "data.extract"), ("train", "ml.train"),
                         ("train2", "ml.train")])
    assert p.available() == {"ml.train": 0, "data.extract": 3}
    assert p.step_ended("wf-1", "train") is hold
    assert hold.steps == [("extract", "data.extract"), ("train2", "ml.train")]
    assert p.available() == {"ml.train": 1, "data.extract": 3}
    assert p.step_ended("wf-1", "train") is None  # already released
    assert p.step_ended("wf-1", "nope") is None
    assert p.step_ended("wf-other", "extract") is None
    assert p.step_ended("wf-1", "extract") is hold
    assert p.holds() == [hold]
    last = p.step_ended("wf-1", "train2")
    assert last is hold and last.steps == []
    assert p.holds() == []
    assert p.available() == {"ml.train": 2, "data.extract": 4}
    # The round is over: a duplicate COMMIT is harmless, a late PREPARE cannot reserve.
    assert p.decide(5.0, "wf-1", 1, True) is DecisionEffect.NOTHING
    assert not prepare(p, 6.0).yes
    with pytest.raises(RemoteProtocolError):
        p.decide(7.0, "wf-1", 1, False)  # ABORT after COMMIT, even once the hold is gone


def test_step_ended_ignores_prepared_holds() -> None:
    p = make()
    prepare(p)
    assert p.step_ended("wf-1", "train") is None
    assert p.holds()[0].steps == TRAIN


def test_release_workflow_drops_its_committed_holds_only() -> None:
    p = make()
    hold = committed(p, [("a", "ml.train"), ("b", "data.extract")], wf="wf-1")
    other = committed(p, [("c", "ml.train")], wf="wf-2")
    assert p.release_workflow("wf-1") == [hold]
    assert p.holds() == [other]
    assert p.available() == {"ml.train": 1, "data.extract": 4}
    assert p.release_workflow("wf-1") == []
    assert not prepare(p, wf="wf-1").yes  # its round is closed


# ---- in doubt ---------------------------------------------------------------------------


def test_due_queries_after_the_lease_then_every_query_interval() -> None:
    p = make()
    hold = prepare(p, 10.0).hold
    assert p.get_timer() == 10.0 + LEASE
    assert p.due_queries(10.0 + LEASE - 0.01) == []
    assert p.due_queries(10.0 + LEASE) == [hold]
    assert p.due_queries(10.0 + LEASE) == []  # asked just now
    assert p.get_timer() == 10.0 + LEASE + QUERY
    assert p.due_queries(10.0 + LEASE + QUERY - 0.01) == []
    assert p.due_queries(10.0 + LEASE + QUERY) == [hold]
    # A YES voter never releases by itself: the hold is still there, still PREPARED.
    assert p.holds() == [hold] and hold.state is HoldState.PREPARED


def test_committed_holds_are_never_in_doubt() -> None:
    p = make()
    prepare(p, 0.0, wf="wf-1")
    prepare(p, 0.0, wf="wf-2", steps=[("x", "data.extract")])
    p.decide(1.0, "wf-1", 1, True)
    assert [h.workflow_id for h in p.due_queries(1000.0)] == ["wf-2"]
    p.decide(1001.0, "wf-2", 1, True)
    assert p.due_queries(5000.0) == []
    assert p.get_timer() is None


def test_get_timer_is_the_earliest_prepared_query() -> None:
    p = make()
    assert p.get_timer() is None
    prepare(p, 20.0, wf="late")
    prepare(p, 10.0, wf="early", steps=[("x", "data.extract")])
    assert p.get_timer() == 10.0 + LEASE
    p.decide(11.0, "early", 1, False)
    assert p.get_timer() == 20.0 + LEASE


# ---- restore ----------------------------------------------------------------------------


def test_restore_brings_back_holds_that_count_and_answer() -> None:
    p = make()
    prepared = Hold("wf-1", 2, "eu-west", HoldState.PREPARED, [("a", "ml.train")], 50.0,
                    "127.0.0.1:7101", next_query=50.0)
    running = Hold("wf-2", 1, "us-east", HoldState.COMMITTED,
                   [("b", "ml.train"), ("c", "data.extract")], 40.0)
    p.restore([prepared, running])
    assert sorted(h.key for h in p.holds()) == [("wf-1", 2), ("wf-2", 1)]
    assert p.available() == {"ml.train": 0, "data.extract": 3}
    assert not prepare(p, wf="wf-3").yes
    dup = prepare(p, 60.0, wf="wf-1", rnd=2, steps=[("a", "ml.train")])
    assert dup.yes and not dup.fresh and dup.lease_expires == 50.0
    assert p.get_timer() == 50.0
    assert p.due_queries(50.0) == [prepared]
    assert p.decide(61.0, "wf-1", 2, True) is DecisionEffect.COMMITTED
    assert p.step_ended("wf-2", "c") is running
    with pytest.raises(RemoteProtocolError):
        p.decide(62.0, "wf-2", 1, False)


def test_available_never_goes_negative() -> None:
    p = make(capacities={"ml.train": 1})
    p.restore([Hold("wf", 1, "eu-west", HoldState.COMMITTED,
                    [("a", "ml.train"), ("b", "ml.train")], 0.0)])
    assert p.in_use() == {"ml.train": 2}
    assert p.available() == {"ml.train": 0}


# ---- two-record YES, leases of reservations that never voted, restore of decisions -------


def reserve(p: Participant, now: float = 0.0, **kw):
    return p.reserve(now, workflow_id=kw.get("wf", "wf-1"), round=kw.get("rnd", 1),
                     coordinator="eu-west", data_labels=EU, steps=TRAIN)


def test_reserve_then_confirm_yes_makes_the_prepare_record() -> None:
    p = make()
    out = reserve(p, 10.0)
    assert out.yes and out.fresh and out.hold.state is HoldState.RESERVED
    assert p.available()["ml.train"] == 1  # the reservation holds its slot already
    assert p.status(("wf-1", 1)) == "reserved"
    hold = p.confirm_yes(11.0, ("wf-1", 1))
    assert hold is out.hold and hold.state is HoldState.PREPARED
    again = reserve(p, 12.0)  # a duplicate PREPARE repeats the YES, nothing to persist
    assert again.yes and again.hold is None and not again.fresh


def test_a_reservation_that_never_voted_yes_ends_with_its_lease() -> None:
    p = make()
    reserve(p, 0.0)
    assert p.expiry_timer() == LEASE and p.get_timer() == LEASE
    assert p.expire(LEASE - 0.01) == []
    gone = p.expire(LEASE)
    assert [h.key for h in gone] == [("wf-1", 1)]
    assert p.holds() == [] and p.status(("wf-1", 1)) == "expired"
    late = reserve(p, LEASE + 1)  # its round cannot reserve again
    assert not late.yes and late.reason == "round already decided"
    with pytest.raises(RemoteProtocolError):
        p.decide(LEASE + 2, "wf-1", 1, True)  # no YES ever left: a COMMIT is impossible


def test_confirming_after_the_lease_releases_instead() -> None:
    p = make()
    reserve(p, 0.0)
    assert p.confirm_yes(LEASE, ("wf-1", 1)) is None
    assert p.holds() == []


def test_a_yes_voter_never_expires() -> None:
    p = make()
    prepare(p, 0.0)
    assert p.expire(10 * LEASE) == [] and p.expiry_timer() is None
    assert p.holds()[0].state is HoldState.PREPARED


def test_an_unconfirmed_reservation_is_released_by_abort_and_refuses_commit() -> None:
    p = make()
    reserve(p, 0.0)
    with pytest.raises(RemoteProtocolError, match="sent no YES"):
        p.decide(1.0, "wf-1", 1, True)
    assert p.decide(1.0, "wf-1", 1, False) is DecisionEffect.RELEASED


def test_restore_remembers_decided_rounds() -> None:
    p = make()
    p.restore([], {("wf-1", 1): False, ("wf-2", 1): True})
    assert p.status(("wf-1", 1)) == "aborted"
    assert not prepare(p, wf="wf-1").yes  # a late PREPARE after a restart cannot reserve
    assert p.decide(1.0, "wf-2", 1, True) is DecisionEffect.NOTHING
    with pytest.raises(RemoteProtocolError, match="ABORT after COMMIT"):
        p.decide(1.0, "wf-2", 1, False)


def test_prepare_with_a_transaction_that_does_not_match_is_refused() -> None:
    from fedorch.core.negotiation.messages import TxInfo
    p = make()
    tx = TxInfo("wf-1", 2, "eu-west", ("partner",), ("eu-west", "partner", "x"))
    with pytest.raises(RemoteProtocolError, match="does not match"):
        p.prepare(0.0, workflow_id="wf-1", round=1, coordinator="eu-west", data_labels=EU,
                  steps=TRAIN, tx=tx)
    assert p.holds() == []
    ok = p.prepare(0.0, workflow_id="wf-1", round=2, coordinator="eu-west", data_labels=EU,
                   steps=TRAIN, tx=tx)
    assert ok.yes and ok.hold.tx == tx and ok.hold.state is HoldState.PREPARED
    assert p.get_timer() is None  # an in-doubt hold with a TxInfo is Termination's, not ours
    assert p.due_queries(100.0) == []


# ---- the kept counts ---------------------------------------------------------------------

_OPS = st.lists(st.tuples(
    st.sampled_from(["prepare", "reserve", "confirm", "commit", "abort", "step_end",
                     "release", "expire", "restore"]),
    st.integers(0, 3),              # which workflow
    st.integers(1, 2),              # which round
    st.sampled_from(["eu-west", "us-east"]),
    st.sampled_from(["train", "extract", "load"]),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_the_kept_counts_always_match_the_holds(ops) -> None:
    """in_use() and the per-coordinator quota count are kept as holds come and go; after
    any sequence of inputs they equal what walking every hold gives."""
    p = make(max_steps=5, capacities={"ml.train": 3, "data.extract": 3, "etl.load": 2})
    caps = {"train": "ml.train", "extract": "data.extract", "load": "etl.load"}
    now = 0.0
    for op, w, rnd, coordinator, step in ops:
        now += 7.0
        wf = f"wf-{w}"
        steps = [(step, caps[step]), ("train", "ml.train")] if step != "train" \
            else [("train", "ml.train")]
        try:
            if op in ("prepare", "reserve"):
                getattr(p, op)(now, workflow_id=wf, round=rnd, coordinator=coordinator,
                               data_labels=EU, steps=steps)
            elif op == "confirm" and p.hold((wf, rnd)) is not None:
                p.confirm_yes(now, (wf, rnd))
            elif op in ("commit", "abort"):
                p.decide(now, wf, rnd, op == "commit")
            elif op == "step_end":
                p.step_ended(wf, step)
            elif op == "release":
                p.release_workflow(wf)
            elif op == "expire":
                p.expire(now)
            elif op == "restore":  # a hold read back from disk replaces the one in memory
                held = p.hold((wf, rnd))
                if held is not None:
                    p.restore([Hold(held.workflow_id, held.round, held.coordinator,
                                    held.state, held.steps[:1], held.lease_expires)])
        except RemoteProtocolError:
            pass  # a refused input changes nothing
        walked: dict[str, int] = {}
        for h in p.holds():
            for _, cap in h.steps:
                walked[cap] = walked.get(cap, 0) + 1
        assert p.in_use() == walked
        for c in ("eu-west", "us-east"):
            assert p._held_for.get(c, 0) == sum(len(h.steps) for h in p.holds()
                                                if h.coordinator == c)
        assert {k for keys in p._keys_of.values() for k in keys} == \
            {h.key for h in p.holds()}
