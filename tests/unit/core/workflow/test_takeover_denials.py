"""A denial naming a later coordinator epoch is followed only with its proof.

The takeover core (agent/core/workflow/takeover.py, "Denials"): a `Deny` whose
certificate the shell verified (`proven`) is followed like the `Proven` it shows; one
without is the voter's word: the claimant keeps claiming and the acting coordinator
keeps acting, and the core reports it (`Unproven`). Checked on single transitions, over
any reachable state (Hypothesis), and over whole schedules in which one member of the
electorate lies in every answer: at most one member acts in an epoch, and no member
follows a later epoch nobody proved.
"""

from __future__ import annotations

from fedorch.core.workflow.takeover import (
    Act,
    Adopted,
    Deny,
    Grant,
    Persist,
    Proven,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Unproven,
    Watch,
    may_grant,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.unit.core.workflow.test_takeover_transitions import record_actions

ORIGINAL = "a"
PARTICIPANTS = ("b", "c", "d")
ELECTORATE = (ORIGINAL, *PARTICIPANTS, "x")  # x: an extra acceptor holding no step
STATES = ["ALIVE", "SUSPECT", "DEAD", "LEFT", ""]


def core(me: str, **kw) -> Takeover:
    return Takeover(me, ORIGINAL, PARTICIPANTS, acceptors=ELECTORATE, takeover_after_s=10.0,
                    claim_timeout_s=5.0, **kw)


# ---- single transitions ---------------------------------------------------------------


def test_the_original_keeps_acting_on_an_unproven_denial_and_follows_a_proven_one():
    a = core("a")
    assert a.role is Role.ACTING and a.epoch == 0
    assert a.step(0.1, Deny("x", 0, 1, "b")) == [Unproven("x", 1, "b")]
    assert (a.role, a.epoch, a.coordinator) == (Role.ACTING, 0, "a")
    assert a.step(0.2, Deny("x", 0, 1, "b", proven=True)) == [Persist(1, "b")]
    assert (a.role, a.epoch, a.coordinator) == (Role.FOLLOWING, 1, "b")


def test_an_acting_successor_keeps_acting_on_an_unproven_denial():
    b = core("b", epoch=1, coordinator="b")
    assert b.role is Role.ACTING
    assert b.step(0.1, Deny("x", 1, 4, "c")) == [Unproven("x", 4, "c")]
    assert (b.role, b.epoch, b.coordinator) == (Role.ACTING, 1, "b")
    assert b.step(0.2, Deny("x", 1, 1, "c")) == []  # our epoch is agreed: not a later one


def test_a_liar_among_five_cannot_keep_a_claim_from_winning():
    """x lies (epoch 7 for c), a is dead: b wins epoch 1 with c and d."""
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Deny("x", 1, 7, "c")) == [Unproven("x", 7, "c")]
    assert b.step(0.2, Grant("c", 1)) == []
    assert b.step(0.3, Grant("d", 1)) == [Act(1), SendClaim("c", 1), SendClaim("d", 1)]
    assert (b.role, b.epoch) == (Role.ACTING, 1)


def test_an_unproven_later_epoch_counts_its_voter_out_of_a_split():
    """c claims epoch 1 too and answered itself; x says epoch 5 for d, unproven; a is
    gone: b can reach at most b, d (2 of 5), so the split rule decides now. c ranks
    worse and may still win with d; b waits (and asks c again), follows no one."""
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Deny("c", 1, 1, "c")) == []
    out = b.step(0.2, Deny("x", 1, 5, "d"))
    assert out[-1] == Unproven("x", 5, "d")
    assert b.coordinator == "b" and b.epoch in (1, 2)
    assert (b.epoch, b.coordinator) != (5, "d")


def test_a_proven_denial_of_our_own_epoch_follows_the_winner():
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Deny("x", 1, 1, "c", proven=True)) == [Persist(1, "c")]
    assert (b.role, b.epoch, b.coordinator) == (Role.FOLLOWING, 1, "c")


# ---- any reachable state -----------------------------------------------------------------

inputs = st.one_of(
    st.builds(Watch, st.sampled_from(STATES),
              st.frozensets(st.sampled_from(PARTICIPANTS), max_size=2)),
    st.just(Timer()),
    st.builds(Grant, st.sampled_from(ELECTORATE), st.integers(0, 3)),
    st.builds(Deny, st.sampled_from(ELECTORATE), st.integers(0, 3), st.integers(0, 3),
              st.sampled_from(ELECTORATE)),
    st.builds(Adopted, st.integers(0, 3), st.sampled_from(ELECTORATE)),
    st.builds(Proven, st.integers(1, 3), st.sampled_from(ELECTORATE)),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ELECTORATE), st.lists(st.tuples(st.floats(0, 3), inputs), max_size=30),
       st.sampled_from(ELECTORATE), st.integers(1, 6), st.sampled_from(ELECTORATE))
