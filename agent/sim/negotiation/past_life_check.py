"""The checker's rule for a coordinator in doubt past its round's life.

A round's coordinator whose recovery ballot the acceptors refused as past the round's
life (`Checker.past_life`) stays in doubt, its row NEGOTIATING, as a participant does,
and is exempt from the terminal check as such a participant is from the leak check,
but only once it stopped its ballot for good (core/negotiation/coordinator_doubt.py:
a majority of the acceptors answered PAST_LIFE): one still resending its PaxosPrepare at the end of the run fails it, whether
its acceptors refused the round as past its life or as forgotten (an acceptor that
forgot a round answers a query stating it PAST_LIFE, acceptor.py).

`Checker.past_life` holds the coordinator once one acceptor refused its ballot (its
own, often), while the core stops on a majority's PAST_LIFE answers only: one
acceptor's word stops nothing. So a coordinator still balloting is exempt too, as in
doubt, when at the end its acceptors are no majority either way (`no_majority_either_way`):
those that refuse its round now (by their own clocks, `Acceptor.past_life`) are fewer
than a majority, so no majority's PAST_LIFE can have stopped it, and those that could
still accept a ballot of it (neither refusing nor dead for good; one down for a while
counts as able) are fewer than a majority too, so no ballot can settle it. The core
cannot tell an acceptor dead for good from a slow one, and rightly keeps its ballot
and its questions: an acceptor back, or one whose wall clock catches up with the
round's age, answers it. Takeover soak seed 222000084 (`--one-way --keep-ended-s 5
--end 300`): `d2.w1`'s acceptors d0, d1, d2; d1 dead for good, d2 (the coordinator)
refusing by age, d0 with no record older than its life by its wall clock, stepped an
hour back, answering NOT_PREPARED: the coordinator in doubt, its ballot unchosen.
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
    if core is None or not core.in_doubt_past_life() \
            and not no_majority_either_way(sim, core.tx()):
        checker.fail(f"past life: {key} refused by its acceptors, its coordinator {coord}"
                     " still balloting")
        return True  # failed once, not again as not terminal
    return checker._exempt_past_life(sim, coord, key)


def no_majority_either_way(sim: World, tx: Any) -> bool:
    """Round `tx`'s acceptors refusing it now are no majority, and neither are those
    that could still accept a ballot of it (see the header)."""
    if tx is None or not tx.acceptors:
        return False
    refusing = able = 0
    for name in tx.acceptors:
        agent = sim.agents.get(name)
        if agent is None or name in sim.dead_forever:
            continue
        if agent.alive:
            now = agent.clock.monotonic()
            if agent.node.acceptor.past_life(tx.key, agent.clock.wall_ms_at(now), now,
                                             tx.coordinator, tx.created_ms):
                refusing += 1
                continue
        able += 1
    return refusing < tx.majority and able < tx.majority
