"""The seeded runs' checks of clients' cancels (core/node/cancel.py), for check.py.

A workflow whose cancel a coordinator (of any epoch) took ends CANCELLED, the same
everywhere it ended, unless the caller was told why not: a cancel of an ended
workflow, or of one whose other end is told, is refused (the end it had stands); a
taker overtaken by a later epoch before its end was made notes the cancel void
(`cancel_void`; the client sends it on to that epoch's holder: cancels.py); a taker
dead for good carries nothing out. No step attempt starts at a domain that took the
cancel and drives the workflow (`learned`; check.py also fails an attempt started
where the workflow had ended). A held end its electors cannot acknowledge (a
participant gone for good, those left too few) is skipped and counted, as the
takeover check skips a loss verdict's: its taker's row stays RUNNING until one comes
back (domain_loss.py, docs/failures.md), whoever holds the told end meanwhile (a
participant takes the first end it hears, and may die for good before its
acknowledgement leaves); every end held anywhere is still checked CANCELLED.

A cancel taken while the round's COMMIT was proposed (DECIDING) waits on record for
the round's decision (core/node/cancel.py). Should the coordinator stay in doubt past
the round's life (a majority of the acceptors answered PAST_LIFE: cut off, then down,
longer than the round's life; docs/failures.md), no decision ever comes: its row stays
NEGOTIATING, as the terminal check allows (past_life_check.py), and the cancel waits
there, to be carried out if a party of the round still answers the decision. Such a
cancel is skipped and counted (`cancel waits: its round in doubt past its life`), as
the terminal check skips that row (takeover soak seed 167000569 with a cut one way and
a 5 s keep: the acceptors' Accepted never reached the coordinator, which took the
cancel, then went down and came back past the round's life); every end held anywhere
is still checked CANCELLED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedorch.core.workflow.lifecycle import TERMINAL_NAMES

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


class CancelCheck:
    def __init__(self, checker: Any) -> None:
        # The run's Checker (check.py), whose records of rounds and ends are read.
        self.c = checker
        # workflow -> the coordinator that first took its cancel; every coordinator (of
        # any epoch) that took it; (agent, workflow) of each cancel overtaken by a later
        # epoch at its taker (its caller told so); how many cancels were refused.
        self.cancelled: dict[str, str] = {}
        self.takers: dict[str, set[str]] = {}
        self.void_at: set[tuple[str, str]] = set()
        self.refused = 0

    def taken(self, agent: str, wf: str) -> None:
        self.cancelled.setdefault(wf, agent)
        self.takers.setdefault(wf, set()).add(agent)
        self.void_at.discard((agent, wf))  # taken again, in the epoch it drives

    def void(self, agent: str, wf: str) -> None:
        """`agent`'s cancel of `wf` was overtaken by a later epoch before its end was
        made: not carried out there; its caller is told (and sends it on)."""
        self.void_at.add((agent, wf))

    def learned(self, agent: str, wf: str) -> bool:
        """`agent` took the cancel of `wf` and it stands there (not void)."""
        return agent in self.takers.get(wf, ()) and (agent, wf) not in self.void_at

    def check(self, sim: World) -> None:
        """Every workflow whose cancel a coordinator (of any epoch) took ended CANCELLED
        at its original coordinator (unless that one died for good) and wherever it
        ended (held or forgotten), unless every taker's cancel was void (its caller
        told: cancel_void) or its taker died for good first (then nobody carries the
        cancel out)."""
        for wf in self.cancelled:
            standing = sorted(a for a in self.takers.get(wf, ())
                              if a not in sim.dead_forever and (a, wf) not in self.void_at)
            if not standing:
                continue
            coord = standing[0]
            row = self.c.row(sim, wf)
            ends = [(name, agent.disk.final.get(wf)) for name, agent in sim.agents.items()]
            ends += [(name, end) for name, w, end, _ in self.c._forgotten if w == wf]
            held = (row is None or row.state.name not in TERMINAL_NAMES) \
                and self.unacknowledgeable(sim, wf)
            if self.in_doubt_for_good(sim, wf, row):
                sim.stats["cancel waits: its round in doubt past its life"] += 1
            elif held:
                # Its CANCELLED end, told first to every elector, is made once enough
                # acknowledged it (domain_loss.py): those left are no majority. A
                # participant told it holds it meanwhile (told_ends.py), one gone for
                # good since too (2PC takeover soak seed 9100973: it took the end and
                # died before its acknowledgement left): each end there is is still
                # checked below.
                sim.stats["cancel held: its end unacknowledgeable, a domain gone for good"] += 1
            elif sim.workflows.get(wf) not in sim.dead_forever \
                    and (row is None or row.state.name != "CANCELLED"):
                self.c.fail(f"cancel: {coord} took the cancel of {wf}, which ended"
                          f" {row.state.name if row is not None else 'nowhere'}")
            for name, end in ends:
                if end is not None and end.name != "CANCELLED":
                    self.c.fail(f"cancel: {name} ended {wf} {end.name} after its cancel")

    def in_doubt_for_good(self, sim: World, wf: str, row: Any) -> bool:
        """`wf`'s coordinator is in doubt on its row's round past the round's life
        (its ballot stopped on a majority's PAST_LIFE answers, the decision never
        learned): its row stays NEGOTIATING, the cancel waiting on record (header)."""
        coord = sim.workflows.get(wf)
        if row is None or row.state.name != "NEGOTIATING" or coord not in sim.agents:
            return False
        key = (wf, row.round)
        if (coord, key) not in self.c.past_life or (coord, key) in self.c.learned_at:
            return False
        agent = sim.agents[coord]
        core = agent.coordinators.get(wf) if agent.alive else None
        return core is not None and core.in_doubt_past_life()

    def unacknowledgeable(self, sim: World, wf: str) -> bool:
        """With takeover on, a held end of committed `wf` cannot be acknowledged by
        enough electors: a participant is gone for good, and the electors gone for good
        (the committed round's acceptors, every one told the end) are a majority of the
        electorate, or no other elector or participant is left to hold it
        (domain_loss.py)."""
        round_ = self.c.committed(wf)
        tx = self.c.txs.get((wf, round_)) if round_ is not None else None
        if sim.config.timing.takeover_after_s is None or tx is None:
            return False
        electorate = set(tx.acceptors) or set(tx.participants) | {sim.workflows[wf]}
        live = (electorate | set(tx.participants)) - sim.dead_forever
        return bool(set(tx.participants) & sim.dead_forever) and (
            len(electorate & live) < len(electorate) // 2 + 1 or len(live) < 2)
