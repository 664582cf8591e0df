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

The outsider also restarts, anywhere in a schedule ("restart"): rebuilt, as the Node
rebuilds it (agent/core/node/takeover.py, `core`), from what it wrote: the epoch and
holder of its last `Persist`, the epoch withdrawn as it stood then (`withdrawn`), and
the members' grants of its latest claimed epoch delivered to it (`claim_grants`);
acting only in an epoch it acted in. Everything above still holds.
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
                             "drop", "dup", "ask", "restart"])
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


def withdrawn_past_a_split() -> Takeover:
    """n claims epoch 1; "b" and "c" deny it naming a later epoch they cannot prove, so
    at the claim timeout it claims epoch 2; "a" denies that as itself, in epoch 0, and
    n withdraws epoch 2 (it follows "a" in 0 again)."""
    n = Takeover(OUTSIDER, ORIGINAL, PARTICIPANTS, acceptors=ACCEPTORS,
                 takeover_after_s=10.0, claim_timeout_s=5.0)
    n.step(0.0, Watch("DEAD", frozenset({"b", "c"})))
    n.step(1.0, Deny("b", 1, 2, "x"))
    n.step(2.0, Deny("c", 1, 2, "x"))
    assert n.step(5.0, Timer())[0] == Persist(2, OUTSIDER)
    assert n.step(6.0, Deny("a", 2, 0, "a")) == [Persist(0, "a")]
    assert (n.role, n.epoch, n.withdrawn) == (Role.FOLLOWING, 0, 2)
    return n


def test_the_next_claim_after_a_withdrawal_is_never_below_the_epoch_withdrawn() -> None:
    """Before, the next claim was of the epoch followed + 1: epoch 1, below the 2 it
    withdrew, which a member may hold for it (and deny 1 naming n itself, for ever)."""
    n = withdrawn_past_a_split()
    out = n.step(17.0, Watch("DEAD", frozenset({"b", "c"})))  # quiet over
    assert out[0] == Persist(2, OUTSIDER) and n.role is Role.CLAIMING
    assert n.withdrawn is None  # claimed again: no longer withdrawn


def restored(epoch: int, holder: str, **kept) -> Takeover:
    return Takeover(OUTSIDER, ORIGINAL, PARTICIPANTS, acceptors=ACCEPTORS, epoch=epoch,
                    coordinator=holder, takeover_after_s=10.0, claim_timeout_s=5.0,
                    **kept)


def test_a_withdrawal_read_back_on_restore_is_quiet_and_taken_up_again() -> None:
    """Restarted after withdrawing epoch 2 (its tables: epoch 0 of "a", 2 withdrawn):
    no claim for `takeover_after_s` from its first look, whatever the view; then one of
    epoch 2; and a member's grant of 2 meanwhile takes it up again, counted."""
    n = restored(0, ORIGINAL, withdrawn=2)
    assert n.step(100.0, Watch("DEAD", frozenset({"b", "c"}))) == []
    assert n.get_timer() == 110.0
    assert n.step(110.0, Timer())[0] == Persist(2, OUTSIDER)
    n = restored(0, ORIGINAL, withdrawn=2)
    n.step(100.0, Watch("ALIVE", frozenset()))
    out = n.step(101.0, Grant("b", 2))
    assert out[0] == Persist(2, OUTSIDER) and n._grants == {OUTSIDER, "b"}
    assert n.step(102.0, Deny("a", 2, 0, "a")) == []  # "b" holds it: not withdrawn


def test_a_restored_claim_counts_the_members_grants_it_kept() -> None:
    """Restarted claiming epoch 1 with "b"'s grant of it kept: counted at once, so the
    coordinator's denial withdraws nothing, and two more grants win it."""
    n = restored(1, OUTSIDER, claiming=True, granted_by=["b"])
    assert n._grants == {OUTSIDER, "b"}
    assert n.step(0.0, Deny("a", 1, 0, "a")) == []
    assert n.role is Role.CLAIMING
    assert n.step(1.0, Grant("c", 1)) == []
    assert n.step(2.0, Grant("a", 1))[0] == Act(1)
    # Kept a majority's grants (restarted before the write of its act): it acts at its
    # first timer, whoever of them is back meanwhile.
    n = restored(1, OUTSIDER, claiming=True, granted_by=["a", "b", "c"])
    assert n.get_timer() == float("-inf") and n.step(0.0, Timer())[0] == Act(1)


@settings(max_examples=400, deadline=None)
@given(schedules())
def test_an_outsider_that_withdraws_never_makes_two_drivers_nor_strands_a_granter(
        schedule) -> None:
    cores = {m: Takeover(m, ORIGINAL, PARTICIPANTS, acceptors=ACCEPTORS,
                         takeover_after_s=10.0, claim_timeout_s=5.0) for m in DOMAINS}
    # The outsider's tables: (epoch, holder) held, the epoch withdrawn, and the
    # members' grants kept of its latest claimed epoch.
    disk: dict[str, object] = {"held": (0, ORIGINAL), "withdrawn": None,
                               "grants": (0, frozenset())}
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
        persisted = [x for x in out if isinstance(x, Persist)]
        if member == OUTSIDER and persisted:  # withdrawn, written with the epoch held
            disk["held"] = (persisted[-1].epoch, persisted[-1].coordinator)
            disk["withdrawn"] = c.withdrawn
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
                kept_epoch, kept = disk["grants"]
                if msg.epoch > kept_epoch:
                    disk["grants"] = (msg.epoch, frozenset({frm}))
                elif msg.epoch == kept_epoch:
                    disk["grants"] = (kept_epoch, kept | {frm})
        step(to, msg)

    def restart() -> None:
        epoch, holder = disk["held"]
        claiming = holder == OUTSIDER and OUTSIDER not in acted.get(epoch, set())
        kept_epoch, kept = disk["grants"]
        cores[OUTSIDER] = Takeover(
            OUTSIDER, ORIGINAL, PARTICIPANTS, acceptors=ACCEPTORS, epoch=epoch,
            coordinator=holder, takeover_after_s=10.0, claim_timeout_s=5.0,
            claiming=claiming, withdrawn=disk["withdrawn"],
            granted_by=kept if claiming and kept_epoch == epoch else ())

    # n's view says "a" DEAD, "b" and "c" too: it claims epoch 1 at once.
    step(OUTSIDER, Watch("DEAD", frozenset({"b", "c"})))
    for kind, member, state, dead, index in schedule:
        now += 1.0
        c = cores[member]
        if kind == "restart":
            restart()
        elif kind == "watch":
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
                outsider = cores[OUTSIDER]
                assert outsider.epoch >= mc.epoch, \
                    (m, mc.epoch, outsider.role, outsider.epoch, outsider.coordinator)
    # Led out by asking: each member left following n in an epoch n went back below
    # asks it, and n's answer and the member's grant of it are delivered (nothing else).
    outsider = cores[OUTSIDER]
    for m in ACCEPTORS:
        mc = cores[m]
        if mc.role is not Role.FOLLOWING or mc.coordinator != OUTSIDER \
                or outsider.epoch >= mc.epoch:
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
