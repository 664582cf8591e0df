"""Coordinator takeover core: a proven winner (`Proven`, a verified epoch certificate)
is followed at once, by a rival claimant of the same epoch too.

Before, a claimant of an epoch that another had already won found out only by denials
at its claim timeout, then, by name, followed the winner or claimed the next epoch
(overthrowing a successor already acting); a domain following a claimant that lost
kept asking it. Safety is the same argument as for claims: a certificate holds a
majority's grants of (epoch, winner), every other majority shares a member with it, so
no other claimant of that epoch can win; the property test below drives every member
through arbitrary schedules in which certificates exist only for members that acted.
"""

from __future__ import annotations

from fedorch.core.workflow import takeover as tk
from fedorch.core.workflow.takeover import (
    Act,
    Adopted,
    Deny,
    Grant,
    Persist,
    Proven,
    Role,
    SendClaim,
    Timer,
    Watch,
    may_grant,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.workflow.test_takeover_transitions import (
    ELECTORATE,
    ORIGINAL,
    PARTICIPANTS,
    STATES,
    core,
)


def test_a_claimant_of_the_same_epoch_follows_the_proven_winner_at_once():
    # b claimed epoch 1 (it saw c dead, say); c won epoch 1 meanwhile. Before: b waited
    # its claim timeout, then, the lower name, claimed epoch 2 against an acting c.
    # (Had a denial from d naming c come first, b would have claimed epoch 2 at once:
    # it takes a for dead, and without a no majority is c's; see test_takeover_split.)
    b = core("b")
    b.step(0.0, Watch("DEAD", frozenset({"c"})))
    assert b.role is Role.CLAIMING and b.epoch == 1
    assert b.step(1.0, Proven(1, "c")) == [Persist(1, "c")]
    assert (b.role, b.epoch, b.coordinator) == (Role.FOLLOWING, 1, "c")
    assert b.get_timer() is None  # no claim, no claim timeout: nothing left to send
    assert b.step(6.0, Timer()) == []
    assert b.step(6.5, Grant("d", 1)) == []  # a late grant of the dropped claim: nothing


def test_a_follower_of_a_claimant_that_lost_follows_the_winner():
    d = core("d")
    assert d.step(0.0, Adopted(1, "c")) == [Persist(1, "c")]  # granted c's claim
    assert d.step(1.0, Proven(1, "b")) == [Persist(1, "b")]  # b won epoch 1
    assert (d.role, d.epoch, d.coordinator) == (Role.FOLLOWING, 1, "b")
    assert not may_grant(d.epoch, d.coordinator, 1, "c")  # the loser is refused now


def test_a_follower_of_the_original_follows_a_proven_successor():
    d = core("d")
    assert d.step(0.0, Proven(2, "c")) == [Persist(2, "c")]
    assert (d.role, d.epoch, d.coordinator) == (Role.FOLLOWING, 2, "c")


def test_an_older_or_own_certificate_changes_nothing():
    b = core("b")
    b.step(0.0, Adopted(2, "c"))
    assert b.step(1.0, Proven(1, "d")) == []  # an epoch below the one held
    assert b.step(1.0, Proven(2, "c")) == []  # the one followed already
    c = core("c")
    c.step(0.0, Watch("DEAD", frozenset({"b"})))
    assert c.step(0.1, Proven(1, "c")) == []  # our own


def test_an_acting_successor_follows_only_a_later_proven_epoch():
    b = core("b")
    b.step(0.0, Watch("DEAD"))
    assert b.step(0.1, Grant("c", 1)) == []  # 2 of 4: no majority yet
    assert b.step(0.2, Grant("d", 1)) == [Act(1), SendClaim("c", 1), SendClaim("d", 1)]
    assert b.role is Role.ACTING and b.epoch == 1
    assert b.step(1.0, Proven(1, "c")) == []  # cannot exist: ours is agreed
    assert b.role is Role.ACTING
    assert b.step(2.0, Proven(2, "c")) == [Persist(2, "c")]
    assert (b.role, b.coordinator) == (Role.FOLLOWING, "c")


def test_proven_is_in_the_table_for_every_role():
    for role in Role:
        assert (role, Proven) in tk.TABLE


# ---- many members, one network, certificates of those that acted ------------------------

@st.composite
def schedules(draw):
    kinds = st.sampled_from(["watch", "timer", "deliver", "drop", "dup", "prove"])
    return draw(st.lists(st.tuples(kinds, st.sampled_from(ELECTORATE),
                                   st.sampled_from(STATES),
                                   st.frozensets(st.sampled_from(PARTICIPANTS), max_size=2),
                                   st.integers(0, 50)), max_size=120))


@settings(max_examples=400, deadline=None)
@given(schedules())
def test_at_most_one_member_acts_in_an_epoch_with_certificates(schedule):
    """As the transition tests' harness (runtime's grant rule on claims, views that
    disagree, claims and answers lost, duplicated, reordered), plus certificates: an
    acting member's claims and denials carry its proof, and "prove" hands any member a
    certificate of an (epoch, member) that did act, the only ones that exist. At most
    one member acts in an epoch, with a majority's grants; epochs never go back."""
    cores = {m: core(m) for m in ELECTORATE}
    acted: dict[int, set[str]] = {0: {ORIGINAL}}
    received: dict[tuple[str, int], set[str]] = {}
    pool: list[tuple[str, str, object]] = []
    now = 0.0

    def certified(member: str) -> Proven | None:
        c = cores[member]
        if c.role is Role.ACTING and member in acted.get(c.epoch, set()) and c.epoch >= 1:
            return Proven(c.epoch, member)
        return None

    def run(member: str, actions) -> None:
        for x in actions:
            if isinstance(x, SendClaim):
                pool.append((member, x.to, (x, certified(member))))
            elif isinstance(x, Act):
                acted.setdefault(x.epoch, set()).add(member)
                voters = received.get((member, x.epoch), set()) | {member}
                assert len(voters & set(ELECTORATE)) >= tk.majority(ELECTORATE)

    def step(member: str, event) -> None:
        c = cores[member]
        before = c.epoch
        run(member, c.step(now, event))
        assert c.epoch >= before

    def receive(frm: str, to: str, msg) -> None:
        c = cores[to]
        if isinstance(msg, tuple):  # a claim, with its sender's proof if it acts
            claim, proof = msg
            if proof is not None and not may_grant(c.epoch, c.coordinator, claim.epoch, frm):
                step(to, proof)  # the shell verifies it, then asks may_grant again
            if may_grant(c.epoch, c.coordinator, claim.epoch, frm):
                step(to, Adopted(claim.epoch, frm))
                pool.append((to, frm, Grant(to, claim.epoch)))
            else:
                deny = Deny(to, claim.epoch, c.epoch, c.coordinator)
                pool.append((to, frm, (deny, certified(to))))
        elif isinstance(msg, Grant):
            received.setdefault((to, msg.epoch), set()).add(frm)
            step(to, msg)
        else:  # a denial, with the answerer's proof if it acts in the epoch it holds
            deny, proof = msg
            if proof is not None and deny.holder == frm:
                step(to, proof)
            else:
                step(to, deny)

    for kind, member, state, dead, index in schedule:
        now += 1.0
        c = cores[member]
        if kind == "watch":
            step(member, Watch(state, dead))
        elif kind == "timer":
            timer = c.get_timer()
            if timer is not None:
                now = max(now, timer)
                step(member, Timer())
        elif kind == "prove":
            proven = [(e, w) for e, who in acted.items() if e >= 1 for w in who]
            if proven:
                step(member, Proven(*proven[index % len(proven)]))
        elif pool:
            frm, to, msg = pool[index % len(pool)]
            if kind != "dup":
                pool.pop(index % len(pool))
            if kind != "drop":
                receive(frm, to, msg)
        for epoch, who in acted.items():
            assert len(who) == 1, f"epoch {epoch} acted by {sorted(who)}"
