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
  own (simulation.py schedules them), so no agent looks at its view on a period.
- Evidence. A claim's epoch certificate is the signed grants of a majority of the
  electorate (core/node/takeover_grants.py), made by each agent's Node through its
  `sign_grant` port. The simulator's signatures are fakes (`sim_signer`: an HMAC under
  a key derived from the agent's name) that only the granting agent's signer makes:
  the liar (liar.py) is given no signer but its own, so it can sign its own grants
  and votes and no other's. `SimEvidence` checks certificates as the daemon does
  (`SignedEvidence`, over `sim_verify`), against the electorate the checking agent
  holds. A proof of the round (an acceptor holding no step is shown the committed
  round) holds, as in the daemon, when the original coordinator's signed statement of
  that round (made as its PREPARE left, `takeover_proofs.stated_prepare`) verifies and
  names it, and its COMMIT's certificate holds a signed YES of every participant
  (the Node's votes, core/node/votes.py, signed with the same fake keys).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

from fedorch.core.node.inputs import MemberState
from fedorch.core.node.takeover import acceptors_of, held_of
from fedorch.core.node.takeover_grants import GrantSigner, SignedEvidence
from fedorch.core.workflow.takeover import GONE_AT_ONCE

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World

__all__ = ["MembershipFeed", "SimEvidence", "acceptors_of", "held_of", "sim_signer",
           "sim_verify"]


def _key(name: str) -> bytes:
    return hashlib.sha256(b"fedorch sim grant key\x00" + name.encode()).digest()


def sim_signer(name: str) -> GrantSigner:
    """`name`'s fake signer: what only that agent's Node is given."""
    key = _key(name)

    def sign(data: bytes) -> bytes:
        return hmac.new(key, data, hashlib.sha256).digest()

    return sign


def sim_verify(signer: str, data: bytes, signature: bytes) -> bool:
    return hmac.compare_digest(hmac.new(_key(signer), data, hashlib.sha256).digest(),
                               signature)


class SimEvidence(SignedEvidence):
    """The Node's takeover checks (TakeoverEvidence): certificates, signed rounds and
    round proofs' COMMITs by their (fake) signatures, as the daemon checks them."""

    def __init__(self, sim: World) -> None:
        super().__init__(sim_verify)
        self.sim = sim


class MembershipFeed:
    """Each agent's membership view as inputs to its Node (see the header). It also
    keeps, for the checker, when each Node was told a member is gone (DEAD or LEFT)
    and until when (`gone_told`): the in-doubt bound counts from there
    (takeover_check.py, `check_undecided_recovery`)."""

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
