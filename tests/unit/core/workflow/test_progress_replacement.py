"""A step placed again after its domain was lost: the progress core (placed_again,
replacement_failed), placement around fixed steps, and rounds numbered after the
committed one."""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.coordinator import Coordinator, Finished, SendPrepare, VoteIn
from fedorch.core.negotiation.errors import LocalProtocolError
from fedorch.core.workflow.domain_loss import LossAction, not_replaced_reason
from fedorch.core.workflow.placement import Placement, place
from fedorch.core.workflow.progress import Outcome, Progress, StepState
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.workflow.test_domain_loss import LOST, ME, OTHER, spec, step
from tests.unit.core.workflow.test_placement import _member, _spec, _step

NEW = "sa-east"


def lost_and_pending(*, idempotent: bool = False) -> Progress:
    p = Progress(spec(step("a"), step("b", "a", idempotent=idempotent), step("c", "b")),
                 {"a": OTHER, "b": LOST, "c": ME}, ME)
    assert p.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]
    return p


def test_placed_again_the_step_waits_on_its_new_domain_under_the_round_as_epoch() -> None:
    p = lost_and_pending()
    assert p.awaiting_placement() == ["b"]
    assert p.placed_again("b", NEW, 3, LOST)
    b = p.steps["b"]
    assert (b.state, b.domain, b.epoch, b.attempts, b.replaced_from) == (
        StepState.WAITING, NEW, 3, 0, [LOST])
    assert p.awaiting_placement() == []
    assert p.outcome() is None
    # Fencing: the lost placement (epoch 0) and the loss's own epoch are over.
    assert p.refuse_result("b", LOST, 0) is not None
    assert p.refuse_result("b", NEW, 2) is not None
    assert p.refuse_result("b", NEW, 3) is None
    # The new domain's result counts; the result recipients include it.
    assert p.result_recipients("a", "co") == sorted(["co", NEW])
    assert p.apply_result("b", 1, StepState.SUCCEEDED, {"x": 1}, "")
    assert p.steps["b"].outputs == {"x": 1}


def test_placed_again_twice_or_from_an_older_round_changes_nothing() -> None:
    p = lost_and_pending()
    assert p.placed_again("b", NEW, 3, LOST)
    assert not p.placed_again("b", NEW, 3, LOST)  # a repeated COMMIT
    assert not p.placed_again("b", OTHER, 2, LOST)  # an older round, late
    assert p.steps["b"].domain == NEW and p.steps["b"].replaced_from == [LOST]


def test_an_idempotent_step_that_had_run_starts_afresh_with_its_attempts_counted_anew() -> None:
    p = Progress(spec(step("b", idempotent=True, retries=1)), {"b": LOST}, ME)
    assert p.apply_result("b", 2, StepState.RUNNING, {}, "")
    assert p.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]
    assert p.placed_again("b", NEW, 2, LOST)
    # The old placement's attempt 2 report is refused by epoch; the new one's 1 counts.
    assert p.refuse_result("b", LOST, 0) is not None
    assert p.apply_result("b", 1, StepState.RUNNING, {}, "")
    assert (p.steps["b"].state, p.steps["b"].attempts) == (StepState.RUNNING, 1)


def test_a_step_that_could_not_be_placed_again_fails_and_skips_downstream() -> None:
    p = lost_and_pending()
    reason = not_replaced_reason(LOST, False, "no eligible domain for 'cap'")
    assert reason == ("domain us-east was lost (DEAD) before the step started; could not"
                      " place the step again: no eligible domain for 'cap'")
    assert p.replacement_failed("b", reason)
    assert p.steps["b"].state is StepState.FAILED and p.steps["b"].error == reason
    assert p.steps["c"].state is StepState.SKIPPED
    assert p.outcome() is Outcome.FAILED
    assert not p.replacement_failed("b", reason)  # not waiting any more
    assert not p.replacement_failed("a", reason)  # never lost


