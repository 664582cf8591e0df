"""Split claims (agent/core/workflow/takeover_split.py): two claimants of one epoch whose
votes split decide from the denials who goes next, by rank, without waiting for their
claim timeouts; and never two members acting in one epoch.

The rule alone (`resolve`), each CLAIMING transition it drives in the core (Deny, Grant,
the ask-again Timer), and two properties over arbitrary schedules: safety (at most one
member acts per epoch, with split claims forced into every schedule) and speed (with
every live member answering, split claimants settle with no claim timeout at all).
"""

from __future__ import annotations

from fedorch.core.workflow import takeover as tk
from fedorch.core.workflow import takeover_claiming
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
    Watch,
    may_grant,
)
from fedorch.core.workflow.takeover_split import WAIT, Split, resolve
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.workflow.test_takeover_transitions import (
    ELECTORATE,
    ORIGINAL,
    PARTICIPANTS,
    _at_most_one_acting,
    core,
)

FOUR = ("a", "b", "c", "d")  # a: the coordinator taken over from, gone

# ---- the rule alone ---------------------------------------------------------------------


def test_no_rival_no_verdict():
    assert resolve("b", FOUR, {"b"}, {}, {"a"}) == WAIT


def test_a_worse_ranked_rival_whose_voters_seem_a_majority_is_asked_not_followed():
    # c may have won (its proof would tell), or yielded to b with its voters' grants
    # still in flight: b neither follows it nor claims epoch 2; it asks c again.
    assert resolve("b", FOUR, {"b"}, {"c": "c", "d": "c", "a": "c"}, set()) \
        == Split(ask_again=frozenset({"c"}))
    # Once c granted b (it yielded), c can win nothing: b claims epoch 2.
    assert resolve("b", FOUR, {"b", "c"}, {"d": "c", "a": "c"}, set()) \
        == Split(next_epoch=True)


def test_a_better_ranked_rival_whose_voters_are_a_majority_is_followed():
    assert resolve("c", FOUR, {"c"}, {"a": "b", "d": "b"}, set()) == Split(follow="b")


def test_the_best_ranked_claimant_claims_the_next_epoch_when_its_epoch_is_lost():
    # c answered itself and d holds the epoch for c: b may get b and c, not a third.
    assert resolve("b", FOUR, {"b"}, {"c": "c", "d": "c"}, {"a"}) == Split(next_epoch=True)


def test_not_while_a_rival_may_hold_a_majority_in_answers_not_come():
    five = ("a", "b", "c", "x", "y")
    # x and y hold epoch 1 for c: b can get b and c at best, but c has not answered,
    # and with its own grant c holds three of five: it may have won. Wait.
    assert resolve("b", five, {"b"}, {"x": "c", "y": "c"}, {"a"}) == WAIT
    # c answered itself: still maybe won; asked again (it grants b if it yielded).
    assert resolve("b", five, {"b"}, {"x": "c", "y": "c", "c": "c"}, {"a"}) \
        == Split(ask_again=frozenset({"c"}))


def test_a_claimant_that_may_still_win_waits_and_asks_the_yielding_rival_again():
    # a not known gone: b may yet have a, b and c (c yields to b).
    assert resolve("b", FOUR, {"b"}, {"c": "c", "d": "c"}, set()) \
        == Split(ask_again=frozenset({"c"}))
    five = ("a", "b", "c", "x", "y")
    assert resolve("b", five, {"b", "y"}, {"x": "c", "c": "c"}, {"a"}) \
        == Split(ask_again=frozenset({"c"}))


def test_a_better_ranked_rival_that_answered_itself_is_followed_at_once():
    assert resolve("c", FOUR, {"c", "d"}, {"b": "b"}, {"a"}) == Split(follow="b")


def test_a_better_ranked_rival_known_by_hearsay_only_is_followed_when_we_cannot_win():
    five = ("a", "b", "c", "x", "y")
    assert resolve("c", five, {"c"}, {"x": "b"}, set()) == WAIT  # a, c and y may yet
    assert resolve("c", five, {"c"}, {"x": "b"}, {"a"}) == Split(follow="b")  # c, y only


def test_the_best_ranked_asks_the_rivals_that_answered_themselves_again():
    assert resolve("b", FOUR, {"b", "d"}, {"c": "c"}, {"a"}) == \
        Split(ask_again=frozenset({"c"}))


def test_a_rival_is_never_counted_gone():
    # b's view holds c DEAD, but c claims: a rival, never a silence. Without a, c can
    # hold c and d only: b claims epoch 2.
    assert resolve("b", FOUR, {"b"}, {"d": "c"}, {"a", "c"}) == Split(next_epoch=True)
    assert resolve("b", FOUR, {"b"}, {"d": "c"}, {"c"}) == WAIT  # a may grant b


# ---- the transitions in the core ---------------------------------------------------------