def test_an_unproven_later_epoch_is_never_followed(me, schedule, voter, ahead, holder):
    """Wherever a member stands, an unproven denial of the epoch it claims or acts in,
    naming a later one, is reported and never followed: the member does not move to
    that epoch and holder, and its epoch moves on by one at most (a split settled)."""
    c = core(me)
    now = 0.0
    for dt, event in schedule:
        now += dt
        c.step(now, event)
    before = (c.role, c.epoch, c.coordinator)
    gone = c._dead  # who the view it last took holds gone
    later = c.epoch + ahead
    out = c.step(now + 0.1, Deny(voter, c.epoch, later, holder))
    if holder == me or c.ended or before[0] is Role.FOLLOWING:
        assert out == [] and (c.role, c.epoch, c.coordinator) == before
        return
    if before[0] is Role.ACTING and before[1] == 0 and holder in gone:
        # Not followed either: the original (acting in epoch 0) claims past a gone
        # holder (takeover_overtaken.py `claim_past`, test_takeover_overtaken.py); a
        # successor acting in a later epoch reports the word as any other (below).
        assert out[0] == Persist(later + 1, me) and c.role is Role.CLAIMING
        return
    assert out[-1] == Unproven(voter, later, holder)
    assert (c.epoch, c.coordinator) != (later, holder)
    assert c.epoch <= before[1] + 1
    if before[0] is Role.ACTING:
        assert out == [Unproven(voter, later, holder)]
        assert (c.role, c.epoch, c.coordinator) == before


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ELECTORATE), st.lists(st.tuples(st.floats(0, 3), inputs), max_size=30),
       st.sampled_from(ELECTORATE), st.integers(1, 6), st.sampled_from(ELECTORATE))
@example("b", [(0.0, Watch("DEAD", frozenset())), (0.0, Grant("a", 1)), (0.0, Grant("c", 1)),
               (0.0, Watch("ALIVE", frozenset({"d"})))], "a", 1, "d")  # successor, gone holder
def test_a_proven_later_epoch_is_followed(me, schedule, voter, ahead, holder):
    """A proven denial naming a later epoch is followed from wherever a member claims or
    acts, but by the original acting in epoch 0 told of a holder gone in its view, which
    claims past it (takeover_overtaken.py `claim_past`); a successor acting in a later
    epoch follows a proven holder, gone or not."""
    c = core(me)
    now = 0.0
    for dt, event in schedule:
        now += dt
        c.step(now, event)
    if c.ended or c.role is Role.FOLLOWING or holder == me:
        return
    later = c.epoch + ahead
    acting_past = c.role is Role.ACTING and c.epoch == 0 and holder in c._dead
    out = c.step(now + 0.1, Deny(voter, c.epoch, later, holder, proven=True))
    if acting_past:  # claimed past a gone holder (test_takeover_overtaken.py)
        assert out[0] == Persist(later + 1, me) and c.role is Role.CLAIMING
        return
    assert out == [Persist(later, holder)]
    assert (c.role, c.epoch, c.coordinator) == (Role.FOLLOWING, later, holder)


# ---- whole schedules with a lying elector -------------------------------------------------

LIAR = "x"


@st.composite
def schedules(draw):
    """(kind, member, state, dead, index, lie epoch, lie holder)."""
    kinds = st.sampled_from(["watch", "timer", "deliver", "drop", "dup", "lie", "lie"])
    return draw(st.lists(st.tuples(kinds, st.sampled_from(ELECTORATE),
                                   st.sampled_from(STATES),
                                   st.frozensets(st.sampled_from(PARTICIPANTS), max_size=2),
                                   st.integers(0, 50), st.integers(1, 5),
                                   st.sampled_from(ELECTORATE)), max_size=120))


@settings(max_examples=300, deadline=None)
@given(schedules())
@example([("watch", "b", "DEAD", frozenset(), 0, 1, "c"),  # b claims epoch 1 ...
          ("lie", "b", "", frozenset(), 0, 2, "c")])      # ... x: "epoch 3 is c's"
