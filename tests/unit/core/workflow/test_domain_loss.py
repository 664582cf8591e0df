"""Domain loss in the progress core: the table, each step state × loss, fencing, and the
termination core's early recovery when a coordinator is DEAD."""

from __future__ import annotations

import random

from fedorch.core.negotiation.messages import DecisionQuery, PaxosPrepare, Send, TxInfo
from fedorch.core.negotiation.termination import DoubtState, Termination
from fedorch.core.workflow.domain_loss import (
    LOSS_TABLE,
    LossAction,
    LossCase,
    loss_action,
    not_replaced_reason,
)
from fedorch.core.workflow.progress import (
    TERMINAL_STEP_STATES,
    Outcome,
    Progress,
    StepState,
)
from fedorch.gen.fedorch.v1 import spec_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

ME, LOST, OTHER = "eu-west", "us-east", "ap-south"


def spec(*steps: spec_pb2.StepSpec) -> spec_pb2.WorkflowSpec:
    return spec_pb2.WorkflowSpec(name="wf", steps=list(steps))


def step(step_id: str, *needs: str, idempotent: bool = False, on_loss: str = "",
         retries: int = 0) -> spec_pb2.StepSpec:
    return spec_pb2.StepSpec(id=step_id, capability="cap", needs=list(needs),
                             idempotent=idempotent, on_domain_loss=on_loss, retries=retries)


# ---- the table ------------------------------------------------------------------------


def test_the_table_covers_every_case_once() -> None:
    assert len(LOSS_TABLE) == 8
    assert set(LOSS_TABLE) == {LossCase(s, i, f) for s in (False, True)
                               for i in (False, True) for f in (False, True)}


@given(st.booleans(), st.booleans(), st.booleans())
def test_a_started_step_that_is_not_idempotent_never_runs_again(started, idempotent,
                                                               fail) -> None:
    action = loss_action(LossCase(started, idempotent, fail))
    if fail:
        assert action is LossAction.FAIL_BY_SPEC
    elif started and not idempotent:
        assert action is LossAction.FAIL_STARTED
    else:
        assert action is LossAction.REPLACE


# ---- the coordinator's progress ----------------------------------------------------------


def test_a_running_step_on_the_lost_domain_fails_naming_it_and_skips_downstream() -> None:
    p = Progress(spec(step("a"), step("b", "a"), step("c", "b")),
                 {"a": ME, "b": LOST, "c": OTHER}, ME)
    p.start_ready()
    p.attempt_ended("a", 1, True, {"x": 1}, "")
    assert p.apply_result("b", 1, StepState.RUNNING, {}, "")
    resolved = p.domain_lost(LOST)
    assert resolved == [("b", LossAction.FAIL_STARTED)]
    b = p.steps["b"]
    assert b.state is StepState.FAILED and b.lost_to == LOST and b.epoch == 1
    assert b.error.startswith("domain us-east was lost (DEAD) while the step ran")
    assert "not idempotent" in b.error
    assert p.steps["c"].state is StepState.SKIPPED
    assert p.steps["a"].state is StepState.SUCCEEDED  # untouched: not on the lost domain
    assert p.outcome() is Outcome.FAILED


def test_a_domain_that_left_is_named_as_left_in_every_reason() -> None:
    """The state that made the domain lost is the one its steps' reasons name: a
    graceful stop (LEFT) is not reported as a death."""
    p = Progress(spec(step("a"), step("b", "a"), step("c", "d", on_loss="fail"),
                      step("d"), step("e", "d")),
                 {"a": OTHER, "b": LOST, "c": LOST, "d": OTHER, "e": LOST}, ME)
    assert p.apply_result("a", 1, StepState.SUCCEEDED, {}, "")
    resolved = dict(p.domain_lost(LOST, state="LEFT", can_replace=True))
    assert resolved == {"b": LossAction.FAIL_STARTED, "c": LossAction.FAIL_BY_SPEC,
                        "e": LossAction.REPLACE}
    assert p.steps["b"].error == (
        "domain us-east was lost (LEFT) while the step ran (or could have started); not"
        " run again: the step is not idempotent (idempotent: false)")
    assert p.steps["c"].error == ("domain us-east was lost (LEFT) before the step started;"
                                  " not placed again: on_domain_loss: fail")
    e = p.steps["e"]
    assert (e.state, e.lost_to, e.lost_as) == (StepState.PENDING, LOST, "LEFT")
    # The round for e finds no domain: its reason still says LEFT.
    assert p.replacement_failed("e", not_replaced_reason(
        e.lost_to, p.may_have_started("e"), "no eligible domain", e.lost_as))
    assert p.steps["e"].error == ("domain us-east was lost (LEFT) before the step started;"
                                  " could not place the step again: no eligible domain")
    # A DEAD domain, and the default, still read DEAD.
    q = Progress(spec(step("a"), step("b", on_loss="fail")), {"a": LOST, "b": OTHER}, ME)
    q.domain_lost(LOST, state="DEAD")
    q.domain_lost(OTHER)
    assert q.steps["a"].error.startswith("domain us-east was lost (DEAD) while")
    assert q.steps["b"].error.startswith("domain ap-south was lost (DEAD) while")


