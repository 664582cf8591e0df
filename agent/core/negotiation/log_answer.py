"""What the coordinator's log answers an in-doubt participant, sans I/O.

Theory of operation
-------------------
A participant whose lease passed asks the coordinator for the decision of its
round. While the workflow's core is alive it answers; once the core is gone (the
workflow ended, or the agent restarted and has not rebuilt it) the log answers,
by the rules below. Presumed abort: no decision on record means ABORT, but only
after the round's write-once proposal cell has been set to ABORT (compare-and-
set), since a COMMIT proposal there can be settled only by a ballot. A COMMIT
whose certificate was collected (every participant had it) is never presumed
away: the asker has the decision already and is told how the workflow ended.

One table (`answer_from_log`, then `after_presumed_cell` for the second step):

    decision on record   the round vs the workflow        -> answer
    COMMIT, collected    any                              -> FORGOTTEN
    COMMIT or ABORT      any                              -> DECIDED (the record)
    none                 later than its round, not ended  -> NOT_BEGUN (unknown)
    none                 otherwise                        -> PRESUME_ABORT (cell first)
    after PRESUME_ABORT: the cell holds ABORT             -> DECIDED (record ABORT)
                         the cell holds COMMIT            -> UNKNOWN (a ballot settles it)
"""

from __future__ import annotations

import enum


class LogAnswer(enum.Enum):
    DECIDED = "decided"                # answer with the decision on record
    FORGOTTEN = "forgotten"            # a collected COMMIT: only how the workflow ended
    NOT_BEGUN = "not begun"            # the coordinator has not reached that round
    PRESUME_ABORT = "presume abort"    # set the proposal cell to ABORT, then decide
    UNKNOWN = "unknown"                # a COMMIT proposal without a decision


def answer_from_log(on_record: bool, collected: bool, round_: int,
                    workflow_round: int | None, workflow_over: bool) -> LogAnswer:
    """`on_record`: a decision for the round is on record with its envelope;
    `collected`: a COMMIT is on record whose certificate was dropped (only COMMITs are);
    `workflow_round`: the workflow's current round, None when no workflow row exists."""
    if collected:
        return LogAnswer.FORGOTTEN
    if on_record:
        return LogAnswer.DECIDED
    if workflow_round is not None and not workflow_over and round_ > workflow_round:
        return LogAnswer.NOT_BEGUN
    return LogAnswer.PRESUME_ABORT


def after_presumed_cell(cell: str) -> LogAnswer:
    """What the proposal cell holds after the compare-and-set to ABORT."""
    return LogAnswer.DECIDED if cell == "ABORT" else LogAnswer.UNKNOWN