def test_a_lying_elector_makes_no_epoch_act_twice_and_nobody_follows_its_word(schedule):
    """x answers every claim with a denial naming an epoch and holder of its choosing,
    with no proof, and also sends such denials unasked. The honest members' denials
    carry a proof when their holder acted in that epoch (the shell's certificate)."""
    cores = {m: core(m) for m in ELECTORATE if m != LIAR}
    acted: dict[int, set[str]] = {0: {ORIGINAL}}
    received: dict[tuple[str, int], set[str]] = {}
    pool: list[tuple[str, str, object]] = []
    now = 0.0

    def proven(epoch: int, holder: str) -> bool:
        return epoch >= 1 and acted.get(epoch) == {holder}

    def run(member: str, actions) -> None:
        record_actions(member, actions, ELECTORATE, pool, acted, received)

    def step(member: str, event) -> None:
        c = cores[member]
        before = c.epoch
        run(member, c.step(now, event))
        assert c.epoch >= before
        if c.coordinator != member and c.epoch >= 1 and c.epoch > before \
                and isinstance(event, Deny):
            assert proven(c.epoch, c.coordinator), "followed a later epoch on a word"

    def receive(frm: str, to: str, msg) -> None:
        if to == LIAR:
            if isinstance(msg, SendClaim):
                pool.append((LIAR, frm, Deny(LIAR, msg.epoch, msg.epoch + 3, "d")))
            return
        c = cores[to]
        if isinstance(msg, SendClaim):
            if may_grant(c.epoch, c.coordinator, msg.epoch, frm):
                step(to, Adopted(msg.epoch, frm))
                pool.append((to, frm, Grant(to, msg.epoch)))
            else:
                pool.append((to, frm, Deny(to, msg.epoch, c.epoch, c.coordinator,
                                           proven(c.epoch, c.coordinator))))
        else:
            if isinstance(msg, Grant):
                received.setdefault((to, msg.epoch), set()).add(frm)
            step(to, msg)

    for kind, member, state, dead, index, lie_ahead, lie_holder in schedule:
        now += 1.0
        if member == LIAR:
            continue
        c = cores[member]
        if kind == "watch":
            step(member, Watch(state, dead))
        elif kind == "timer":
            timer = c.get_timer()
            if timer is not None:
                now = max(now, timer)
                step(member, Timer())
        elif kind == "lie":
            step(member, Deny(LIAR, c.epoch, c.epoch + lie_ahead, lie_holder))
        elif pool:
            frm, to, msg = pool[index % len(pool)]
            if kind != "dup":
                pool.pop(index % len(pool))
            if kind != "drop":
                receive(frm, to, msg)
        for epoch, who in acted.items():
            assert len(who) == 1, f"epoch {epoch} acted by {sorted(who)}"


def test_a_claim_lost_to_unproven_later_epochs_moves_on_one_epoch_at_its_timeout():
    """d and x hold epoch 3 for c, say, with nothing to show (c claimed it and died
    before it won, maybe); c is DEAD here and a gone: b cannot win epoch 1. At its claim
    timeout it claims epoch 2 (not 3 or 4 on their word), and so on until one is free."""
    b = core("b")
    b.step(0.0, Watch("DEAD", frozenset({"c"})))
    b.step(0.1, Deny("d", 1, 3, "c"))
    b.step(0.2, Deny("x", 1, 3, "c"))
    assert (b.role, b.epoch) == (Role.CLAIMING, 1)
    out = b.step(5.0, Timer())
    assert out[0] == Persist(2, "b") and (b.role, b.epoch, b.coordinator) == (
        Role.CLAIMING, 2, "b")
    assert {x.to for x in out if isinstance(x, SendClaim)} == {"a", "c", "d", "x"}


def test_a_claim_with_a_majority_still_possible_asks_again_at_its_timeout():
    """Only x holds a later epoch, unproven: c and d may still grant epoch 1."""
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    b.step(0.1, Deny("x", 1, 3, "c"))
    out = b.step(5.0, Timer())
    assert b.epoch == 1 and out == [SendClaim(d, 1) for d in ("a", "c", "d")]  # not x


def test_an_acting_successor_stops_telling_a_member_that_holds_a_later_epoch():
    """b acts in epoch 1 (restarted: its claim goes again to all); x denies naming
    epoch 3, unproven: b's claim no longer goes to x, so x's lie is reported once."""
    b = core("b", epoch=1, coordinator="b")
    first = b.step(0.0, Timer())
    assert {x.to for x in first} == {"a", "c", "d", "x"}
    assert b.step(0.1, Deny("x", 1, 3, "c")) == [Unproven("x", 3, "c")]
    for voter in ("a", "c"):
        b.step(0.2, Grant(voter, 1))
    assert b.step(10.0, Timer()) == [SendClaim("d", 1)]
    b.step(10.1, Grant("d", 1))
    assert b.step(20.0, Timer()) == [] and b.get_timer() is None
    assert (b.role, b.epoch, b.coordinator) == (Role.ACTING, 1, "b")
