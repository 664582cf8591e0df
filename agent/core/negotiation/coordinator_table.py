"""The coordinator's one table of transitions: (phase, input) -> handler.

The table, what each pair does and why the absent pairs are protocol errors are
described in coordinator.py's theory of operation; `Coordinator._dispatch` looks
every input up here (as `coordinator._TRANSITIONS`). Built from the class, once,
when coordinator.py is imported, since this module cannot import the class back.
"""

from __future__ import annotations

from collections.abc import Callable

from fedorch.core.negotiation.rounds import Phase

Handler = Callable[[object, float, object], object]


def transitions(cls: type) -> dict[tuple[Phase, str], Handler]:
    return {
        (Phase.IDLE, "start"): cls._on_start,
        (Phase.IDLE, "cancel"): cls._ignore,
        (Phase.PREPARING, "vote"): cls._on_vote,
        (Phase.PREPARING, "timer"): cls._on_timer,
        (Phase.PREPARING, "cancel"): cls._on_cancel_preparing,
        (Phase.PREPARING, "paxos"): cls._ignore,    # replies for an earlier round
        (Phase.PREPARING, "ack"): cls._ignore,
        (Phase.PREPARING, "query"): cls._on_query,
        (Phase.PREPARING, "lost"): cls._on_lost_preparing,
        **{(phase, "lost"): cls._ignore for phase in Phase if phase is not Phase.PREPARING},
        (Phase.DECIDING, "vote"): cls._on_late_vote,
        (Phase.DECIDING, "timer"): cls._on_timer_deciding,
        (Phase.DECIDING, "cancel"): cls._ignore,   # COMMIT proposed: it cannot be taken back
        (Phase.DECIDING, "paxos"): cls._on_paxos_deciding,
        (Phase.DECIDING, "ack"): cls._on_ack,  # it learned COMMIT before we did
        (Phase.DECIDING, "query"): cls._on_query,
        (Phase.DECIDING, "answer"): cls._on_answer_deciding,
        **{(phase, "answer"): cls._ignore for phase in Phase if phase is not Phase.DECIDING},
        (Phase.COMMITTED, "vote"): cls._on_late_vote,
        (Phase.COMMITTED, "timer"): cls._on_timer_committed,
        (Phase.COMMITTED, "cancel"): cls._ignore,
        (Phase.COMMITTED, "paxos"): cls._ignore,
        (Phase.COMMITTED, "ack"): cls._on_ack,
        (Phase.COMMITTED, "query"): cls._on_query,
        (Phase.ABORTED, "vote"): cls._on_late_vote,
        (Phase.ABORTED, "timer"): cls._ignore,
        (Phase.ABORTED, "cancel"): cls._ignore,
        (Phase.ABORTED, "paxos"): cls._ignore,
        (Phase.ABORTED, "ack"): cls._ignore,
        (Phase.ABORTED, "query"): cls._on_query,
    }
