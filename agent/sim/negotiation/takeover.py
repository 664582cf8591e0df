"""What the simulator gives the Node's coordinator takeover (Timing.takeover_after_s set).

Theory of operation
-------------------
Coordinator takeover is the Node's (agent/core/node/takeover.py): its cores, claims,
answers, grants and ends are production code the simulated agents run. The
simulation supplies two things a daemon's driver would:

- Membership, as inputs. `MembershipFeed` keeps, per agent, the view its current
  Node was told; after every event of a run with takeover on, each agent that is up
  and not paused is told (`MemberState` inputs, one driver turn) what changed in its
  view (`Simulation.member_state`: DEAD `dead_after_s` after a crash, SUSPECT before
  that, while paused or cut off by the partition; ALIVE otherwise) since it was last
  told. A new Node (a boot) is told the whole view: what a restarted agent's
  membership knows is its own, not its disk's. Changes that come with time alone (a
  crash becoming DEAD, the end of a pause or of the partition) are events of their
  own (run.py schedules them), so no agent looks at its view on a period.
- Evidence. A claim's epoch certificate and its proof of the committed round are
  signatures on the wire; the simulator signs nothing, so `SimEvidence` answers the
  Node's checks (TakeoverEvidence) from the run's own record: a certificate holds
  when the checker saw that domain act in that epoch (its `acting` note, written
  with its Act), whoever shows it: the winner's claim, its own denial, or a granter's
  denial relaying it (the Node keeps a proof it checked and relays it); a lying
  relay is refused here like a lying holder. A proof of the round holds when its
  round is the one its coordinator sent and a COMMIT of it was chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.core.node.inputs import MemberState
from fedorch.core.node.takeover import acceptors_of, held_of
from fedorch.core.workflow.acceptor_grant import Round
from fedorch.core.workflow.takeover import GONE_AT_ONCE

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World

__all__ = ["MembershipFeed", "SimEvidence", "acceptors_of", "held_of"]


class SimEvidence:
    """The Node's takeover checks (TakeoverEvidence), answered from the run's record."""

    def __init__(self, sim: World) -> None:
        self.sim = sim

    def certificate_holds(self, wf: str, epoch: int, coordinator: str) -> bool:
        return epoch >= 1 and self.sim.checker.acting_in.get((wf, epoch)) == coordinator

    def round_proof_holds(self, wf: str, proof: Round) -> bool:
        checker = self.sim.checker
        tx = checker.txs.get((wf, proof.round))
        return tx is not None and checker.committed(wf) == proof.round \
            and (frozenset(tx.participants), frozenset(tx.acceptors)) \
            == (proof.participants, proof.acceptors)


class MembershipFeed:
    """Each agent's membership view as inputs to its Node (see the header). It also
    keeps, for the checker, when each Node was told a member is gone (DEAD or LEFT)
    and until when (`gone_told`): the in-doubt bound counts from there
    (check.Checker, `_check_undecided_recovery`)."""

    def __init__(self, sim: World) -> None:
        self.sim = sim
        self.told: dict[str, dict[str, str]] = {}  # agent -> what its Node was told
        # (agent, member) -> [start, end]: told DEAD or LEFT at start, and so until end
        # (None: still) or until the agent's Node was replaced (a boot: `end` then).
        self.gone_told: dict[tuple[str, str], list[list[float | None]]] = {}

    def booted(self, name: str) -> None:
        """A new Node: it knows nothing of the federation until told."""
        for member in self.told.get(name, {}):
            self._gone(name, member, False)
        self.told[name] = {}

    def changes(self, name: str) -> tuple[MemberState, ...]:
        """What `name`'s view shows now that its Node was not told, marked as told."""
        sim = self.sim
        told = self.told.setdefault(name, {})
        news = []
        for member in sim.names:
            if member == name:
                continue
            state = sim.member_state(name, member)
            if told.get(member) != state:
                told[member] = state
                news.append(MemberState(member, state))
                self._gone(name, member, state in GONE_AT_ONCE)
        return tuple(news)

    def _gone(self, name: str, member: str, gone: bool) -> None:
        spans = self.gone_told.setdefault((name, member), [])
        is_open = bool(spans) and spans[-1][1] is None
        if gone and not is_open:
            spans.append([self.sim.now, None])
        elif not gone and is_open:
            spans[-1][1] = self.sim.now
