"""A member that LEFT (its agent stopped gracefully) is lost here as a DEAD one is.

The membership of agent alpha hears a second, real SWIM core (domain beta, its claims
signed with its own key) join and then leave. The LEFT event must reach the workflows
at once (no loss grace): the hooks membership tells (on_members_change, which post the
Node's member view) read beta LEFT in the look that saw it; and a member that comes
back (ALIVE, a higher incarnation) is no longer lost.
"""

from __future__ import annotations

import asyncio
import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.trust import TrustStore
from fedorch.core.membership import swim_codec
from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_types import MemberState
from fedorch.gen.fedorch.v1 import swim_pb2
from fedorch.runtime.claim_signing import ClaimSigner, ClaimVerifier
from fedorch.runtime.membership import Membership

BETA_ADDRESS = "127.0.0.1:2"


class Clock:
    """The agent's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Beta:
    """Domain beta's own SWIM core (one life of it), wired to alpha's membership in
    process."""

    def __init__(self, key: Ed25519PrivateKey, alpha: Membership, now: float,
                 incarnation: int) -> None:
        self.key = key
        self.alpha = alpha
        trust = TrustStore({"beta": key.public_key(),
                            "alpha": alpha.agent.signer.public_key()})
        self.core = Swim("beta", BETA_ADDRESS, alpha.profile,
                         ClaimSigner(Signer("beta", key)), ClaimVerifier(trust),
                         random.Random(7), now, incarnation=incarnation)

    def deliver(self, now: float) -> None:
        """Carry beta's datagrams to alpha and alpha's answers back, until both are quiet."""
        for _ in range(20):
            out = [m for address, m in self.core.datagrams_to_send()
                   if address == self.alpha.agent.endpoint]
            if not out:
                return
            batch = swim_pb2.SwimBatch(reply_to=BETA_ADDRESS,
                                       messages=[swim_codec.encode(m) for m in out])
            reply = self.alpha.handle_batch("beta", batch)
            for raw in reply.messages:
                self.core.handle_message(now, self.alpha.agent.endpoint,
                                         swim_codec.decode(raw))
        raise AssertionError("beta and alpha kept talking")


def _alpha_with_beta(agent, monkeypatch) -> tuple[Membership, Beta, Clock]:
    clock = Clock()
    monkeypatch.setattr(agent, "now", clock)
    key = Ed25519PrivateKey.generate()
    agent.trust.add("beta", key.public_key())
    alpha = Membership(agent, incarnation=5)
    agent.membership = alpha
    beta = Beta(key, alpha, clock(), incarnation=10)
    beta.core.join(clock(), [agent.endpoint])
    beta.deliver(clock())
    alpha._observe()
    assert alpha.swim.member("beta").state is MemberState.ALIVE
    return alpha, beta, clock


def _told(agent, alpha: Membership) -> list[str]:
    """beta's state as the workflows act on it, each time membership told its hooks (the
    node engine's is the one that posts the Node's member view)."""
    seen: list[str] = []
    agent.on_members_change.append(lambda: seen.append(alpha.state_for_work("beta")))
    return seen


async def test_a_member_that_left_is_lost_to_the_workflows_at_once(agent, monkeypatch) -> None:
    alpha, beta, clock = _alpha_with_beta(agent, monkeypatch)
    seen = _told(agent, alpha)
    alpha._observe()  # beta ALIVE: nothing is lost (nothing changed: no look)
    assert alpha.state_for_work("beta") == "ALIVE"

    clock.t += 1
    beta.core.leave(clock())  # its agent's graceful stop (SIGTERM)
    beta.deliver(clock())
    assert alpha.swim.member("beta").state is MemberState.LEFT
    alpha._observe()
    # No grace for a leave: the hooks read it LEFT in the look that saw it.
    assert seen == ["LEFT"]


async def test_a_left_member_back_at_a_higher_incarnation_is_lost_no_more(
        agent, monkeypatch) -> None:
    alpha, beta, clock = _alpha_with_beta(agent, monkeypatch)
    seen = _told(agent, alpha)
    clock.t += 1
    beta.core.leave(clock())
    beta.deliver(clock())
    alpha._observe()
    assert seen == ["LEFT"]

    # beta restarts: a new life, ALIVE at a higher incarnation. It is lost no more.
    later = Beta(beta.key, alpha, clock(), incarnation=beta.core.incarnation + 10)
    later.core.join(clock(), [agent.endpoint])
    later.deliver(clock())
    assert alpha.swim.member("beta").state is MemberState.ALIVE
    alpha._observe()  # the ALIVE event
    assert seen[-1] == "ALIVE" and alpha.state_for_work("beta") == "ALIVE"


async def test_a_lone_member_leaves_without_waiting_and_a_member_with_peers_waits(
        agent, monkeypatch) -> None:
    """The leave's grace lets the LEFT claim spread; with no other member live there is
    nobody to tell, so a lone agent's graceful stop does not wait for it."""
    waits: list[float] = []

    async def recorded_sleep(seconds: float) -> None:
        waits.append(seconds)

    alone = Membership(agent, incarnation=5)
    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    await alone.leave(10.0)
    monkeypatch.undo()
    assert alone.leaving and waits == []

    alpha, _beta, _clock = _alpha_with_beta(agent, monkeypatch)
    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    await alpha.leave(10.0)
    monkeypatch.undo()
    assert waits == [min(10.0, alpha.profile.leave_grace)]
