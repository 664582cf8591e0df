"""Presumed abort (core/workflow/presumed_abort.py): only of a forgotten classic round
of the coordinator's own range (epoch 0), never of a successor's round."""

from __future__ import annotations

from fedorch.core.workflow.epoch_certificate import ROUNDS_PER_EPOCH
from fedorch.core.workflow.presumed_abort import presumes_abort
from hypothesis import given
from hypothesis import strategies as st

WORKFLOW = "eu.west.0000000003e8deadbeef"


@given(st.sampled_from(["eu.west", "us", "eu"]), st.integers(0, 3 * ROUNDS_PER_EPOCH),
       st.booleans(), st.booleans())
def test_abort_is_presumed_only_of_a_forgotten_classic_round_of_ones_own_range(
        me, round_, known, classic):
    expected = me == "eu.west" and round_ < ROUNDS_PER_EPOCH and not known and classic
    assert presumes_abort(WORKFLOW, round_, me=me, known=known,
                          classic=classic) == expected


def test_a_successors_round_is_never_presumed_aborted_by_the_original():
    assert presumes_abort(WORKFLOW, 1, me="eu.west", known=False, classic=True)
    assert not presumes_abort(WORKFLOW, ROUNDS_PER_EPOCH, me="eu.west", known=False,
                              classic=True)
    assert not presumes_abort(WORKFLOW, ROUNDS_PER_EPOCH + 1, me="us", known=False,
                              classic=True)
