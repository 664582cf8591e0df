"""Loss grace core: every standing x input, and the rule over arbitrary schedules.

A DEAD verdict is acted on (`Acted`) only once it stood for the grace with no sign of
life from the accused; a refutation within the grace withdraws it with nothing acted
on; LEFT is acted on at once. Hypothesis drives one core through any interleaving of
verdicts, refutations, leaves, signs of life, reaps and timers, and a model of the rule
checks every output against what happened to the member since its verdict.
"""

from __future__ import annotations

import pytest
from fedorch.core.membership.loss_grace import (
    CHECK_AT,
    TABLE,
    Acted,
    Alive,
    Check,
    Forget,
    Heard,
    HeardDuring,
    Held,
    Left,
    LossGrace,
    Standing,
    Timer,
    Verdict,
    Withdrawn,
)
from hypothesis import given, settings
from hypothesis import strategies as st

GRACE = 4.0
NAMES = ("a", "b")


def at(standing: Standing, name: str = "a", incarnation: int = 5) -> LossGrace:
    """A core holding `name` in `standing` at `incarnation`, reached through inputs."""
    core = LossGrace(GRACE)
    if standing is Standing.NONE:
        return core
    if standing is Standing.LOST:
        core.step(0.0, Verdict(name, incarnation))
        assert [type(x) for x in core.step(GRACE, Timer())] == [Acted]
    else:
        core.step(0.0, Verdict(name, incarnation))
        if standing is Standing.HEARD:
            core.step(0.5, Heard(name))
    assert core.standing(name) is standing
    return core


# ---- single transitions -------------------------------------------------------------

def test_a_verdict_is_held_then_acted_on_once_the_grace_passed():
    core = LossGrace(GRACE)
    assert core.step(10.0, Verdict("a", 5)) == [Held("a", 5, 10.0 + GRACE)]
    assert core.lost("a") is None and core.holds("a")
    assert core.get_timer() == 10.0 + CHECK_AT * GRACE
    assert core.step(10.0 + CHECK_AT * GRACE, Timer()) == [Check("a")]
    assert core.get_timer() == 10.0 + GRACE
    assert core.step(10.0 + GRACE - 0.01, Timer()) == []
    assert core.step(10.0 + GRACE, Timer()) == [Acted("a", 5, "DEAD")]
    assert core.lost("a") == "DEAD" and core.losses() == {"a": "DEAD"}
    assert core.get_timer() is None
    assert core.step(20.0, Timer()) == []  # acted on once


def test_a_refutation_within_the_grace_withdraws_the_verdict():
    core = LossGrace(GRACE)
    core.step(0.0, Verdict("a", 5))
    assert core.step(1.5, Alive("a", 5)) == []  # the same incarnation: no refutation
    assert core.step(2.0, Alive("a", 6)) == [Withdrawn("a", 5, 2.0, False)]
    assert core.standing("a") is Standing.NONE and core.get_timer() is None
    assert core.step(100.0, Timer()) == [] and core.losses() == {}
    assert core.stats["withdrawn"] == 1


def test_a_sign_of_life_starts_the_grace_again():
    core = LossGrace(GRACE)
    core.step(0.0, Verdict("a", 5))
    assert core.heard(3.0, "a") == [HeardDuring("a", 5)]
    assert core.heard(3.5, "a") == []  # said once per verdict
    assert core.get_timer() == 3.5 + GRACE  # no check: it is talking to us
    assert core.step(GRACE + 1.0, Timer()) == []
    assert core.step(3.5 + GRACE, Timer()) == [Acted("a", 5, "DEAD")]


def test_a_leave_is_acted_on_at_once_and_not_twice():
    core = LossGrace(GRACE)
    assert core.step(0.0, Left("a", 7)) == [Acted("a", 7, "LEFT")]
    assert core.lost("a") == "LEFT"
    assert core.step(0.1, Left("a", 8)) == []
    core.step(0.0, Verdict("b", 1))
    assert core.step(0.2, Left("b", 2)) == [Acted("b", 2, "LEFT")]
    assert core.get_timer() is None


def test_back_after_its_loss_the_member_needs_a_new_verdict_and_grace():
    core = at(Standing.LOST)
    assert core.step(10.0, Alive("a", 6)) == []  # back: nothing to withdraw
    assert core.lost("a") is None
    assert core.step(11.0, Verdict("a", 6)) == [Held("a", 6, 11.0 + GRACE)]
    assert core.lost("a") is None


def test_a_grace_of_zero_acts_at_the_verdict():
    core = LossGrace(0.0)
    core.step(1.0, Verdict("a", 1))
    assert core.get_timer() == 1.0
    assert core.step(1.0, Timer()) == [Acted("a", 1, "DEAD")]


def test_a_negative_grace_is_refused():
    with pytest.raises(ValueError):
        LossGrace(-1.0)


# ---- every standing x input ----------------------------------------------------------

