"""The Node's part in its coordinator's doubt: its questions answered and their answers.

Theory of operation
-------------------
A coordinator core running a recovery ballot asks its round's parties about it,
itself included (core/negotiation/coordinator_doubt.py). The Node routes both ends:

- our own question (a DecisionQuery from ourselves about a round our core `asking`)
  is answered as our acceptor would answer a participant (`own_answer`): the decision
  learned here, else PAST_LIFE if our acceptor refuses the round's ballots by age, or
  forgot it (acceptor.py, `past_life`), else nothing known; never from the core's own log,
  which only knows it is in doubt;
- an answer about such a round goes to the core, not to Termination (which never
  tracks a round we coordinate), from the sender it names only (`answered`); when it
  moves the core past the round's life (a majority of the acceptors answered
  PAST_LIFE: no ballot any more) the Node counts it as it counts a participant's,
  `in doubt past the round's life`, and notes `in_doubt_past_life`.

An ended core is never asking and is not revived to say so (coordinator_timers.py).
"""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.coordinator import Action, Coordinator
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import DecisionAnswer, Key
from fedorch.core.negotiation.termination import answer_query


def asking(n: Any, key: Key) -> Coordinator | None:
    """Our coordinator's core if it asks about round `key`, else None."""
    cores = n.coordinators
    if key[0] not in cores or key[0] in cores.ended:  # `in` looks up nothing
        return None
    core = cores.get(key[0])
    return core if core is not None and core.asking(key[1]) else None


def own_answer(n: Any, now: float, key: Key) -> DecisionAnswer:
    """Our own question, answered as our acceptor (see the header)."""
    core = asking(n, key)
    tx = core.tx() if core is not None else None
    stated = (tx.coordinator, tx.created_ms) if tx is not None else ("", 0)
    return answer_query(n.name, key, n.state.learned.get(key), None,
                        n.acceptor.past_life(key, n.wall_ms(now), now, *stated))


def answered(n: Any, now: float, src: str, msg: DecisionAnswer,
             core: Coordinator) -> list[Action]:
    """`msg` from `src` to the core that asked; returns the core's actions to run."""
    if src != msg.sender:
        raise RemoteProtocolError("a decision answer in another's name")
    before = core.in_doubt_past_life()
    core.receive_answer(now, msg)
    if not before and core.in_doubt_past_life():
        # Refused by the acceptors for good: in doubt, NEGOTIATING, reservation held.
        n.stats["in doubt past the round's life"] += 1
        n.note("in_doubt_past_life", msg.key)
    return core.next_actions()
