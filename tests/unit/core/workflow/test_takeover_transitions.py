"""Coordinator takeover core: the table, and safety over arbitrary schedules.

One core per electorate member is driven by Hypothesis through any interleaving of
membership views (each member its own, so views disagree), timers, claims delivered,
lost or duplicated, and answers. The shell's grant rule (`may_grant`) is applied as
the runtime applies it. Whatever the schedule: at most one member ever acts in an
epoch, epochs never go back, a member acts only with a majority of grants for its
epoch, and every (role, input) pair either moves as `TABLE` says or changes nothing.
"""

from __future__ import annotations

import pytest
from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.workflow import takeover as tk
from fedorch.core.workflow.takeover import (
    Act,
    Adopted,
    Announce,
    Deny,
    EndKnown,
    Grant,
    Persist,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Unproven,
    Watch,
    may_grant,
    successor,
)
from hypothesis import given, settings
from hypothesis import strategies as st

ORIGINAL = "a"
PARTICIPANTS = ("b", "c", "d")
ELECTORATE = (ORIGINAL, *PARTICIPANTS)
STATES = ["ALIVE", "SUSPECT", "DEAD", "LEFT", ""]


def core(me: str, **kw) -> Takeover:
    return Takeover(me, ORIGINAL, PARTICIPANTS, takeover_after_s=10.0,
                    claim_timeout_s=5.0, **kw)


# ---- single transitions -------------------------------------------------------------

def test_the_lowest_live_participant_claims_the_next_epoch_when_the_coordinator_is_dead():
    b = core("b")
    out = b.step(0.0, Watch("DEAD"))
    assert b.role is Role.CLAIMING and b.epoch == 1 and b.coordinator == "b"
    assert out[0] == Persist(1, "b")  # its own grant is durable before any claim leaves
    assert [x for x in out if isinstance(x, SendClaim)] == [
        SendClaim("a", 1), SendClaim("c", 1), SendClaim("d", 1)]
    assert b.step(0.1, Grant("c", 1)) == []  # two of four: no majority yet
    assert b.step(0.2, Grant("d", 1)) == [Act(1), SendClaim("c", 1), SendClaim("d", 1)]
    assert b.role is Role.ACTING


def test_others_do_not_claim_while_a_lower_participant_lives():
    c = core("c")
    assert c.step(0.0, Watch("DEAD")) == []
    assert c.role is Role.FOLLOWING and c.epoch == 0
    # ... but do once that one is dead too
    out = c.step(1.0, Watch("DEAD", frozenset({"b"})))
    assert Persist(1, "c") in out and c.role is Role.CLAIMING


def test_a_silent_coordinator_is_taken_over_only_after_takeover_after_s():
    b = core("b")
    assert b.step(0.0, Watch("SUSPECT")) == []
    assert b.get_timer() == 10.0
    assert b.step(9.9, Timer()) == []
    assert b.step(5.0, Watch("ALIVE")) == [] and b.get_timer() is None  # it came back
    b.step(20.0, Watch("SUSPECT"))
    out = b.step(30.0, Timer())
    assert Persist(1, "b") in out and b.role is Role.CLAIMING


def test_a_coordinator_the_view_first_names_after_none_is_silent_from_then():
    """Takeover soak seed 68000128: a participant restarted and stalled before its view
    was told anything; the view's first word, SUSPECT, came past the deadline its
    unknown ("") had set. A view not had is no silence seen: it counts from then."""
    b = core("b")
    assert b.step(0.0, Watch("")) == [] and b.get_timer() == 10.0
    assert b.step(13.0, Watch("SUSPECT")) == [] and b.get_timer() == 23.0
    assert b.step(22.9, Timer()) == [] and b.role is Role.FOLLOWING
    assert Persist(1, "b") in b.step(23.0, Timer())
    # Never named at all (a coordinator long gone from the view): silent from the build.
    b = core("b")
    b.step(0.0, Watch(""))
    assert Persist(1, "b") in b.step(10.0, Timer())
    # Named DEAD: gone at once.
    b = core("b")
    b.step(0.0, Watch(""))
    assert Persist(1, "b") in b.step(13.0, Watch("DEAD"))
    # Named first, then unknown, then named again: still silent from the first word.
    b = core("b")
    for at, state in [(0.0, "SUSPECT"), (1.0, ""), (2.0, "SUSPECT")]:
        assert b.step(at, Watch(state)) == []
    assert b.get_timer() == 10.0


