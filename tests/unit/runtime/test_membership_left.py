"""A member that LEFT (its agent stopped gracefully) is lost here as a DEAD one is.

The membership shell of agent alpha hears a second, real SWIM core (domain beta, its
claims signed with its own key) join and then leave. The LEFT event must reach the
coordinator's domain-loss path (beta's steps in the workflows alpha coordinates are
resolved) and the in-doubt transactions beta coordinates (they recover now, not at the
lease); the periodic sweep must treat a LEFT member as lost too; and a member that
comes back (ALIVE, a higher incarnation) is no longer lost.
"""

from __future__ import annotations

import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.trust import TrustStore
from fedorch.core.membership import swim_codec
from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_types import MemberState
from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.negotiation.termination import DoubtState
from fedorch.core.workflow.progress import Progress, StepState
from fedorch.gen.fedorch.v1 import spec_pb2, swim_pb2
from fedorch.runtime.claim_signing import ClaimSigner, ClaimVerifier
from fedorch.runtime.context import Active
from fedorch.runtime.membership import DEAD_SWEEP_S, Membership
from fedorch.runtime.store.store import WorkflowRow

BETA_ADDRESS = "127.0.0.1:2"


class Clock:
    """The agent's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Beta:
    """Domain beta's own SWIM core (one life of it), wired to alpha's shell in process."""

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


def _running(agent, wid: str, placement: dict[str, str]) -> Active:
    """A RUNNING workflow coordinated by `agent`, its steps (no needs, not idempotent)
    placed as given; nothing reported yet."""
    spec = spec_pb2.WorkflowSpec(name="wf", steps=[
        spec_pb2.StepSpec(id=s, capability="cap") for s in placement])
    row = WorkflowRow(id=wid, name="wf", coordinator=agent.domain, state="RUNNING",
                      spec=spec.SerializeToString(), placement=dict(placement))
    return Active(row, Progress(spec, placement, agent.domain))


def _loop_turns(alpha: Membership) -> None:
    """The membership loop's turns at one moment: a turn with no event arms the sweep's
    deadline when there is work (it was not armed while nothing was active), and the
    loop wakes at that deadline for the next."""
    alpha._observe()
    assert alpha._dead_sweep_due is not None and alpha._dead_sweep_due <= alpha.agent.now()
    alpha._observe()


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


async def test_a_member_that_left_loses_its_steps_where_this_agent_coordinates(
        agent, monkeypatch) -> None:
    alpha, beta, clock = _alpha_with_beta(agent, monkeypatch)
    agent.active["wf"] = _running(agent, "wf", {"x": "beta", "y": "alpha"})
    agent.active["elsewhere"] = _running(agent, "elsewhere", {"x": "alpha"})
    tx = TxInfo("beta.1", 1, "beta", ("alpha", "beta"), ("alpha", "beta"))
    agent.consensus.termination.track(clock(), tx, lease_expires=clock() + 30)
    alpha._observe()  # beta ALIVE: nothing is lost
    assert agent.active["wf"].progress.steps["x"].state is StepState.WAITING
    assert agent.consensus.termination.state(tx.key) is DoubtState.WAITING

    clock.t += 1
    beta.core.leave(clock())  # its agent's graceful stop (SIGTERM)
    beta.deliver(clock())
    assert alpha.swim.member("beta").state is MemberState.LEFT
    alpha._observe()

    x = agent.active["wf"].progress.steps["x"]
    # Ready (no needs), so it may have started there; not idempotent: failed, naming beta.
    assert x.state is StepState.FAILED, x
    assert x.error.startswith("domain beta was lost (LEFT) while the step ran"), x.error
    assert agent.active["wf"].progress.steps["y"].state is StepState.WAITING
    assert agent.active["elsewhere"].progress.steps["x"].state is StepState.WAITING
    # The transaction beta coordinates recovers now, not at its lease.
    assert agent.consensus.termination.state(tx.key) is DoubtState.ASKING


async def test_the_sweep_counts_a_left_member_as_lost_until_it_is_back(
        agent, monkeypatch) -> None:
    alpha, beta, clock = _alpha_with_beta(agent, monkeypatch)
    clock.t += 1
    beta.core.leave(clock())
    beta.deliver(clock())
    alpha._observe()  # the LEFT event, while nothing here is placed on beta

    # A workflow that came after the event (committed after beta voted YES and left, or
    # restored by a restart here): the next sweep resolves it.
    agent.active["late"] = _running(agent, "late", {"x": "beta"})
    clock.t += DEAD_SWEEP_S
    _loop_turns(alpha)
    late = agent.active["late"].progress.steps["x"]
    assert late.state is StepState.FAILED, late
    assert late.error.startswith("domain beta was lost (LEFT)"), late.error  # the sweep's

    # beta restarts: a new life, ALIVE at a higher incarnation. It is lost no more, and
    # new work placed on it is left alone by the sweep.
    later = Beta(beta.key, alpha, clock(), incarnation=beta.core.incarnation + 10)
    later.core.join(clock(), [agent.endpoint])
    later.deliver(clock())
    assert alpha.swim.member("beta").state is MemberState.ALIVE
    agent.active["after"] = _running(agent, "after", {"x": "beta"})
    alpha._observe()  # the ALIVE event
    assert alpha._dead_sweep_due is None  # nothing lost: no sweep armed
    clock.t += DEAD_SWEEP_S
    alpha._observe()
    assert agent.active["after"].progress.steps["x"].state is StepState.WAITING