def test_suspect_or_another_domain_changes_nothing() -> None:
    p = Progress(spec(step("a"), step("b", "a")), {"a": LOST, "b": OTHER}, ME)
    assert p.domain_lost(OTHER) == [("b", LossAction.REPLACE)]  # b is on OTHER, not started
    q = Progress(spec(step("a")), {"a": LOST}, ME)
    assert q.domain_lost(ME) == []  # an agent never loses itself
    assert q.domain_lost("") == []
    assert q.steps["a"].state is StepState.WAITING and q.steps["a"].epoch == 0


def test_a_succeeded_step_keeps_its_result() -> None:
    p = Progress(spec(step("a"), step("b", "a")), {"a": LOST, "b": ME}, ME)
    assert p.apply_result("a", 1, StepState.SUCCEEDED, {"rows": 3}, "")
    assert p.domain_lost(LOST) == []
    assert p.steps["a"].state is StepState.SUCCEEDED and p.steps["a"].outputs == {"rows": 3}
    assert p.refuse_result("a", LOST, 0) is None  # its placement did not end


def test_without_re_placement_a_replaceable_step_fails_naming_the_domain() -> None:
    # A caller that can run no round (can_replace False, the default).
    p = Progress(spec(step("a"), step("b", "a"), step("c", idempotent=True)),
                 {"a": OTHER, "b": LOST, "c": LOST}, ME)
    assert p.apply_result("c", 1, StepState.RUNNING, {}, "")
    resolved = dict(p.domain_lost(LOST))
    assert resolved == {"b": LossAction.REPLACE, "c": LossAction.REPLACE}
    for sid in ("b", "c"):
        assert p.steps[sid].state is StepState.FAILED
        assert "this coordinator cannot run a new round" in p.steps[sid].error
        assert "us-east" in p.steps[sid].error
    assert "before the step started" in p.steps["b"].error


def test_with_re_placement_a_replaceable_step_goes_back_to_pending_unplaced() -> None:
    p = Progress(spec(step("a"), step("b", "a")), {"a": OTHER, "b": LOST}, ME)
    assert p.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]
    b = p.steps["b"]
    assert (b.state, b.domain, b.epoch, b.lost_to) == (StepState.PENDING, "", 1, LOST)
    assert p.outcome() is None


def test_on_domain_loss_fail_fails_even_a_step_that_never_started() -> None:
    p = Progress(spec(step("a"), step("b", "a", on_loss="fail", idempotent=True)),
                 {"a": OTHER, "b": LOST}, ME)
    assert p.domain_lost(LOST) == [("b", LossAction.FAIL_BY_SPEC)]
    assert p.steps["b"].error == ("domain us-east was lost (DEAD) before the step started;"
                                  " not placed again: on_domain_loss: fail")


def test_a_ready_step_without_a_report_counts_as_started() -> None:
    # It may have started in its first 0.2 s, before any RUNNING report.
    p = Progress(spec(step("a"), step("b", "a")), {"a": OTHER, "b": LOST}, ME)
    assert p.apply_result("a", 1, StepState.SUCCEEDED, {}, "")
    assert p.domain_lost(LOST) == [("b", LossAction.FAIL_STARTED)]


