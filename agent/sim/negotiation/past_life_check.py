"""The checker's rule for a coordinator in doubt past its round's life.

A round's coordinator whose recovery ballot the acceptors refused as past the round's
life (`Checker.past_life`) stays in doubt, its row NEGOTIATING, as a participant does,
and is exempt from the terminal check as such a participant is from the leak check,
but only once it stopped its ballot for good (core/negotiation/coordinator_doubt.py:
a majority of the acceptors answered PAST_LIFE): one still resending its PaxosPrepare at the end of the run fails it, whether
its acceptors refused the round as past its life or as forgotten (an acceptor that
forgot a round answers a query stating it PAST_LIFE, acceptor.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedorch.core.negotiation.messages import Key

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


def coordinator_past_life(checker: Any, sim: World, coord: str, key: Key) -> bool:
    """Is `coord`'s workflow exempt from the terminal check (see the header)? One still
    balloting fails the run. `checker`: the run's Checker (check.py imports this)."""
    if (coord, key) not in checker.past_life or (coord, key) in checker.learned_at:
        return False
    agent = sim.agents[coord]
    core = agent.coordinators.get(key[0]) if agent.alive else None
    if core is None or not core.in_doubt_past_life():
        checker.fail(f"past life: {key} refused by its acceptors, its coordinator {coord}"
                     " still balloting")
        return True  # failed once, not again as not terminal
    return checker._exempt_past_life(sim, coord, key)