def test_a_new_domain_learns_the_step_runs_there() -> None:
    # The new domain's view: built from the round's placement, then the step placed.
    p = Progress(spec(step("a"), step("b", "a")), {"b": NEW}, NEW)
    assert p.placed_again("b", NEW, 4, LOST)
    assert p.steps["b"].epoch == 4 and p.steps["b"].replaced_from == [LOST]
    assert p.start_ready() == []  # its input is not there yet
    assert p.apply_result("a", 1, StepState.SUCCEEDED, {"rows": 2}, "")
    started = p.start_ready()
    assert [(s.step_id, s.attempt, s.inputs) for s in started] == [("b", 1, {"a": {"rows": 2}})]


@settings(deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["lose", "place", "late"]),
                          st.sampled_from(["d1", "d2", "d3", "d4"])), max_size=12))
def test_any_sequence_of_losses_and_placements_fences_every_older_placement(ops) -> None:
    """Whatever losses and (possibly late) re-placements come, the step's epoch never goes
    back, a placement older than the current one is always refused, and replaced_from
    lists each lost domain once, never the current one."""
    p = Progress(spec(step("b", idempotent=True)), {"b": "d0"}, ME)
    round_ = 1
    placements = [("d0", 0)]  # every (domain, epoch) the step was placed under
    for op, domain in ops:
        b = p.steps["b"]
        before = b.epoch
        if op == "lose":
            p.domain_lost(b.domain or "nobody", can_replace=True)
        elif op == "place" and b.state is StepState.PENDING and not b.domain \
                and domain not in b.replaced_from and domain != b.lost_to:
            # (the shell's placer excludes every domain the step was lost on)
            round_ += 1
            assert p.placed_again("b", domain, round_, b.lost_to)
            placements.append((domain, round_))
        elif op == "late" and len(placements) > 1:
            old_domain, old_epoch = placements[-2]
            assert not p.placed_again("b", old_domain, old_epoch, "nobody")
        assert b.epoch >= before
        for d, e in placements:
            if e < b.epoch:
                assert p.refuse_result("b", d, e) is not None
        assert len(set(b.replaced_from)) == len(b.replaced_from)
        assert b.domain not in b.replaced_from or not b.domain


# ---- placement around fixed steps ------------------------------------------------------


def test_placement_keeps_fixed_steps_and_excludes_the_lost_domain() -> None:
    members = [_member("a1", {"x": (2, 2, 1.0)}), _member("a2", {"x": (2, 2, 1.0)}),
               _member("a3", {"x": (2, 2, 1.0)}, labels={"zone": "z"}),
               _member("gone", {"x": (2, 2, 0.0)}, alive=False)]
    spec_ = _spec(_step("up", "x"), _step("s", "x", needs=["up"], labels={"zone": "z"}),
                  _step("s2", "x", needs=["up"]))
    # up ran on a dead domain (fixed: kept, not checked); s is placed around it.
    got = place(spec_, members, coordinator="co", fixed={"up": "gone", "s2": "a1"},
                excluded={"s": {"a3"}})
    assert got.assignment["up"] == "gone" and got.assignment["s2"] == "a1"
    assert "s" in got.unplaceable  # the only domain with zone z is excluded
    got = place(spec_, members, coordinator="co", fixed={"up": "gone", "s2": "a1"})
    assert got.assignment["s"] == "a3"


def test_placement_with_fixed_steps_co_locates_with_them() -> None:
    members = [_member("a1", {"x": (2, 2, 1.0)}), _member("a2", {"x": (2, 2, 1.0)})]
    spec_ = _spec(_step("up", "x"), _step("s", "x", needs=["up"]))
    assert place(spec_, members, coordinator="co", fixed={"up": "a2"}).assignment == {
        "up": "a2", "s": "a2"}


# ---- rounds after the committed one ----------------------------------------------------


def test_a_round_after_the_committed_one_numbers_from_first_round() -> None:
    tries = iter(["n1", "n2", "n3"])

    def placer(excluded):
        return Placement({"s": next(tries)})

    core = Coordinator("w.1", placer=placer, max_rounds=2, prepare_timeout_s=5.0,
                       first_round=7)
    core.start(0.0)
    prepares = [a for a in core.next_actions() if isinstance(a, SendPrepare)]
    assert [(a.domain, a.round) for a in prepares] == [("n1", 7)]
    core.receive_vote(0.1, VoteIn(7, "n1", False, "full", b""))
    prepares = [a for a in core.next_actions() if isinstance(a, SendPrepare)]
    assert [(a.domain, a.round) for a in prepares] == [("n2", 8)]
    core.receive_vote(0.2, VoteIn(8, "n2", False, "policy", b""))
    finished = [a for a in core.next_actions() if isinstance(a, Finished)]
    assert len(finished) == 1 and not finished[0].committed  # two rounds: 7 and 8
    assert "n1" in finished[0].reason and "n2" in finished[0].reason


