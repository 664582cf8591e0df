"""The coordinator log's answers to in-doubt participants: the table of
agent.negotiation.log_answer, row by row."""

from __future__ import annotations

import pytest
from fedorch.core.negotiation.log_answer import LogAnswer, after_presumed_cell, answer_from_log


@pytest.mark.parametrize(("on_record", "collected", "round_", "workflow_round", "over",
                          "expected"), [
    (False, True, 1, 1, True, LogAnswer.FORGOTTEN),      # never presumed away
    (False, True, 1, 1, False, LogAnswer.FORGOTTEN),
    (True, False, 1, 2, False, LogAnswer.DECIDED),
    (True, False, 3, 2, False, LogAnswer.DECIDED),
    (False, False, 3, 2, False, LogAnswer.NOT_BEGUN),    # a round not reached yet
    (False, False, 3, 2, True, LogAnswer.PRESUME_ABORT),  # ended: that round never comes
    (False, False, 2, 2, False, LogAnswer.PRESUME_ABORT),
    (False, False, 1, None, False, LogAnswer.PRESUME_ABORT),  # no workflow on record
])
def test_answer_from_log(on_record, collected, round_, workflow_round, over, expected):
    assert answer_from_log(on_record, collected, round_, workflow_round, over) is expected


def test_a_presumed_abort_needs_the_cell():
    assert after_presumed_cell("ABORT") is LogAnswer.DECIDED
    assert after_presumed_cell("COMMIT") is LogAnswer.UNKNOWN  # only a ballot settles it
