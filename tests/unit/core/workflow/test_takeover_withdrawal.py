"""Coordinator takeover core with a claimant outside the electorate that withdraws
(takeover_claiming.py, Withdrawn), over arbitrary schedules.

Its epoch goes back as it withdraws (it claimed e+1 and follows e again), so
test_takeover_transitions.py's "epochs never go back", stated for the electorate's
members, does not hold for it. What holds instead, whatever the schedule of views,
timers, claims delivered, lost, duplicated or denied (a member may deny an outsider's
claim it may grant, as agent/core/node/takeover_claims.py `_cannot_win` does):

- the members' epochs never go back;
- the outsider's epoch goes back only by a withdrawal (to the coordinator it claimed
  past, which denied it as itself), and only while no member's grant of any of its
  claims since it last followed another was counted;
- at most one domain acts in an epoch, and only on a majority of the electorate's
  grants of that epoch (so an epoch withdrawn is acted in by its claimant alone, and
  only once a majority granted it: after a member's late grant took it up again);
- a member that follows the outsider in an epoch, its grant of it delivered to the
  outsider, is not left behind: the outsider never holds a lower epoch than that one
  since (it claims or acts in it, or follows a rival of it or a later holder, whose
  win reaches the member), where a withdrawal made it follow the older coordinator
  again and nothing moved that member on;
- a member left following the outsider in an epoch it went back below (its grant lost
  on the way) is led out by asking: the outsider, asked (`Asked`, a member's placement
  question, itself lost, late or repeated in the schedule), sends it the withdrawn
  claim again, and once that claim and the member's grant of it are delivered, the
  outsider holds that epoch again (takeover_claiming.py, "A grant lost on the way").
"""

from __future__ import annotations