def test_first_round_must_be_positive() -> None:
    with pytest.raises(LocalProtocolError):
        Coordinator("w.1", placer=lambda e: Placement(), max_rounds=1, prepare_timeout_s=1.0,
                    first_round=0)


def test_a_step_after_an_upstream_step_on_the_lost_domain_may_have_started() -> None:
    """s0 -> s1, both on the lost domain: s0 may have succeeded there unseen and started
    s1 at once (its result lost with the domain), so s1, not idempotent, is not run again;
    s0, idempotent, is placed again."""
    p = Progress(spec(step("s0", idempotent=True), step("s1", "s0"), step("s2", "s1")),
                 {"s0": LOST, "s1": LOST, "s2": OTHER}, ME)
    assert dict(p.domain_lost(LOST, can_replace=True)) == {
        "s0": LossAction.REPLACE, "s1": LossAction.FAIL_STARTED}
    assert p.steps["s2"].state is StepState.SKIPPED
    # With s0 known FAILED there instead, s1 could not have started.
    q = Progress(spec(step("s0", retries=1), step("s1", "s0")), {"s0": LOST, "s1": LOST}, ME)
    q.steps["s0"].state = StepState.SKIPPED
    assert q.domain_lost(LOST, can_replace=True) == [("s1", LossAction.REPLACE)]


def test_placed_again_where_it_already_runs_keeps_its_attempt_and_moves_its_epoch() -> None:
    # A Progress whose placement names this domain for "b" already (a new domain's,
    # rebuilt by a restore from a later round's PREPARE), "b" started under it; the
    # placement of b's own round is taken after. Attempt 1 runs on: starting it afresh
    # would run it twice here.
    p = Progress(spec(step("a"), step("b", idempotent=True, retries=1)),
                 {"a": ME, "b": ME}, ME)
    assert [x.step_id for x in p.start_ready()] == ["a", "b"]
    assert p.placed_again("b", ME, 2, LOST)
    b = p.steps["b"]
    assert (b.state, b.attempts, b.epoch, b.lost_to, b.replaced_from) == (
        StepState.RUNNING, 1, 2, LOST, [LOST])
    assert p.start_ready() == []  # nothing starts again
    assert p.refuse_result("b", ME, 0) is not None  # its earlier epoch is over
    assert p.attempt_ended("b", 1, True, {"y": 2}, "") is StepState.SUCCEEDED
    # A step that ended here keeps its end under the new epoch too.
    assert p.placed_again("b", ME, 3, LOST)
    assert (p.steps["b"].state, p.steps["b"].attempts, p.steps["b"].epoch) == (
        StepState.SUCCEEDED, 1, 3)


def test_a_step_whose_placement_here_is_in_doubt_waits_unplaced_for_its_round() -> None:
    # The new domain set the workflow up from a later round's COMMIT, whose whole
    # placement names it for "b" too; b's own round is still in doubt here: "b" is left
    # unplaced, and starts only when that round's placement is taken, under its epoch.
    p = Progress(spec(step("a"), step("b", idempotent=True)), {"a": ME, "b": ME}, ME)
    assert p.placement_in_doubt("b")
    assert not p.placement_in_doubt("b")  # not ours any more: nothing to do
    assert not p.placement_in_doubt("nope")
    assert [x.step_id for x in p.start_ready()] == ["a"]
    assert not p.placement_in_doubt("a")  # started here already: it stays
    assert p.placed_again("b", ME, 2, LOST)
    assert [(x.step_id, x.attempt) for x in p.start_ready()] == [("b", 1)]
    assert p.steps["b"].epoch == 2


