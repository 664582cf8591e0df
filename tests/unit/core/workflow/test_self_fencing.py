"""The self-fencing rule: a step stops only when every contact is DEAD past the lease,
counted from the last contact with its workflow, whenever the step started."""

from __future__ import annotations

import math

from fedorch.core.workflow.self_fencing import (
    Contact,
    WorkflowHeard,
    deadline,
    fenced,
    in_contact,
    lost_since,
    next_look,
    reason,
    taken_steps,
)
from hypothesis import given
from hypothesis import strategies as st

STATES = ["ALIVE", "SUSPECT", "DEAD", "LEFT", ""]
times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
contact = st.builds(Contact, st.sampled_from(["a", "b", "c", "d"]),
                    st.sampled_from(STATES), st.none() | times)
contacts = st.lists(contact, max_size=5)
leases = st.floats(min_value=0.01, max_value=1e4, allow_nan=False)


def test_every_contact_dead_past_the_lease_is_fenced():
    lost = [Contact("coord", "DEAD", 10.0), Contact("p2", "LEFT", 12.0)]
    assert deadline(lost, heard_at=5.0, lease_s=6.0) == 18.0  # last heard 12 + 6
    assert not fenced(lost, 5.0, 6.0, now=17.9)
    assert fenced(lost, 5.0, 6.0, now=18.0)
    assert "coord, p2" in reason(["p2", "coord"], 6.2)
    assert reason(["p2"], 6.2).startswith("fenced: lost contact with p2 for 6 s")


def test_a_step_started_after_the_silence_gets_only_what_is_left_of_the_lease():
    # Its COMMIT at 5, the coordinator last heard at 10, cut off since: a retry or the
    # next step of a chain that starts here at 12 is fenced at 16, not 18.
    heard = WorkflowHeard()
    assert heard.starting("wf", 5.0) == 5.0
    lost = [Contact("coord", "DEAD", 10.0)]
    assert heard.starting("wf", 12.0) == 5.0
    assert deadline(lost, heard.starting("wf", 12.0), 6.0) == 16.0
    # One about to start at 20, past that: fenced already, so never started.
    assert fenced(lost, heard.starting("wf", 20.0), 6.0, now=20.0)


def test_the_workflows_first_start_here_is_contact():
    # It has just learned the COMMIT (or the result it needed) from the workflow: the
    # lease counts from then, although membership last heard the coordinator long ago.
    heard = WorkflowHeard()
    lost = [Contact("coord", "DEAD", 10.0)]
    assert deadline(lost, heard.starting("wf", 50.0), 6.0) == 56.0
    assert deadline([Contact("coord", "DEAD", None)], heard.starting("other", 50.0),
                    6.0) == 56.0


def test_a_message_of_the_workflow_moves_its_contact_on_and_a_start_does_not():
    heard = WorkflowHeard()
    heard.starting("wf", 1.0)
    heard.heard("wf", 7.0)  # a result it needed, from a participant
    assert heard.starting("wf", 9.0) == 7.0
    heard.heard("wf", 3.0)  # one handled late never moves it back
    assert heard.at("wf") == 7.0
    heard.heard("new", 4.0)  # noted before its first start: that start keeps it
    assert heard.starting("new", 8.0) == 4.0
    heard.forget("new")  # ended here: only that one goes
    assert heard.at("new") is None and heard.at("wf") == 7.0
    assert len(heard) == 1


def test_forget_drops_one_workflow_and_its_restart_mark() -> None:
    heard = WorkflowHeard()
    heard.heard("a", 1.0)
    heard.heard("b", 2.0)
    heard.restored("c")
    heard.forget("c")
    heard.forget("a")
    heard.forget("unknown")  # never noted: nothing to do
    assert (heard.at("a"), heard.at("b"), len(heard)) == (None, 2.0, 1)
    assert heard.may_start("c")  # a new workflow of that id would start as any


# ---- after a restart ------------------------------------------------------------------


def test_a_restored_workflow_starts_nothing_until_heard_from_in_this_life():
    # Read back at start-up (the membership view blank): a start is no contact, so the
    # idempotent retry of an attempt its earlier life left open does not get a whole
    # lease from its start. The coordinator's answer at 40 is a message of this life.
    heard = WorkflowHeard()
    heard.restored("wf")
    assert not heard.may_start("wf")
    assert heard.starting("wf", 30.0) is None
    assert heard.at("wf") is None and not heard.may_start("wf")  # the start noted nothing
    heard.heard("wf", 40.0)
    assert heard.may_start("wf")
    assert heard.starting("wf", 45.0) == 40.0
    lost = [Contact("coord", "DEAD", None)]
    assert deadline(lost, heard.starting("wf", 45.0), 6.0) == 46.0  # from the answer
    # One first heard in this life (its COMMIT came after the restart) is as ever.
    assert heard.may_start("fresh") and heard.starting("fresh", 50.0) == 50.0


def test_restored_after_a_message_of_this_life_keeps_it():
    # A COMMIT handled during recovery, before the reload marks the workflow restored.
    heard = WorkflowHeard()
    heard.heard("wf", 3.0)
    heard.restored("wf")
    assert heard.may_start("wf") and heard.starting("wf", 9.0) == 3.0