def claiming(me: str, dead: frozenset[str] = frozenset(), **kw) -> Takeover:
    c = core(me, **kw)
    c.step(0.0, Watch("DEAD", dead))
    assert c.role is Role.CLAIMING and c.epoch == 1
    return c


def test_the_lower_name_yields_at_once_to_a_rival_that_answered_itself():
    c = claiming("c", frozenset({"b"}))
    assert c.step(0.1, Grant("d", 1)) == []  # c, d: one short of three
    assert c.step(0.2, Deny("b", 1, 1, "b")) == [Persist(1, "b")]
    assert (c.role, c.epoch, c.coordinator) == (Role.FOLLOWING, 1, "b")
    assert may_grant(c.epoch, c.coordinator, 1, "b")  # its vote is b's now
    assert not may_grant(c.epoch, c.coordinator, 1, "c")  # and never its own again
    assert c.get_timer() is None  # follows b like any coordinator: watched anew


def test_the_higher_name_asks_again_and_wins_the_same_epoch():
    b = claiming("b")
    assert b.step(0.1, Grant("d", 1)) == []
    assert b.step(0.2, Deny("c", 1, 1, "c")) == []  # c claims 1 too: it will yield
    assert b.get_timer() == 0.2 + 0.2  # asked again soon, long before the claim timeout
    assert b.step(0.3, Timer()) == []  # not yet
    assert b.step(0.4, Timer()) == [SendClaim("c", 1)]
    assert b.step(0.5, Deny("c", 1, 1, "c")) == []  # not yielded yet: asked again later
    assert b.get_timer() == 0.8  # the pause doubled
    assert b.step(0.8, Timer()) == [SendClaim("c", 1)]
    assert b.step(0.9, Grant("c", 1)) == [Act(1), SendClaim("c", 1), SendClaim("d", 1)]  # b, c, d: epoch 1 won, no timeout


def test_the_higher_name_claims_the_next_epoch_at_once_when_its_epoch_is_lost():
    b = claiming("b")
    assert b.step(0.1, Deny("c", 1, 1, "c")) == []  # d may still grant b
    out = b.step(0.2, Deny("d", 1, 1, "c"))  # d holds 1 for c: b has b and c at best
    assert out[0] == Persist(2, "b") and b.role is Role.CLAIMING and b.epoch == 2
    assert [x.to for x in out if isinstance(x, SendClaim)] == ["a", "c", "d"]


def test_a_grant_that_was_the_last_answer_lacking_settles_a_split():
    # Five acceptors, a the gone coordinator: b hears c (itself) and x (for c); y
    # grants b; b asks c again (it answered itself, and yields to b), and wins with it.
    b = Takeover("b", "a", ["b", "c"], acceptors=["a", "b", "c", "x", "y"],
                 takeover_after_s=10.0, claim_timeout_s=5.0)
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Deny("c", 1, 1, "c")) == []
    assert b.step(0.2, Deny("x", 1, 1, "c")) == []
    assert b.step(0.3, Grant("y", 1)) == []
    assert b.step(b.get_timer(), Timer()) == [SendClaim("c", 1)]
    assert b.step(0.5, Grant("c", 1)) == [Act(1), SendClaim("c", 1), SendClaim("y", 1)]


def test_a_worse_ranked_rival_that_may_have_won_is_asked_until_it_proves_it():
    b = claiming("b")
    assert b.step(0.1, Deny("a", 1, 1, "c")) == []  # a answered after all: for c
    assert b.step(0.2, Deny("d", 1, 1, "c")) == []  # c may hold a, c, d: no epoch 2
    assert b.step(0.3, Deny("c", 1, 1, "c")) == []  # c itself: won, or yielding to b
    assert b.role is Role.CLAIMING and b.epoch == 1
    assert b.step(b.get_timer(), Timer()) == [SendClaim("c", 1)]
    assert b.step(0.6, Proven(1, "c")) == [Persist(1, "c")]  # its answer: it won
    assert (b.role, b.epoch, b.coordinator) == (Role.FOLLOWING, 1, "c")


def test_denials_of_another_epoch_or_from_ourselves_change_nothing():
    b = claiming("b")
    assert b.step(0.1, Deny("c", 0, 0, "a")) == []  # an answer to an older claim
    assert b.step(0.1, Deny("d", 1, 1, "b")) == []  # it holds it for us
    assert b.step(0.1, Deny("d", 1, 0, "a")) == []  # behind: asked again at the timeout
    assert b.role is Role.CLAIMING and b.get_timer() == 5.0


def test_an_acting_member_ignores_a_rivals_denial_of_its_epoch():
    b = core("b", epoch=1, coordinator="b")
    assert b.role is Role.ACTING
    assert b.step(0.1, Deny("c", 1, 1, "c")) == []
    assert b.role is Role.ACTING


# ---- safety over arbitrary schedules, split claims forced in -----------------------------