from fedorch.core.workflow.takeover import (
    Act,
    Adopted,
    Asked,
    Deny,
    Grant,
    Persist,
    Role,
    SendClaim,
    Takeover,
    Timer,
    Watch,
    may_grant,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.workflow.test_takeover_transitions import record_actions

ORIGINAL = "a"
ACCEPTORS = ("a", "b", "c", "x")  # the committed round's: "a" coordinates, "b" and "c" run
PARTICIPANTS = ("b", "c", "n")  # "n": a re-placement's new domain, outside the electorate
OUTSIDER = "n"
DOMAINS = (*ACCEPTORS, OUTSIDER)
STATES = ["ALIVE", "SUSPECT", "DEAD", "LEFT", ""]


@st.composite
def schedules(draw):
    # Weighted toward the outsider's claims: its view saying "a" gone and "b", "c"
    # dead makes it the successor (the members' views vary as they like).
    kinds = st.sampled_from(["watch", "timer", "deliver", "deliver", "deny", "deny",
                             "drop", "dup", "ask"])
    members = st.sampled_from([*DOMAINS, OUTSIDER, OUTSIDER])
    dead = st.sampled_from([frozenset(), frozenset({"b", "c"}), frozenset({"b", "c"}),
                            frozenset({"b"}), frozenset({"c"})])
    return draw(st.lists(st.tuples(kinds, members, st.sampled_from([*STATES, "DEAD"]),
                                   dead, st.integers(0, 50)), max_size=150))


def test_a_late_grant_after_a_withdrawal_takes_the_claim_up_again() -> None:
    """The case the property below covers, step by step: "a" denies n's claim as itself,
    n withdraws; "b"'s grant of the withdrawn epoch comes after: n claims it again with
    that grant counted, and a second denial from "a" withdraws nothing."""
    n = Takeover(OUTSIDER, ORIGINAL, PARTICIPANTS, acceptors=ACCEPTORS,
                 takeover_after_s=10.0, claim_timeout_s=5.0)
    out = n.step(0.0, Watch("DEAD", frozenset({"b", "c"})))
    assert out[0] == Persist(1, OUTSIDER) and n.role is Role.CLAIMING
    assert n.step(1.0, Deny("a", 1, 0, "a")) == [Persist(0, "a")]
    assert (n.role, n.epoch, n.coordinator) == (Role.FOLLOWING, 0, "a")
    out = n.step(2.0, Grant("b", 1))
    assert out[0] == Persist(1, OUTSIDER) and n.role is Role.CLAIMING
    assert SendClaim("a", 1) in out
    assert n.step(3.0, Deny("a", 1, 0, "a")) == []  # "b" holds it: not withdrawn
    assert n.step(4.0, Grant("c", 1)) == []  # 2 of 4: no majority yet
    assert n.step(5.0, Grant("a", 1))[0] == Act(1)  # 3 of 4


def test_a_member_whose_grant_was_lost_asks_and_the_claim_is_taken_up_again() -> None:
    """"b"'s grant of epoch 1 is lost; "a" denies n's claim as itself, n withdraws.
    "b", following n in epoch 1, asks n where the workflow stands: n sends it the
    withdrawn claim again, and "b"'s grant of it takes the claim up again."""
    n = Takeover(OUTSIDER, ORIGINAL, PARTICIPANTS, acceptors=ACCEPTORS,
                 takeover_after_s=10.0, claim_timeout_s=5.0)
    n.step(0.0, Watch("DEAD", frozenset({"b", "c"})))
    assert n.step(1.0, Deny("a", 1, 0, "a")) == [Persist(0, "a")]  # "b"'s grant lost
    assert n.step(2.0, Asked(OUTSIDER)) == []  # not a member
    assert n.step(2.0, Asked("b")) == [SendClaim("b", 1)]
    assert (n.role, n.epoch, n.coordinator) == (Role.FOLLOWING, 0, "a")  # only asked
    out = n.step(3.0, Grant("b", 1))
    assert out[0] == Persist(1, OUTSIDER) and n.role is Role.CLAIMING
    assert n.step(4.0, Asked("b")) == []  # claiming: nothing withdrawn to send


def test_a_member_asking_a_claimant_that_withdrew_nothing_gets_nothing() -> None:
    n = Takeover(OUTSIDER, ORIGINAL, PARTICIPANTS, acceptors=ACCEPTORS,
                 takeover_after_s=10.0, claim_timeout_s=5.0)
    assert n.step(0.0, Asked("b")) == []


@settings(max_examples=400, deadline=None)
@given(schedules())
def test_an_outsider_that_withdraws_never_makes_two_drivers_nor_strands_a_granter(
        schedule) -> None:
    cores = {m: Takeover(m, ORIGINAL, PARTICIPANTS, acceptors=ACCEPTORS,
                         takeover_after_s=10.0, claim_timeout_s=5.0) for m in DOMAINS}
    outsider = cores[OUTSIDER]
    acted: dict[int, set[str]] = {0: {ORIGINAL}}
    received: dict[tuple[str, int], set[str]] = {}  # (claimant, epoch) -> voters heard
    delivered: set[tuple[str, int]] = set()  # (member, epoch): its grant reached n
    pool: list[tuple[str, str, object]] = []
    now = 0.0

    def run(member: str, actions) -> None:
        record_actions(member, actions, ACCEPTORS, pool, acted, received)

    def step(member: str, event) -> None:
        c = cores[member]
        before = (c.role, c.epoch, c.coordinator, bool(c._grants & set(ACCEPTORS)),
                  getattr(c, "_member_granted", False))
        out = c.step(now, event)
        if c.epoch < before[1]:
            # Only the outsider, only by a withdrawal, only with no member's grant held.
            assert member == OUTSIDER and before[0] is Role.CLAIMING
            assert isinstance(event, Deny) and event.voter == event.holder == c.coordinator
            assert not before[3] and not before[4]
            assert out == [Persist(c.epoch, c.coordinator)] and c.role is Role.FOLLOWING
        run(member, out)

    def receive(frm: str, to: str, msg, deny: bool) -> None:
        c = cores[to]
        if isinstance(msg, SendClaim):
            if may_grant(c.epoch, c.coordinator, msg.epoch, frm) \
                    and not (deny and frm == OUTSIDER):
                step(to, Adopted(msg.epoch, frm))
                pool.append((to, frm, Grant(to, msg.epoch)))
            else:  # may not grant; or an outsider's claim it sees no majority for
                pool.append((to, frm, Deny(to, msg.epoch, c.epoch, c.coordinator)))
            return
        if isinstance(msg, Asked):
            step(to, msg)
            return
        if isinstance(msg, Grant):
            received.setdefault((to, msg.epoch), set()).add(frm)
            if to == OUTSIDER:
                delivered.add((frm, msg.epoch))
        step(to, msg)

    # n's view says "a" DEAD, "b" and "c" too: it claims epoch 1 at once.
    step(OUTSIDER, Watch("DEAD", frozenset({"b", "c"})))
    for kind, member, state, dead, index in schedule:
        now += 1.0
        c = cores[member]
        if kind == "watch":
            step(member, Watch(state, dead))
        elif kind == "ask":  # a member's placement question to the outsider, on its way
            if member != OUTSIDER:
                pool.append((member, OUTSIDER, Asked(member)))
        elif kind == "timer":
            timer = c.get_timer()
            if timer is not None:
                now = max(now, timer)
                step(member, Timer())
        elif pool:
            frm, to, msg = pool[index % len(pool)]
            if kind != "dup":
                pool.pop(index % len(pool))
            if kind != "drop":
                receive(frm, to, msg, deny=kind == "deny")
        for epoch, who in acted.items():
            assert len(who) == 1, f"epoch {epoch} acted by {sorted(who)}"
        for m in ACCEPTORS:
            mc = cores[m]
            if mc.role is Role.FOLLOWING and mc.coordinator == OUTSIDER \
                    and (m, mc.epoch) in delivered:
                # Not left behind: n never goes back below it (it claims or acts in
                # it, or follows a rival of it or a later holder, whose win reaches m).
                assert outsider.epoch >= mc.epoch, \
                    (m, mc.epoch, outsider.role, outsider.epoch, outsider.coordinator)
    # Led out by asking: each member left following n in an epoch n went back below
    # asks it, and n's answer and the member's grant of it are delivered (nothing else).
    for m in ACCEPTORS:
        mc = cores[m]
        if mc.role is not Role.FOLLOWING or mc.coordinator != OUTSIDER \
                or outsider.epoch >= mc.epoch:
            continue
        if outsider._withdrawn is not None and outsider._withdrawn < mc.epoch:
            # Not built yet: a claim after a withdrawal of a lower epoch than the one
            # withdrawn, withdrawn in turn (takeover_claiming.py, the header's end).
            continue
        now += 1.0
        pool.clear()
        step(OUTSIDER, Asked(m))
        while pool:
            frm, to, msg = pool.pop(0)
            if {frm, to} == {m, OUTSIDER}:
                receive(frm, to, msg, deny=False)
        assert outsider.epoch >= mc.epoch, \
            (m, mc.epoch, outsider.role, outsider.epoch, outsider.coordinator)
