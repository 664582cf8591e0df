"""Membership tells the Node when it heard a doubt of this domain (runtime/membership.py,
`take_doubt`; core/node/start_asks.py, "A cut one way"): beta (test_membership_left's)
tells alpha it suspects it, or holds it DEAD at an incarnation alpha moved past; alpha
refutes, and its next look tells the hooks, whose node engine posts the Node's member
view input with `doubted` set, once per doubt heard."""

from __future__ import annotations

from types import SimpleNamespace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer
from fedorch.core.membership import swim_codec
from fedorch.core.membership.swim_types import ClaimBody, ClaimKind, Gossip, sign_claim
from fedorch.core.node.inputs import MemberState, MemberViews
from fedorch.gen.fedorch.v1 import swim_pb2
from fedorch.runtime.claim_signing import ClaimSigner
from fedorch.runtime.membership_metrics import SwimCollector
from fedorch.runtime.node_engine.engine import NodeAgent

from tests.unit.runtime.test_membership_left import BETA_ADDRESS
from tests.unit.runtime.test_membership_left import _alpha_with_beta as harness


def doubt_of_alpha(alpha, key: Ed25519PrivateKey, kind: ClaimKind, incarnation: int,
                   signer: str = "beta") -> swim_pb2.SwimBatch:
    body = ClaimBody(kind, alpha.agent.domain, incarnation, signer)
    claim = sign_claim(body, signer, ClaimSigner(Signer(signer, key)))
    return swim_pb2.SwimBatch(reply_to=BETA_ADDRESS,
                              messages=[swim_codec.encode(Gossip(signer, (claim,)))])


def looks(agent, alpha) -> list[bool]:
    """What each look told the hooks of a doubt (as the node engine's hook takes it)."""
    told: list[bool] = []
    agent.on_members_change.append(lambda: told.append(alpha.take_doubt()))
    return told


async def test_a_doubt_refuted_is_told_at_the_next_look_once(agent, monkeypatch) -> None:
    alpha, beta, clock = harness(agent, monkeypatch)
    told = looks(agent, alpha)
    woken: list[bool] = []
    monkeypatch.setattr(alpha, "wake", lambda: woken.append(True))
    alpha._observe()
    assert told == []  # nothing changed: no look, nothing told
    before = alpha.swim.incarnation
    clock.t += 1
    alpha.handle_batch("beta", doubt_of_alpha(alpha, beta.key, ClaimKind.SUSPECT, before))
    assert alpha.swim.incarnation > before  # refuted
    assert woken  # the loop looks now, not at its next timer
    alpha._observe()
    assert told == [True]
    alpha._observe()
    assert told == [True]  # told once
    # beta holds alpha DEAD at the incarnation alpha has moved past: doubted still.
    clock.t += 1
    alpha.handle_batch("beta", doubt_of_alpha(alpha, beta.key, ClaimKind.DEAD, before))
    alpha._observe()
    assert told == [True, True]
    [metric] = [m for m in SwimCollector(alpha.swim).collect()
                if m.name == "fedorch_swim_doubts_heard"]
    assert metric.samples[0].value == 2


async def test_a_forged_doubt_is_not_told(agent, monkeypatch) -> None:
    alpha, beta, clock = harness(agent, monkeypatch)
    told = looks(agent, alpha)
    forger = Ed25519PrivateKey.generate()  # not beta's key
    alpha.handle_batch("beta", doubt_of_alpha(alpha, forger, ClaimKind.SUSPECT,
                                              alpha.swim.incarnation))
    alpha._observe()
    assert True not in told and not alpha.take_doubt()


def test_the_node_engine_posts_the_doubt_in_its_member_view_input() -> None:
    posted: list[object] = []
    doubts = [True, False]
    views: list[tuple[MemberState, ...]] = [(), ()]
    holder = SimpleNamespace(
        node=SimpleNamespace(peers=[]), live_peers=lambda: ["n1"],
        member_changes=lambda: views.pop(0), post=posted.append,
        agent=SimpleNamespace(membership=SimpleNamespace(take_doubt=lambda: doubts.pop(0))))
    NodeAgent._members_changed(holder)  # type: ignore[arg-type]
    NodeAgent._members_changed(holder)  # type: ignore[arg-type]
    assert posted == [MemberViews((), doubted=True)]  # a look with no doubt: nothing