def test_after_a_restart_a_need_elsewhere_may_have_reached_the_lost_domain() -> None:
    """The producer of a need reports its result to the step's domain in the same turn
    as to the coordinator; what it sent while the coordinator was down may be there and
    not here (takeover soak seeds 3201512, 3201726). A restored Progress
    (`reports_missed`) counts such a need, on a third domain and not known ended, as
    possibly SUCCEEDED; a need it runs itself, never placed elsewhere, it knows."""
    def restored(placement: dict[str, str], *steps: spec_pb2.StepSpec) -> Progress:
        p = Progress(spec(*steps), placement, ME)
        p.reports_missed = True
        return p

    # a on OTHER, RUNNING as far as the coordinator knows: b may have started.
    p = restored({"a": OTHER, "b": LOST}, step("a"), step("b", "a"))
    assert p.apply_result("a", 1, StepState.RUNNING, {}, "")
    assert p.domain_lost(LOST, can_replace=True) == [("b", LossAction.FAIL_STARTED)]
    assert p.steps["b"].error.startswith("domain us-east was lost (DEAD) while the step")
    # Never restored: a's report comes here as it goes to b's domain; b not started.
    q = Progress(spec(step("a"), step("b", "a")), {"a": OTHER, "b": LOST}, ME)
    assert q.apply_result("a", 1, StepState.RUNNING, {}, "")
    assert q.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]
    # a here, running: its result went nowhere, so b never started.
    r = restored({"a": ME, "b": LOST}, step("a"), step("b", "a"))
    r.start_ready()
    assert r.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]
    # a here now, but placed here after its first domain was lost: that one may have run
    # it and reported to b's domain.
    t = restored({"a": OTHER, "b": LOST}, step("a", idempotent=True), step("b", "a"))
    assert t.apply_result("a", 1, StepState.RUNNING, {}, "")
    t.domain_lost(OTHER, can_replace=True)
    assert t.placed_again("a", ME, 2, OTHER)
    assert t.domain_lost(LOST, can_replace=True) == [("b", LossAction.FAIL_STARTED)]
    # A chain: m on OTHER needs a here (not ended): m cannot have succeeded, and b,
    # after m, never started.
    u = restored({"a": ME, "m": OTHER, "b": LOST}, step("a"), step("m", "a"),
                 step("b", "m"))
    assert u.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]
    # A fan-out need: met as its group is (enough instances that may have succeeded).
    # Every instance must succeed, and the one here has not: b never started.
    f1, f2 = (spec_pb2.StepSpec(id=f"f@{d}", capability="cap", instance_of="f")
              for d in (OTHER, ME))
    v = restored({f1.id: OTHER, f2.id: ME, "b": LOST}, f1, f2, step("b", f1.id, f2.id))
    assert v.domain_lost(LOST, can_replace=True) == [("b", LossAction.REPLACE)]
    w = restored({f1.id: OTHER, f2.id: ME, "b": LOST}, f1, f2, step("b", f1.id, f2.id))
    assert w.apply_result(f2.id, 1, StepState.SUCCEEDED, {}, "")
    assert w.domain_lost(LOST, can_replace=True) == [("b", LossAction.FAIL_STARTED)]


def test_a_step_heard_started_after_a_need_proves_the_need_reached_its_domain() -> None:
    """A need's result goes to the coordinator and to each domain that needs it in the
    same turn, but may be delayed on its way here (takeover soak seed 89500553: a's
    SUCCEEDED reached the lost domain, which started b and c, and came here only after
    the loss). b's RUNNING, here first, proves a SUCCEEDED: c, needing only a on the same
    domain, may have started, and is not placed again beside its attempt."""
    p = Progress(spec(step("a"), step("b", "a", idempotent=True), step("c", "a")),
                 {"a": OTHER, "b": LOST, "c": LOST}, ME)
    assert p.apply_result("a", 1, StepState.RUNNING, {}, "")
    assert p.apply_result("b", 1, StepState.RUNNING, {}, "")
    assert sorted(p.domain_lost(LOST, can_replace=True)) == [
        ("b", LossAction.REPLACE), ("c", LossAction.FAIL_STARTED)]
    # The start heard anywhere will do: the result went to every domain in that turn.
    q = Progress(spec(step("a"), step("b", "a"), step("c", "a")),
                 {"a": OTHER, "b": "sa-east", "c": LOST}, ME)
    assert q.apply_result("b", 1, StepState.RUNNING, {}, "")
    assert q.domain_lost(LOST, can_replace=True) == [("c", LossAction.FAIL_STARTED)]
    # Nothing after a heard started: a's result comes here as it goes there.
    r = Progress(spec(step("a"), step("b", "a", idempotent=True), step("c", "a")),
                 {"a": OTHER, "b": LOST, "c": LOST}, ME)
    assert r.apply_result("a", 1, StepState.RUNNING, {}, "")
    assert sorted(r.domain_lost(LOST, can_replace=True)) == [
        ("b", LossAction.REPLACE), ("c", LossAction.REPLACE)]


def test_reports_from_the_lost_placement_are_refused_and_never_applied() -> None:
    p = Progress(spec(step("a"), step("b")), {"a": LOST, "b": ME}, ME)
    assert p.apply_result("a", 1, StepState.RUNNING, {}, "")
    p.domain_lost(LOST)
    reason = p.refuse_result("a", LOST, 0)
    assert reason is not None and "lost with domain us-east" in reason and "epoch 1" in reason
    assert p.refuse_result("a", OTHER, 1) is None  # the current epoch passes
    assert p.refuse_result("nope", LOST, 0) is None
    # Even if a shell applied it, a terminal step never changes.
    assert not p.apply_result("a", 1, StepState.SUCCEEDED, {"late": True}, "")
    assert p.steps["a"].state is StepState.FAILED