def test_a_non_participant_never_claims():
    a = core("a", epoch=0)  # the original coordinator, acting
    assert a.role is Role.ACTING
    assert a.step(0.0, Watch("DEAD")) == []


def test_an_old_coordinator_follows_a_later_epoch():
    a = core("a")
    assert a.step(0.0, Adopted(1, "b")) == [Persist(1, "b")]
    assert a.role is Role.FOLLOWING and a.coordinator == "b" and a.epoch == 1
    assert a.step(0.0, Adopted(0, "a")) == []  # never back
    assert a.epoch == 1


def test_a_rival_claim_that_leaves_no_majority_makes_the_higher_name_follow_at_once():
    c = core("c")
    c.step(0.0, Watch("DEAD", frozenset({"b"})))  # c thinks b is dead too
    # b claimed epoch 1 at d: of a, b, c, d only c may still grant c (a is the dead
    # coordinator, b ranks better, d holds it for b): no majority, b goes next.
    assert c.step(0.1, Deny("d", 1, 1, "b")) == [Persist(1, "b")]
    assert c.role is Role.FOLLOWING and c.coordinator == "b" and c.get_timer() is None


def test_a_rival_claim_the_denials_cannot_settle_waits_for_the_claim_timeout():
    # Five acceptors: after x holds epoch 1 for c, b may still get b, c and y.
    b = Takeover("b", "a", ["b", "c"], acceptors=["a", "b", "c", "x", "y"],
                 takeover_after_s=10.0, claim_timeout_s=5.0)
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Deny("x", 1, 1, "c")) == []
    assert b.get_timer() == 5.0  # c did not answer itself: nothing to ask it again
    out = b.step(5.0, Timer())
    assert out[0] == Persist(2, "b") and b.role is Role.CLAIMING and b.epoch == 2
    # Seven acceptors: after y holds epoch 1 for b, c may still get c, x, z and w.
    c = Takeover("c", "a", ["b", "c"], acceptors=["a", "b", "c", "w", "x", "y", "z"],
                 takeover_after_s=10.0, claim_timeout_s=5.0)
    c.step(0.0, Watch("DEAD", frozenset({"b"})))
    assert c.step(0.1, Deny("y", 1, 1, "b")) == []
    assert c.step(5.0, Timer()) == [Persist(1, "b")]  # the higher name follows
    assert c.role is Role.FOLLOWING and c.coordinator == "b"


def test_split_votes_the_lower_name_claims_the_next_epoch():
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Deny("c", 1, 1, "c")) == []  # c claimed epoch 1 too
    out = b.step(5.0, Timer())
    assert out[0] == Persist(2, "b") and b.role is Role.CLAIMING and b.epoch == 2


def test_a_claimant_that_is_not_heard_from_is_passed_over():
    c = core("c")  # b is due to claim (alive), but does not
    assert c.step(0.0, Watch("DEAD")) == []
    assert c.get_timer() == 10.0
    out = c.step(10.0, Timer())
    assert Persist(1, "c") in out and c.role is Role.CLAIMING


def test_a_claim_nobody_answers_is_asked_again_at_the_same_epoch():
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    out = b.step(5.0, Timer())
    assert out == [SendClaim("a", 1), SendClaim("c", 1), SendClaim("d", 1)]
    assert b.epoch == 1 and b.role is Role.CLAIMING


def test_a_proven_denial_naming_a_later_epoch_ends_the_claim():
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Deny("c", 1, 2, "d", proven=True)) == [Persist(2, "d")]
    assert b.role is Role.FOLLOWING and b.epoch == 2


def test_an_unproven_denial_naming_a_later_epoch_is_not_followed():
    """Only the voter's word: the claim goes on, and is asked again at its timeout."""
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Deny("c", 1, 2, "d")) == [Unproven("c", 2, "d")]
    assert (b.role, b.epoch, b.coordinator) == (Role.CLAIMING, 1, "b")
    assert b.step(0.2, Grant("d", 1)) == []
    assert b.step(0.3, Grant("a", 1)) == [Act(1), SendClaim("a", 1), SendClaim("d", 1)]  # a majority of a, b, c, d without c