INPUTS = {
    "verdict-older": Verdict("a", 4), "verdict-same": Verdict("a", 5),
    "verdict-newer": Verdict("a", 6), "alive-same": Alive("a", 5),
    "alive-newer": Alive("a", 6), "left": Left("a", 6), "heard": Heard("a"),
    "forget": Forget("a"),
}
# standing -> input -> (standing after, output types)
EXPECTED = {
    Standing.NONE: {
        "verdict-older": (Standing.HELD, [Held]), "verdict-same": (Standing.HELD, [Held]),
        "verdict-newer": (Standing.HELD, [Held]), "alive-same": (Standing.NONE, []),
        "alive-newer": (Standing.NONE, []), "left": (Standing.LOST, [Acted]),
        "heard": (Standing.NONE, []), "forget": (Standing.NONE, []),
    },
    Standing.HELD: {
        "verdict-older": (Standing.HELD, []), "verdict-same": (Standing.HELD, []),
        "verdict-newer": (Standing.HELD, [Held]), "alive-same": (Standing.HELD, []),
        "alive-newer": (Standing.NONE, [Withdrawn]), "left": (Standing.LOST, [Acted]),
        "heard": (Standing.HEARD, [HeardDuring]), "forget": (Standing.NONE, []),
    },
    Standing.HEARD: {
        "verdict-older": (Standing.HEARD, []), "verdict-same": (Standing.HEARD, []),
        "verdict-newer": (Standing.HELD, [Held]), "alive-same": (Standing.HEARD, []),
        "alive-newer": (Standing.NONE, [Withdrawn]), "left": (Standing.LOST, [Acted]),
        "heard": (Standing.HEARD, []), "forget": (Standing.NONE, []),
    },
    Standing.LOST: {
        "verdict-older": (Standing.LOST, []), "verdict-same": (Standing.LOST, []),
        "verdict-newer": (Standing.HELD, [Held]), "alive-same": (Standing.LOST, []),
        "alive-newer": (Standing.NONE, []), "left": (Standing.LOST, []),
        "heard": (Standing.LOST, []), "forget": (Standing.NONE, []),
    },
}


@pytest.mark.parametrize("standing", list(Standing))
@pytest.mark.parametrize("name", list(INPUTS))
def test_every_standing_and_input(standing: Standing, name: str) -> None:
    core = at(standing)
    out = core.step(GRACE + 1.0 if standing is Standing.LOST else 1.0, INPUTS[name])
    after, kinds = EXPECTED[standing][name]
    assert core.standing("a") is after
    assert [type(x) for x in out] == kinds
    # A pair that changes something is in the table; the others are not.
    if out or after is not standing:
        assert (standing, type(INPUTS[name])) in TABLE


# ---- any schedule --------------------------------------------------------------------

EVENTS = st.one_of(
    st.tuples(st.just("verdict"), st.sampled_from(NAMES), st.integers(0, 4)),
    st.tuples(st.just("alive"), st.sampled_from(NAMES), st.integers(0, 4)),
    st.tuples(st.just("left"), st.sampled_from(NAMES), st.integers(0, 4)),
    st.tuples(st.just("heard"), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("forget"), st.sampled_from(NAMES), st.just(0)),
    st.tuples(st.just("timer"), st.just(""), st.just(0)),
)


class Model:
    """What happened to each member since its latest verdict, as SWIM fed it."""

    def __init__(self) -> None:
        self.incarnation: dict[str, int] = {}
        self.verdict_at: dict[str, float] = {}
        self.heard_at: dict[str, float] = {}
        self.acted: set[str] = set()


def _event(kind: str, name: str, inc: int):
    if kind == "timer":
        return Timer()
    if kind in ("heard", "forget"):
        return {"heard": Heard, "forget": Forget}[kind](name)
    return {"verdict": Verdict, "alive": Alive, "left": Left}[kind](name, inc)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EVENTS, st.floats(0.0, 3.0)), max_size=60),
       st.sampled_from([0.0, 1.0, GRACE]))
def test_a_loss_is_acted_on_only_after_a_silent_grace_and_only_once(schedule, grace):
    core = LossGrace(grace)
    model = Model()
    now = 0.0
    for (kind, name, inc), dt in schedule:
        now += dt
        timer = core.get_timer()
        if kind == "timer" and timer is not None:
            now = max(now, timer)  # the shell wakes at the timer, or later
        event = _event(kind, name, inc)
        held_before = {n: core.standing(n) for n in NAMES}
        out = core.step(now, event)
        for x in out:
            if isinstance(x, Held):
                model.incarnation[x.name] = x.incarnation
                model.verdict_at[x.name] = now
                model.heard_at[x.name] = now
                model.acted.discard(x.name)
                assert x.until == now + grace
            elif isinstance(x, Acted):
                assert x.name not in model.acted, "a loss acted on twice"
                model.acted.add(x.name)
                if x.state == "DEAD":
                    # It stood for the grace since the verdict and the last sign of life.
                    assert isinstance(event, Timer)
                    assert now >= model.verdict_at[x.name] + grace
                    assert now >= model.heard_at[x.name] + grace
                else:
                    assert isinstance(event, Left)
            elif isinstance(x, Withdrawn):
                assert isinstance(event, Alive) and event.incarnation > x.incarnation
                assert held_before[x.name] in (Standing.HELD, Standing.HEARD)
                assert x.name not in model.acted
            elif isinstance(x, Check):
                assert held_before[x.name] is Standing.HELD
        if isinstance(event, Heard) and core.standing(name) in (Standing.HELD, Standing.HEARD):
            model.heard_at[name] = now
        for n in NAMES:  # back (ALIVE at a newer incarnation) or forgotten: a new life
            if core.standing(n) is Standing.NONE:
                model.acted.discard(n)
        # What the workflows read agrees with the standings.
        for n in NAMES:
            s = core.standing(n)
            assert (core.lost(n) is not None) == (s is Standing.LOST)
            assert core.holds(n) == (s in (Standing.HELD, Standing.HEARD))
            if s is Standing.LOST and event.__class__ in (Alive, Forget) and event.name == n:
                assert isinstance(event, Alive) and event.incarnation <= core.incarnation(n), \
                    "still lost after it came back or was forgotten"
        timer = core.get_timer()
        if timer is not None:
            assert any(core.holds(n) for n in NAMES)
            # Nothing held is overdue once a timer turn has run.
            if isinstance(event, Timer):
                assert timer > now
