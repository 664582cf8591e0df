"""The checker's non-blocking bound (check.py's header, "non-blocking").

For a transaction whose coordinator died for good, every live YES voter learns the
decision within two lease periods after the last lease, counted from when the network
had healed and the acceptors and the voter were up. A classic 2PC round (no acceptors)
is decided in its coordinator's log alone: its voters wait while it is down or stalled,
as 2PC does (docs/failures.md), so the bound counts from the coordinator's and the
voter's last return (restart, pause) too; that log dead with it, the voter can be told
only by another participant that learned the decision (cooperative termination,
core/negotiation/termination.py, asked every `query_interval_s`), so also from when the
first such one, up at the end, was back for the last time and had learned it
(`teller_calm`; none: the bound as it was). A voter whose coordinator died before any
live agent learned the decision blocks, as 2PC does (`blocked_2pc`: counted, not a
failure). A re-placement round is resolved for its new domain by the workflow's end
too, or by a later epoch's holder answering it void (`released_at`): its two acceptors
(the coordinator one of them) never decide it without the coordinator, so its voter
waits on a successor, whom the workflow's electorate elects; its bound counts from
that electorate's calm too (a restart of the successor, say), as the takeover
deadline does (takeover_check.py; takeover soak seed 210201673, `--keep-ended-s 5 --end
300`: the successor crashed as it won, back at 37.1, 19 s after the voter's last
restart, and ended the workflow, releasing the round, 0.3 s later).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedorch.core.negotiation.messages import Key

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


def check_blocking(checker: Any, sim: World, dead: set[str], lease: float) -> None:
    for key, voters in checker.yes.items():
        tx = checker.txs[key]
        if tx.coordinator not in dead:
            continue
        if blocked_2pc(checker, sim, key):
            sim.stats["2PC blocked: coordinator dead for good, nobody told"] += 1
            continue
        for voter in voters:
            if voter in dead or not sim.agents[voter].alive \
                    or (voter, key) in checker.past_life \
                    and (voter, key) not in checker.learned_at:
                continue
            # From the voter's own last start too: a restored hold's lease counts
            # again from the restore (core/negotiation/participant.restarted).
            calm = sim.calm_since((*(tx.acceptors or (tx.coordinator,)), voter))
            if not tx.acceptors:  # its log dead with it: a participant that learned tells
                calm = max(calm, teller_calm(checker, sim, key, voter))
            calm = max(calm, successor_calm(checker, sim, key))
            deadline = max(max(voters.values()), calm) + 2 * lease
            at = checker.learned_at.get((voter, key), checker.released_at.get((voter, key)))
            if at is None or at > deadline:
                when = "never" if at is None else f"at {at:.2f}"
                checker.fail(f"blocking: {voter} learned {key} {when}, "
                             f"deadline {deadline:.2f} (coordinator dead)")


def teller_calm(checker: Any, sim: World, key: Key, voter: str) -> float:
    """When the first participant other than `voter` that learned `key`'s decision,
    up at the end and not dead for good, had learned it and was up for the last time
    (0: none)."""
    return min((max(sim.calm_since((p,)), checker.learned_at[(p, key)])
                for p in checker.txs[key].participants
                if p != voter and (p, key) in checker.learned_at
                and p not in sim.dead_forever and sim.agents[p].alive), default=0.0)


def successor_calm(checker: Any, sim: World, key: Key) -> float:
    """For a re-placement round (see the header), when the live members of its
    workflow's takeover electorate were all up for the last time (0: not one)."""
    committed = checker.committed(key[0])
    tx = checker.txs.get((key[0], committed)) if committed is not None else None
    if tx is None or key[1] <= committed:
        return 0.0
    electorate = set(tx.acceptors) or set(tx.participants) | {tx.coordinator}
    return sim.calm_since(tuple(sorted(electorate - sim.dead_forever)))


def blocked_2pc(checker: Any, sim: World, key: Key) -> bool:
    """A classic 2PC round (no acceptors) whose coordinator died for good, that no
    live agent but it learned: its YES voters wait for ever, as 2PC does
    (docs/limits.md). Without membership views (runs without takeover) a voter asks
    nobody but the coordinator, so any such round blocks. A re-placement round (a
    round after the workflow's committed one: classic 2PC too, its two acceptors
    only making a well-formed round) blocks the same way where no successor can
    ever answer its new domain: the workflow's electorate has no live majority
    (the workflow is left undecided then too: takeover_check.py)."""
    tx = checker.txs.get(key)
    if tx is None or tx.coordinator not in sim.dead_forever:
        return False
    if tx.acceptors and not _no_successor_for(checker, sim, key):
        return False
    if sim.config.timing.takeover_after_s is None:
        return True
    return not any((a, key) in checker.learned_at for a, agent in sim.agents.items()
                   if agent.alive and a not in sim.dead_forever)


def _no_successor_for(checker: Any, sim: World, key: Key) -> bool:
    """Is `key` a re-placement round of a workflow whose takeover electorate has
    fewer live members than a majority (so none is ever elected)?"""
    committed = checker.committed(key[0])
    tx = checker.txs.get((key[0], committed)) if committed is not None else None
    if tx is None or key[1] <= committed:
        return False
    electorate = set(tx.acceptors) or set(tx.participants) | {tx.coordinator}
    return len(electorate - sim.dead_forever) < len(electorate) // 2 + 1