def lost_failure_taken() -> Progress:
    """This domain's view (ME) of s0 -> {s1, s2}, s1 -> s3: s0 lost with its domain and
    sent back by a loss verdict of our own (PENDING), then the lost domain's FAILED of
    its attempt (interrupted by its restart) taken, as a Node following a later epoch
    takes it: the steps after s0 are SKIPPED."""
    p = Progress(spec(step("s0", idempotent=True), step("s1", "s0"), step("s2", "s0"),
                      step("s3", "s1")), {"s0": LOST, "s1": ME, "s2": ME, "s3": ME}, ME)
    assert p.domain_lost(LOST, can_replace=True) == [("s0", LossAction.REPLACE)]
    assert p.apply_result("s0", 1, StepState.FAILED, {}, "interrupted by an agent restart")
    assert {i: s.state for i, s in p.steps.items()} == {
        "s0": StepState.FAILED, "s1": StepState.SKIPPED, "s2": StepState.SKIPPED,
        "s3": StepState.SKIPPED}
    return p


def test_a_failed_step_placed_again_afresh_lets_the_steps_it_skipped_run() -> None:
    # The later epoch's holder refused that FAILED and placed s0 again, here: its result
    # dropped (afresh), s0 runs here, and so do the steps after it (seed 100546: they
    # stayed SKIPPED, and the holder waited for them for ever).
    p = lost_failure_taken()
    assert p.placed_again("s0", ME, 2097152, LOST, afresh=True)
    assert {i: (s.state, s.error) for i, s in p.steps.items()} == {
        i: (StepState.WAITING, "") for i in ("s0", "s1", "s2", "s3")}
    assert p.outcome() is None
    assert [x.step_id for x in p.start_ready()] == ["s0"]
    assert p.attempt_ended("s0", 1, True, {"by": ME}, "") is StepState.SUCCEEDED
    assert [x.step_id for x in p.start_ready()] == ["s1", "s2"]
    assert p.attempt_ended("s1", 1, True, {}, "") is StepState.SUCCEEDED
    assert [x.step_id for x in p.start_ready()] == ["s3"]


def test_a_step_another_failed_step_skipped_stays_skipped_when_one_is_placed_again() -> None:
    p = Progress(spec(step("s0", idempotent=True), step("x"), step("s1", "s0"),
                      step("s2", "s0", "x"), step("s3", "s2")),
                 {"s0": LOST, "x": OTHER, "s1": ME, "s2": ME, "s3": ME}, ME)
    assert p.domain_lost(LOST, can_replace=True) == [("s0", LossAction.REPLACE)]
    assert p.apply_result("s0", 1, StepState.FAILED, {}, "interrupted by an agent restart")
    assert p.apply_result("x", 1, StepState.FAILED, {}, "boom")  # s2, s3: skipped by s0
    assert p.placed_again("s0", ME, 5, LOST, afresh=True)
    assert {i: s.state for i, s in p.steps.items()} == {
        "s0": StepState.WAITING, "x": StepState.FAILED, "s1": StepState.WAITING,
        "s2": StepState.SKIPPED, "s3": StepState.SKIPPED}
    assert p.steps["s2"].error == "upstream step x failed"
    assert p.outcome() is Outcome.FAILED


def test_a_skip_of_a_step_placed_again_unplaced_waits_to_be_placed() -> None:
    # A step after s0 that waited to be placed again itself when s0's failure skipped it
    # goes back to waiting for its placement, not to run anywhere.
    p = Progress(spec(step("s0", idempotent=True), step("s1", "s0", idempotent=True)),
                 {"s0": LOST, "s1": LOST}, ME)
    assert sorted(p.domain_lost(LOST, can_replace=True)) == [
        ("s0", LossAction.REPLACE), ("s1", LossAction.REPLACE)]
    assert p.apply_result("s0", 1, StepState.FAILED, {}, "interrupted by an agent restart")
    assert p.steps["s1"].state is StepState.SKIPPED
    assert p.placed_again("s0", ME, 5, LOST, afresh=True)
    assert (p.steps["s1"].state, p.steps["s1"].domain) == (StepState.PENDING, "")
    assert sorted(p.awaiting_placement()) == ["s1"]
