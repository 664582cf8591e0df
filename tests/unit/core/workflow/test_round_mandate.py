"""The round mandate (agent/core/workflow/round_mandate.py): a successor runs a
re-placement round only on a fresh majority of its electorate; a later epoch held
somewhere ends the wait; with neither by the bound, no round runs."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.round_mandate import (
    Overtaken,
    Regranted,
    RoundMandate,
    Timer,
    Verdict,
)

ELECTORATE = ("a", "b", "c", "co", "x")


def test_a_fresh_majority_own_grant_included_places():
    m = RoundMandate("a", 1, ELECTORATE, now=0.0, bound_s=4.0)
    assert m.verdict is Verdict.ASKING and m.get_timer() == 4.0
    assert m.step(0.1, Regranted("b")) is Verdict.ASKING  # 2 of 5
    assert m.step(0.2, Regranted("b")) is Verdict.ASKING  # the same voter twice: 2
    assert m.step(0.3, Regranted("x")) is Verdict.PLACE   # 3 of 5
    assert m.get_timer() is None and m.fresh == {"a", "b", "x"}


def test_no_fresh_majority_by_the_bound_places_nothing_and_says_why():
    m = RoundMandate("a", 1, ("a", "b", "co"), now=10.0, bound_s=4.0)
    assert m.step(13.9, Timer()) is Verdict.ASKING  # not yet due
    assert m.step(14.0, Timer()) is Verdict.NO_MAJORITY
    # A grant after the verdict changes nothing: the round was not run.
    assert m.step(14.1, Regranted("b")) is Verdict.NO_MAJORITY
    why = m.why_not()
    assert "electorate (a, b, co)" in why and "epoch 1" in why
    assert "granted: a;" in why and "2 needed" in why


def test_a_later_epoch_held_anywhere_ends_the_wait_before_any_majority():
    m = RoundMandate("a", 1, ELECTORATE, now=0.0, bound_s=4.0)
    m.step(0.1, Regranted("c"))
    assert m.step(0.2, Overtaken(2, "b", proven=True)) is Verdict.OVERTAKEN
    assert m.later == (2, "b")
    assert m.step(0.3, Regranted("x")) is Verdict.OVERTAKEN  # final


def test_a_later_epoch_without_proof_ends_nothing_and_is_named_in_why_not():
    """A member's word that it holds a later epoch: no grant, no end of the wait."""
    m = RoundMandate("co", 0, ("co", "a", "b", "x", "y"), now=0.0, bound_s=4.0)
    assert m.step(0.1, Overtaken(1, "a")) is Verdict.ASKING
    assert m.later is None and m.unproven == {(1, "a")}
    m.step(0.2, Regranted("b"))
    assert m.step(4.0, Timer()) is Verdict.NO_MAJORITY
    assert "epoch 1 claimed for a without proof" in m.why_not()


def test_a_later_epoch_without_proof_does_not_stop_a_round_the_others_allow():
    """A lying member cannot keep the original from placing when enough others grant."""
    m = RoundMandate("co", 0, ("co", "a", "b", "x", "y"), now=0.0, bound_s=4.0)
    m.step(0.1, Overtaken(1, "x"))
    m.step(0.2, Regranted("a"))
    assert m.step(0.3, Regranted("b")) is Verdict.PLACE


@pytest.mark.parametrize("event", [Overtaken(1, "b", proven=True),
                                   Overtaken(0, "co", proven=True),
                                   Overtaken(3, "a", proven=True)])
def test_an_answer_of_our_epoch_or_below_or_our_own_is_no_later_epoch(event):
    m = RoundMandate("a", 1, ELECTORATE, now=0.0, bound_s=4.0)
    assert m.step(0.1, event) is Verdict.ASKING


def test_grants_from_outside_the_electorate_count_for_nothing():
    # A participant added by re-placement may have won the takeover; its own grant and
    # a stranger's are not the electorate's.
    m = RoundMandate("p9", 1, ("a", "b", "co"), now=0.0, bound_s=1.0)
    assert m.fresh == set()
    m.step(0.1, Regranted("zz"))
    m.step(0.1, Regranted("a"))
    assert m.verdict is Verdict.ASKING
    assert m.step(0.2, Regranted("b")) is Verdict.PLACE


def test_a_negative_epoch_is_refused():
    with pytest.raises(ValueError):
        RoundMandate("co", -1, ("a", "b", "co"), now=0.0, bound_s=1.0)


# ---- the original coordinator (epoch 0) -----------------------------------------------------

@pytest.mark.parametrize(("electorate", "needed"), [
    (("co", "a"), 1),                 # a later epoch needs both: co's grant included
    (("co", "a", "b"), 2),            # odd: a majority
    (("co", "a", "b", "x"), 2),       # even: one fewer than the majority (3)
    (("co", "a", "b", "x", "y"), 3),
])
def test_the_original_needs_fresh_answers_that_meet_every_majority(electorate, needed):
    m = RoundMandate("co", 0, electorate, now=0.0, bound_s=4.0)
    assert m.needed == needed
    others = [d for d in sorted(electorate) if d != "co"]
    for voter in others[:needed - 1]:
        assert m.verdict is Verdict.ASKING
        m.step(0.1, Regranted(voter))
    assert m.verdict is Verdict.PLACE and len(m.fresh) == needed


def test_the_original_with_one_participant_places_on_its_own_word():
    # Classic two-phase commit, one participant (lost): no takeover can win without
    # the original's grant, and it has granted none.
    m = RoundMandate("co", 0, ("co", "a"), now=0.0, bound_s=4.0)
    assert m.verdict is Verdict.PLACE and m.fresh == {"co"}


def test_the_original_cut_off_places_nothing_and_says_why():
    m = RoundMandate("co", 0, ("co", "a", "b", "x", "y"), now=0.0, bound_s=4.0)
    m.step(0.5, Regranted("a"))
    assert m.step(4.0, Timer()) is Verdict.NO_MAJORITY
    why = m.why_not()
    assert "no set of members meeting every majority" in why and "epoch 0" in why
    assert "granted: a, co;" in why and "3 needed" in why


def test_the_original_overtaken_by_a_successor_follows_it():
    m = RoundMandate("co", 0, ("co", "a", "b", "x", "y"), now=0.0, bound_s=4.0)
    m.step(0.1, Regranted("b"))
    assert m.step(0.2, Overtaken(0, "co", proven=True)) is Verdict.ASKING  # epoch 0 is ours
    assert m.step(0.3, Overtaken(1, "a", proven=True)) is Verdict.OVERTAKEN
    assert m.later == (1, "a")
    assert m.step(0.4, Regranted("x")) is Verdict.OVERTAKEN