def test_a_commit_learned_without_the_coordinator_starts_nothing_until_heard_from():
    # Set up from the acceptors' COMMIT at 20: that is no contact, so no start counts
    # from it; the coordinator's answer at 25 (its epochs: still placed here) is.
    heard = WorkflowHeard()
    heard.not_heard("wf")
    assert not heard.may_start("wf") and heard.starting("wf", 20.0) is None
    heard.heard("wf", 25.0)
    assert heard.may_start("wf") and heard.starting("wf", 26.0) == 25.0
    # The same COMMIT learned again later changes nothing of a workflow heard from.
    heard.not_heard("wf")
    assert heard.may_start("wf") and heard.starting("wf", 30.0) == 25.0


life_events = st.lists(st.tuples(st.sampled_from(["heard", "start", "restored", "forget"]),
                                 times), max_size=12)


@given(life_events)
def test_no_start_of_a_restored_workflow_counts_from_before_a_message_of_this_life(history):
    """Whatever happens, in time order: after `restored` (a new life) and until the next
    `forget`, `starting` gives None until some `heard`, and then a moment no earlier
    than the first `heard` since the restore. A workflow never restored keeps the rule
    as before (its first start counts when nothing was noted)."""
    heard = WorkflowHeard()
    history = sorted(history, key=lambda e: e[1])
    restored, first_heard, noted = False, None, None  # the model
    for kind, t in history:
        if kind == "heard":
            heard.heard("wf", t)
            noted = t if noted is None else max(noted, t)
            if restored and first_heard is None:
                first_heard = t
        elif kind == "restored":
            heard.restored("wf")
            if noted is None:  # nothing of this life noted: a new life begins here
                restored, first_heard = True, None
        elif kind == "forget":
            heard.forget("wf")
            restored, first_heard, noted = False, None, None
        else:
            got = heard.starting("wf", t)
            if restored and first_heard is None:
                assert got is None and not heard.may_start("wf")
            else:
                assert got is not None and heard.may_start("wf")
                if restored:
                    assert got >= first_heard
                if noted is None:
                    noted = t  # the first start with nothing noted counts
                assert got == noted


def test_one_suspect_is_contact_enough():
    assert deadline([Contact("coord", "DEAD", 1.0), Contact("p2", "SUSPECT", 1.0)],
                    0.0, 1.0) is None


def test_no_contact_at_all_never_fences():
    assert in_contact([])
    assert next_look([], 0.0, 1.0, now=5.0) == math.inf


@given(contacts, times, leases, times)
def test_nothing_is_fenced_while_any_contact_is_alive_or_suspect(cs, started, lease, now):
    if any(c.state in ("ALIVE", "SUSPECT") for c in cs):
        assert not fenced(cs, started, lease, now)


@given(contacts, times, leases, times)
def test_nothing_is_fenced_within_a_lease_of_the_last_message_or_the_start(
        cs, started, lease, now):
    if fenced(cs, started, lease, now):
        assert cs
        assert now >= started + lease
        assert all(c.last_heard is None or now >= c.last_heard + lease for c in cs)


@given(contacts, times, leases, times)
def test_everything_lost_past_the_lease_is_fenced(cs, started, lease, now):
    if cs and all(c.state in ("DEAD", "LEFT", "") for c in cs) \
            and now >= lost_since(cs, started) + lease:
        assert fenced(cs, started, lease, now)


@given(contacts, times, leases, times, times)
def test_the_next_look_is_never_late(cs, started, lease, now, later):
    """Were the contacts' states fixed from now on, no moment before the next look
    fences: a timer at the next look misses nothing."""
    look = next_look(cs, started, lease, now)
    assert look >= now
    if now <= later < look:
        assert not fenced(cs, started, lease, later)


@given(contacts, times, leases, times)
def test_while_in_contact_the_next_look_is_at_least_a_quarter_lease_away(
        cs, started, lease, now):
    if cs and in_contact(cs):
        assert next_look(cs, started, lease, now) >= now + lease / 4


events = st.lists(st.tuples(st.sampled_from(["heard", "start"]), times), min_size=1,
                  max_size=8)


@given(events, contacts, leases, times, times)
def test_a_step_is_never_kept_past_the_lease_after_the_last_contact_whenever_it_started(
        history, cs, lease, started, now):
    """Whatever the workflow's messages and starts here before (in time order), a step
    that starts at `started`, later than all of them, is fenced (or never started) from
    the lease after its workflow's last contact on, once every contact is lost."""
    heard = WorkflowHeard()
    history = sorted(history, key=lambda e: e[1])
    for kind, at in history:
        if kind == "heard":
            heard.heard("wf", at)
        else:
            heard.starting("wf", at)
    started = max(started, history[-1][1])
    heard_at = heard.starting("wf", started)
    last_contact = max([t for kind, t in history if kind == "heard"]
                       + [history[0][1] if history[0][0] == "start" else -math.inf]
                       + [c.last_heard for c in cs if c.last_heard is not None])
    assert heard_at <= last_contact  # a later start itself never counts
    if cs and not in_contact(cs) and now >= last_contact + lease:
        assert fenced(cs, heard_at, lease, now)


@given(st.dictionaries(st.sampled_from("abcd"), st.integers(0, 3)),
       st.dictionaries(st.sampled_from("abcde"), st.integers(0, 3)))
def test_an_answer_is_contact_only_when_it_places_every_step_here_still(
        held: dict[str, int], answered: dict[str, int]) -> None:
    taken = taken_steps(held, answered)
    if not answered:
        assert taken is None  # says nothing of placements
        return
    assert taken == [s for s in held if s in answered and answered[s] > held[s]]