# ---- every step state × every loss ----------------------------------------------------------

REPORTS = st.sampled_from(["none", "running", "succeeded", "failed"])


@settings(deadline=None)  # pure and quick; the deadline only measures a loaded machine
@given(upstream=REPORTS, target=REPORTS, idempotent=st.booleans(),
       on_loss=st.sampled_from(["", "replace", "fail"]), can_replace=st.booleans(),
       lost=st.sampled_from([LOST, OTHER, ME]), how=st.sampled_from(["DEAD", "LEFT"]))
def test_any_state_any_loss(upstream, target, idempotent, on_loss, can_replace,
                            lost, how) -> None:
    """Upstream `a` on OTHER, target `b` on LOST, downstream `c` here: whatever each has
    reported, a loss changes only unfinished steps of the lost domain, as the table says,
    and what was SUCCEEDED stays so."""
    p = Progress(spec(step("a"), step("b", "a", idempotent=idempotent, on_loss=on_loss),
                      step("c", "b")), {"a": OTHER, "b": LOST, "c": ME}, ME)
    for sid, report in (("a", upstream), ("b", target)):
        if report != "none":
            p.apply_result(sid, 1, StepState(report.upper()), {}, "boom")
    before = {sid: (s.state, s.epoch) for sid, s in p.steps.items()}
    resolved = dict(p.domain_lost(lost, state=how, can_replace=can_replace))
    for sid, s in p.steps.items():
        was_state, was_epoch = before[sid]
        if sid not in resolved:
            # Untouched, but for steps skipped because a resolved one failed.
            assert s.epoch == was_epoch
            assert s.state is was_state or (s.state is StepState.SKIPPED and resolved)
            continue
        assert s.domain in (lost, "") and lost != ME
        assert was_state not in TERMINAL_STEP_STATES
        assert s.epoch == was_epoch + 1 and s.lost_to == lost
        started = (was_state is StepState.RUNNING
                   or before["a"][0] is StepState.SUCCEEDED) if sid == "b" else True
        action = loss_action(LossCase(started, s.idempotent, s.on_domain_loss == "fail"))
        assert resolved[sid] is action
        if action is LossAction.REPLACE and can_replace:
            assert s.state is StepState.PENDING
        else:
            assert s.state is StepState.FAILED
            assert s.error.startswith(f"domain {lost} was lost ({how})"), s.error
            if sid == "b":
                assert p.steps["c"].state is StepState.SKIPPED
        assert p.refuse_result(sid, lost, was_epoch) is not None
    for sid, (state, _) in before.items():
        if state is StepState.SUCCEEDED:
            assert p.steps[sid].state is StepState.SUCCEEDED
    # A second loss of the same domain finds nothing more to do.
    assert p.domain_lost(lost, can_replace=can_replace) == []


# ---- Paxos Commit: a participant whose coordinator is DEAD ---------------------------------


def termination(me: str = "b") -> Termination:
    return Termination(me, rng=random.Random(1), query_timeout_s=5.0, query_interval_s=5.0,
                       resend_s=0.5, backoff_s=0.2)


def tx(round_: int = 1) -> TxInfo:
    return TxInfo("co.1", round_, "co", ("b", "c"), ("b", "c", "co"))


def test_a_dead_coordinator_starts_recovery_without_waiting_for_the_lease() -> None:
    t = termination()
    t.track(0.0, tx(), lease_expires=30.0)
    assert t.get_timer() == 30.0
    assert t.coordinator_lost(1.0, "somebody-else") == []
    assert t.get_timer() == 30.0 and t.state(("co.1", 1)) is DoubtState.WAITING
    assert t.coordinator_lost(1.0, "co") == [("co.1", 1)]
    queries = t.next_actions()
    assert {s.to for s in queries} == {"co", "c"}
    assert all(isinstance(s, Send) and isinstance(s.msg, DecisionQuery) for s in queries)
    timer = t.get_timer()
    assert timer is not None and timer < 30.0  # its turn, not the lease
    t.handle_timer(timer)
    assert t.state(("co.1", 1)) is DoubtState.RECOVERING
    assert any(isinstance(s, Send) and isinstance(s.msg, PaxosPrepare)
               for s in t.next_actions())


def test_a_recovering_transaction_is_left_as_it_is() -> None:
    t = termination()
    t.track(0.0, tx(), lease_expires=1.0)
    t.handle_timer(1.0)  # ASKING
    t.handle_timer(t.get_timer())  # RECOVERING
    t.next_actions()
    assert t.coordinator_lost(20.0, "co") == []
    assert t.next_actions() == []