def stalled_and_claimed() -> dict[str, Takeover]:
    """a (the coordinator) silent: b claims epoch 1 and c and d grant it; b's claim has
    not won yet (their grants are on their way)."""
    cores = {m: core(m) for m in PARTICIPANTS}
    cores["b"].step(0.0, Watch("SUSPECT"))
    out = cores["b"].step(10.0, Timer())
    assert Persist(1, "b") in out and cores["b"].role is Role.CLAIMING
    for m in ("c", "d"):
        assert may_grant(cores[m].epoch, cores[m].coordinator, 1, "b")
        assert cores[m].step(10.1, Adopted(1, "b")) == [Persist(1, "b")]
    return cores


def end_notice_taken(at: Takeover, sender: str, epoch: int) -> bool:
    """Would a member holding what `at` holds take an end notice of `epoch` from
    `sender`? The authority rule every shell applies."""
    try:
        authorize("cancel", sender, Facts(workflow_id=f"{ORIGINAL}.w", epoch=epoch,
                                          held=(at.epoch, at.coordinator),
                                          participants=set(PARTICIPANTS)))
    except Refused:
        return False
    return True


def test_a_claimant_that_learns_the_old_coordinators_end_tells_it_on_in_its_epoch():
    cores = stalled_and_claimed()
    b = cores["b"]
    # a's end of epoch 0 reaches b (its claim has not won: a is still the one it
    # followed) but not c and d, which granted epoch 1 and refuse epoch 0's word.
    assert not end_notice_taken(cores["c"], ORIGINAL, 0)
    out = b.step(10.2, EndKnown())
    assert out == [Announce(1)]
    assert not any(isinstance(x, Act) for x in out)  # told on, never acted on
    # In epoch 1, which c and d hold for b, the end is taken by both.
    assert end_notice_taken(cores["c"], "b", 1) and end_notice_taken(cores["d"], "b", 1)
    # And the claim is over: no timer, no more claims, grants or acting.
    assert b.get_timer() is None
    assert b.step(30.0, Timer()) == []
    assert b.step(30.1, Grant("c", 1)) == [] and b.step(30.2, Grant("d", 1)) == []
    assert b.role is not Role.ACTING


def test_an_acting_successor_that_learns_the_end_tells_it_in_its_epoch():
    b = core("b", epoch=2, coordinator="b")
    assert b.role is Role.ACTING
    assert b.step(0.0, EndKnown()) == [Announce(2)]
    assert b.get_timer() is None


def test_a_follower_or_the_original_coordinator_announces_nothing():
    cores = stalled_and_claimed()
    assert cores["c"].step(11.0, EndKnown()) == []  # b coordinates it now
    assert core("a").step(0.0, EndKnown()) == []  # its own end is told as such


def test_may_grant_one_claimant_per_epoch():
    assert may_grant(0, "a", 1, "b")
    assert may_grant(1, "b", 1, "b")       # the same claim again
    assert not may_grant(1, "b", 1, "c")   # another claimant of a held epoch
    assert not may_grant(2, "c", 1, "b")   # an epoch below the one held


def test_successor_is_the_lowest_live_name():
    assert successor(["d", "c", "b"], {"b"}) == "c"
    assert successor(["b"], {"b"}) is None


def test_paxos_electorate_is_the_committed_rounds_acceptors():
    # Two domains: the coordinator "a" and one participant "b"; "x" is the extra acceptor.
    b = Takeover("b", "a", ["b"], acceptors=["a", "b", "x"], takeover_after_s=10.0)
    assert b.electorate == {"a", "b", "x"}
    out = b.step(0.0, Watch("DEAD"))
    assert out[0] == Persist(1, "b")
    assert [x for x in out if isinstance(x, SendClaim)] == [SendClaim("a", 1), SendClaim("x", 1)]
    assert b.step(0.1, Grant("x", 1)) == [Act(1), SendClaim("x", 1)]  # 2 of 3: the extra acceptor suffices
    assert b.role is Role.ACTING


def test_without_acceptors_two_domains_wait_for_their_coordinator():
    # Classic 2PC: the electorate is {a, b}; b alone is 1 of 2 and never acts.
    b = Takeover("b", "a", ["b"], takeover_after_s=10.0)
    assert b.electorate == {"a", "b"}
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Grant("x", 1)) == []  # not a member: its grant does not count
    assert b.role is Role.CLAIMING