@st.composite
def split_schedules(draw):
    """Every participant first sees the coordinator DEAD and those before it dead too
    (so all claim epoch 1 at once), then anything happens."""
    kinds = st.sampled_from(["watch", "timer", "deliver", "deliver", "drop", "dup"])
    states = st.sampled_from(["ALIVE", "SUSPECT", "DEAD", "LEFT", ""])
    rest = draw(st.lists(st.tuples(kinds, st.sampled_from(ELECTORATE), states,
                                   st.frozensets(st.sampled_from(PARTICIPANTS), max_size=2),
                                   st.integers(0, 50)), max_size=120))
    first = [("watch", p, "DEAD", frozenset(q for q in PARTICIPANTS if q < p), 0)
             for p in draw(st.permutations(PARTICIPANTS))]
    return first + rest


@settings(max_examples=400, deadline=None)
@given(split_schedules())
def test_at_most_one_member_acts_in_an_epoch_when_claims_split(schedule):
    _at_most_one_acting(schedule, {m: core(m, rival_again_s=0.5) for m in ELECTORATE},
                        ELECTORATE)


# ---- split claims settle without a claim timeout ------------------------------------------

NEVER = 1e9  # the claim timeout, out of reach: only the rule can settle the split


def _settle(electorate: tuple[str, ...], participants: tuple[str, ...],
            claimants: list[str], order: list[int]) -> dict[int, set[str]]:
    """Every claimant claims epoch 1 at once; the gone coordinator (`ORIGINAL`) never
    answers, every other member answers every claim, in the order drawn; asks again
    fire when due. Returns who acted in which epoch once nothing is left to happen."""
    acceptors = electorate if electorate != (ORIGINAL, *participants) else ()
    cores = {m: Takeover(m, ORIGINAL, participants, acceptors=acceptors,
                         takeover_after_s=10.0, claim_timeout_s=NEVER)
             for m in electorate}
    pool: list[tuple[str, str, object]] = []
    acted: dict[int, set[str]] = {}
    now = 0.0

    def run(member: str, actions) -> None:
        for x in actions:
            if isinstance(x, SendClaim) and x.to != ORIGINAL:
                pool.append((member, x.to, x))
            elif isinstance(x, Act):
                acted.setdefault(x.epoch, set()).add(member)

    for k in claimants:  # each sees the others before it in line dead
        run(k, cores[k].step(now, Watch("DEAD", frozenset(participants) - {k})))
    turns = 0
    while turns < 500:
        turns += 1
        now += 0.01
        if pool:
            frm, to, msg = pool.pop(order[turns % len(order)] % len(pool))
            c = cores[to]
            if isinstance(msg, SendClaim):
                if may_grant(c.epoch, c.coordinator, msg.epoch, frm):
                    run(to, c.step(now, Adopted(msg.epoch, frm)))
                    pool.append((to, frm, Grant(to, msg.epoch)))
                elif c.role is Role.ACTING and c.epoch == msg.epoch:
                    # An acting member's denial carries its epoch certificate (the
                    # runtime's TakeoverAnswer.epoch_certificate): the claimant follows.
                    pool.append((to, frm, Proven(c.epoch, to)))
                else:
                    pool.append((to, frm, Deny(to, msg.epoch, c.epoch, c.coordinator)))
            else:
                run(to, c.step(now, msg))
            continue
        due = [(t, m) for m, c in cores.items()
               if (t := c.get_timer()) is not None and t < NEVER / 2]
        if not due:
            break
        t, member = min(due)
        now = max(now, t)
        run(member, cores[member].step(now, Timer()))
    for epoch, who in acted.items():
        assert len(who) == 1, f"epoch {epoch} acted by {sorted(who)}"
    return acted


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([
    (("a", "b", "c", "d"), ("b", "c", "d")),         # classic 2PC: participants + a
    (("a", "b", "c", "x"), ("b", "c")),              # Paxos Commit, an extra acceptor
    (("a", "b", "c", "x", "y"), ("b", "c")),         # two extra acceptors
    (("a", "b", "c", "d", "x"), ("b", "c", "d")),
]).flatmap(lambda e: st.tuples(
    st.just(e), st.lists(st.sampled_from(e[1]), min_size=2, max_size=3, unique=True),
    st.lists(st.integers(0, 50), min_size=1, max_size=40))))
def test_split_claimants_settle_without_a_claim_timeout(case):
    (electorate, participants), claimants, order = case
    acted = _settle(electorate, participants, claimants, order)
    assert acted, "no member acts: the split waited for a claim timeout"
    assert set().union(*acted.values()) <= set(claimants)
    # The epoch claimed, or a later one for each claimant that found its epoch lost
    # (each view here holds the other claimants dead, so some may not wait for them).
    assert max(acted) <= len(claimants)


def test_the_table_has_the_split_transitions():
    assert tk.TABLE[(Role.CLAIMING, Deny)] is takeover_claiming.deny
    assert tk.TABLE[(Role.CLAIMING, Grant)] is takeover_claiming.grant
    assert tk.TABLE[(Role.CLAIMING, Timer)] is takeover_claiming.claim_timer
