"""A NO of ours in a classic 2PC round, kept as that round's ABORT.

Theory of operation
-------------------
Classic 2PC has no recovery ballot: a participant in doubt whose coordinator is DEAD
or LEFT in its view asks the other participants too (cooperative termination,
core/negotiation/termination.py). A participant that voted NO knows the outcome: a
COMMIT needs every participant's signed YES (its certificate, `check_value`), so a
round it refused can never commit. So the Node keeps such a NO as the round's ABORT
in `learned`, the table of decisions known here (`record_no`), and a peer's
DecisionQuery is then answered ABORT from it, as any decision held here is
(negotiation.py, `_on_query`; counted by `answered_from_no`).

    (vote,                               input)          -> effect
    (NO, classic, not a re-placement     PREPARE voted   -> ABORT written to `learned`
     round, not our own workflow, no YES                    (with the NO's turn; the
     of ours ever left: Participant.voted_no)               workflow marked: retention)
    (ABORT in `learned`,                 DecisionQuery)  -> DECIDED ABORT, counted
    (ABORT in `learned`,                 PREPARE again)  -> NO (the core's closed
                                                            round; after a restart
                                                            the ABORT on record closes
                                                            it: negotiation_restore.py)
    (Paxos Commit round, a re-placement  NO)             -> nothing written, as before
     round, or one we coordinate:

Safety. The answer comes only from the record: a NO whose write was lost with a crash
answers nothing, as before (the asker keeps asking), and a PREPARE sent again is then
voted afresh, which is safe as it always was (no YES of that round left before; a
coordinator that heard the NO decided ABORT and counts one vote per domain). The
record is in the write group of the NO's turn, so any later turn's answer leaves after
it is durable. It is written only where the participant core itself refused the round
(`voted_no`: a policy or constraint NO, or a reservation whose lease passed before its
YES), never for a NO that repeats a decided round (ROUND_DECIDED: that round may have
committed with our YES). A re-placement round is left to its own rules
(replacement_handover.py answers it), and so is a round we coordinate (our core's log
answers it); Paxos Commit rounds are decided by their recovery ballots, unchanged.

Retention: the record is a learned decision, so it goes as one does, by its round's
life once its workflow is forgotten here (retention_rounds.py); the mark starts the
workflow's clock here, where nothing else of it may be kept.
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.messages import ABORT, Key, Value
from fedorch.core.node.records import PrepareMsg

RECORDED = "classic NO recorded as the round's ABORT"
ANSWERED = "in-doubt query answered ABORT from our NO"


def record_no(negotiation: Any, now: float, msg: PrepareMsg, yes: bool) -> None:
    """After our vote on `msg` left: a classic NO of ours kept as its round's ABORT."""
    n = negotiation.n
    tx = msg.tx
    if yes or tx.acceptors or msg.info.lost or tx.coordinator == n.name \
            or tx.key in n.state.learned or not n.participant.voted_no(tx.key):
        return
    n.point("NO recorded")
    negotiation.write_learned(now, tx.key, ABORT)
    n.stats[RECORDED] += 1


def answered_from_no(n: Any, key: Key, decided: Value | None) -> None:
    """A DecisionQuery about `key` answered from what we learned: from our NO? (Under
    Paxos Commit a NO voter answers an ABORT it learned, as before: not counted.)"""
    if n.t.classic and decided is not None and not decided.commit \
            and n.participant.voted_no(key):
        n.stats[ANSWERED] += 1