def test_a_participant_outside_the_acceptors_is_no_member():
    # "r" got a step by re-placement after the commit: it may claim, but its own grant
    # does not count, and the fixed acceptors decide.
    r = Takeover("r", "a", ["b", "r"], acceptors=["a", "b", "x"], takeover_after_s=10.0)
    r.step(0.0, Watch("DEAD", frozenset({"b"})))
    assert r.role is Role.CLAIMING
    assert r.step(0.1, Grant("x", 1)) == []  # 1 of 3 (r itself is no member)
    assert r.step(0.2, Grant("b", 1)) == [Act(1), SendClaim("b", 1), SendClaim("x", 1)]


def test_bad_construction_is_refused():
    with pytest.raises(ValueError):
        Takeover("b", "a", [])
    with pytest.raises(ValueError):
        Takeover("b", "a", ["b"], epoch=-1)


# ---- every (role, input) pair over arbitrary schedules ---------------------------------

inputs = st.one_of(
    st.builds(Watch, st.sampled_from(STATES),
              st.frozensets(st.sampled_from(PARTICIPANTS), max_size=2)),
    st.just(Timer()),
    st.builds(Grant, st.sampled_from(ELECTORATE), st.integers(0, 3)),
    st.builds(Deny, st.sampled_from(ELECTORATE), st.integers(0, 3), st.integers(0, 3),
              st.sampled_from(ELECTORATE), st.booleans()),
    st.builds(Adopted, st.integers(0, 3), st.sampled_from(ELECTORATE)),
    st.just(EndKnown()),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ELECTORATE), st.lists(st.tuples(st.floats(0, 3), inputs), max_size=40))
def test_every_role_and_input(me, schedule):
    c = core(me)
    now = 0.0
    for dt, event in schedule:
        now += dt
        before = (c.role, c.epoch, c.coordinator)
        out = c.step(now, event)
        if (before[0], type(event)) not in tk.TABLE:
            assert out == [] and (c.role, c.epoch, c.coordinator) == before
        assert c.epoch >= before[1]  # never back
        if c.epoch != before[1] or c.coordinator != before[2]:
            assert out and out[0] == Persist(c.epoch, c.coordinator)  # durable first
        if any(isinstance(x, Act) for x in out):
            assert c.role is Role.ACTING and c.coordinator == me
        if c.role is Role.ACTING and me != ORIGINAL:
            assert c.epoch >= 1
        if any(isinstance(x, Announce) for x in out):
            # In the epoch it claimed (or acts in), and only once: then it is done.
            assert out == [Announce(c.epoch)] and c.coordinator == me and c.epoch >= 1
            assert c.ended and c.get_timer() is None
        elif c.ended:
            assert out == [] and (c.role, c.epoch, c.coordinator) == before


# ---- many members, one network: at most one acting per epoch ---------------------------

@st.composite
def schedules(draw):
    """Steps of a federation run: (kind, member, payload index)."""
    kinds = st.sampled_from(["watch", "timer", "deliver", "drop", "dup"])
    return draw(st.lists(st.tuples(kinds, st.sampled_from(ELECTORATE),
                                   st.sampled_from(STATES),
                                   st.frozensets(st.sampled_from(PARTICIPANTS), max_size=2),
                                   st.integers(0, 50)), max_size=120))


@settings(max_examples=400, deadline=None)
@given(schedules())
def test_at_most_one_member_acts_in_an_epoch(schedule):
    _at_most_one_acting(schedule, {m: core(m) for m in ELECTORATE}, ELECTORATE)


# Paxos Commit, a workflow on two domains: "a" coordinates, "b" runs every step, and the
# round's acceptors add "x" (no step) and "c" (no step either: min_acceptors 4 here).
PAXOS_ACCEPTORS = ("a", "b", "c", "x")


@st.composite
def paxos_schedules(draw):
    kinds = st.sampled_from(["watch", "timer", "deliver", "drop", "dup"])
    return draw(st.lists(st.tuples(kinds, st.sampled_from(PAXOS_ACCEPTORS),
                                   st.sampled_from(STATES),
                                   st.frozensets(st.sampled_from(["b"]), max_size=1),
                                   st.integers(0, 50)), max_size=120))


@settings(max_examples=300, deadline=None)
@given(paxos_schedules(), st.sampled_from([("b",), ("b", "c")]))
def test_at_most_one_member_acts_in_an_epoch_with_acceptors(schedule, participants):
    # With ("b", "c"): "c" is a participant too, so two claimants can race.
    cores = {m: Takeover(m, "a", participants, acceptors=PAXOS_ACCEPTORS,
                         takeover_after_s=10.0, claim_timeout_s=5.0)
             for m in PAXOS_ACCEPTORS}
    _at_most_one_acting(schedule, cores, PAXOS_ACCEPTORS)


def record_actions(member: str, actions, electorate, pool: list, acted: dict,
                   received: dict) -> None:
    """A member's actions in a schedule: a claim goes into the pool of messages on
    their way (from, to, message); an act is recorded for its epoch, and only on a
    majority of the electorate's grants heard by the member (its own counts)."""
    for x in actions:
        if isinstance(x, SendClaim):
            pool.append((member, x.to, x))
        elif isinstance(x, Act):
            acted.setdefault(x.epoch, set()).add(member)
            voters = received.get((member, x.epoch), set()) | {member}
            assert len(voters & set(electorate)) >= tk.majority(electorate)


def _at_most_one_acting(schedule, cores: dict[str, Takeover], electorate) -> None:
    acted: dict[int, set[str]] = {0: {ORIGINAL}}
    received: dict[tuple[str, int], set[str]] = {}  # (claimant, epoch) -> voters heard
    pool: list[tuple[str, str, object]] = []  # (from, to, message)
    now = 0.0

    def run(member: str, actions) -> None:
        record_actions(member, actions, electorate, pool, acted, received)

    def receive(frm: str, to: str, msg) -> None:
        c = cores[to]
        if isinstance(msg, SendClaim):
            if may_grant(c.epoch, c.coordinator, msg.epoch, frm):
                run(to, c.step(now, Adopted(msg.epoch, frm)))
                pool.append((to, frm, Grant(to, msg.epoch)))
            else:
                pool.append((to, frm, Deny(to, msg.epoch, c.epoch, c.coordinator)))
        else:
            if isinstance(msg, Grant):
                received.setdefault((to, msg.epoch), set()).add(frm)
            run(to, c.step(now, msg))

    for kind, member, state, dead, index in schedule:
        now += 1.0
        c = cores[member]
        if kind == "watch":
            run(member, c.step(now, Watch(state, dead)))
        elif kind == "timer":
            timer = c.get_timer()
            if timer is not None:
                now = max(now, timer)
                run(member, c.step(now, Timer()))
        elif pool:
            frm, to, msg = pool[index % len(pool)]
            if kind != "dup":
                pool.pop(index % len(pool))
            if kind != "drop":
                receive(frm, to, msg)
        for epoch, who in acted.items():
            assert len(who) == 1, f"epoch {epoch} acted by {sorted(who)}"


def test_participants_outside_the_acceptors_hear_a_won_claim_only():
    # A round with more participants than max_acceptors: b, c, d hold steps; the
    # acceptors are a (the dead coordinator), b and c. d hears the claim only once it has
    # won (a grant to a claim that lost would make it refuse the old coordinator's end),
    # and again until it answers; its grant counts for nothing.
    b = Takeover("b", "a", ["b", "c", "d"], acceptors=["a", "b", "c"], takeover_after_s=10.0,
                 claim_timeout_s=5.0)
    out = b.step(0.0, Watch("DEAD"))
    assert [x for x in out if isinstance(x, SendClaim)] == [SendClaim("a", 1), SendClaim("c", 1)]
    assert b.step(0.1, Grant("d", 1)) == []  # d is no member (a stray answer)
    assert b.role is Role.CLAIMING
    # d answered already: not told again; c, which granted, hears the winner once.
    assert b.step(0.2, Grant("c", 1)) == [Act(1), SendClaim("c", 1)]
    silent = Takeover("b", "a", ["b", "c", "d"], acceptors=["a", "b", "c"],
                      takeover_after_s=10.0, claim_timeout_s=5.0)
    silent.step(0.0, Watch("DEAD"))
    assert silent.step(0.2, Grant("c", 1)) == [Act(1), SendClaim("c", 1), SendClaim("d", 1)]
    assert silent.step(6.0, Timer()) == [SendClaim("a", 1), SendClaim("d", 1)]
    assert silent.step(6.1, Grant("d", 1)) == []
    assert silent.step(12.0, Timer()) == [SendClaim("a", 1)]


def test_a_claim_that_has_not_won_is_asked_again_of_the_electorate_only():
    b = Takeover("b", "a", ["b", "c", "d"], acceptors=["a", "b", "c"], takeover_after_s=10.0,
                 claim_timeout_s=5.0)
    b.step(0.0, Watch("DEAD"))
    assert b.step(6.0, Timer()) == [SendClaim("a", 1), SendClaim("c", 1)]
