"""Membership acts on a DEAD verdict only once it stood for the loss grace.

Agent alpha's membership hears beta (a real SWIM core with its own key) join; carol, a
third trusted domain, then tells alpha that beta is DEAD. Within the grace nothing
reaches the workflows: the hooks that post the Node's member view read beta SUSPECT
(`state_for_work`), never DEAD; SWIM's own view (members) shows DEAD all the same. A refutation within the grace withdraws the verdict for good; a
verdict that stands is acted on, once; a sign of life from beta starts the grace again;
and halfway through a silent grace alpha checks beta directly, whose answer refutes.
"""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.trust import TrustStore
from fedorch.core.membership import swim_codec
from fedorch.core.membership.loss_grace import CHECK_AT, Standing, Verdict
from fedorch.core.membership.swim import Swim
from fedorch.core.membership.swim_profiles import make_profile, typed_overrides
from fedorch.core.membership.swim_types import (
    ClaimBody,
    ClaimKind,
    Gossip,
    MemberState,
    sign_claim,
)
from fedorch.gen.fedorch.v1 import swim_pb2
from fedorch.runtime.claim_signing import ClaimSigner, ClaimVerifier
from fedorch.runtime.config import gossip_profile_name
from fedorch.runtime.membership import Membership

from tests.unit.conftest import _agent
from tests.unit.runtime.test_config import MINIMAL, _error, _parse
from tests.unit.runtime.test_membership_left import BETA_ADDRESS
from tests.unit.runtime.test_membership_left import _alpha_with_beta as _left_harness
from tests.unit.runtime.test_wakeups import _running, _until

CAROL_ADDRESS = "127.0.0.1:3"
CAROL_KEY = Ed25519PrivateKey.generate()


def _alpha_with_beta(agent, monkeypatch):
    """test_membership_left's alpha and beta, beta trusting carol too (so that it hears
    of carol's verdict about it, and refutes)."""
    alpha, beta, clock = _left_harness(agent, monkeypatch)
    trust = TrustStore({"beta": beta.key.public_key(), "carol": CAROL_KEY.public_key(),
                        "alpha": agent.signer.public_key()})
    core = beta.core
    beta.core = Swim("beta", BETA_ADDRESS, alpha.profile, ClaimSigner(Signer("beta", beta.key)),
                     ClaimVerifier(trust), random.Random(7), clock(),
                     incarnation=core.incarnation)
    beta.core.join(clock(), [agent.endpoint])
    beta.deliver(clock())
    alpha._observe()
    assert alpha.swim.member("beta").state is MemberState.ALIVE
    return alpha, beta, clock


class Calls:
    """The losses membership's hooks (on_members_change, which post the Node's member
    view) were shown: each time a look told them beta's state for the workflows became
    DEAD, the state the Node acts on."""

    def __init__(self, agent) -> None:
        self.acted: list[str] = []
        self._last = ""

        def hook() -> None:
            state = agent.membership.state_for_work("beta")
            if state == "DEAD" and self._last != "DEAD":
                self.acted.append("beta")
            self._last = state
        agent.on_members_change.append(hook)


def _carol_says_beta_is_dead(alpha, now: float) -> None:
    alpha.agent.trust.add("carol", CAROL_KEY.public_key())
    body = ClaimBody(ClaimKind.DEAD, "beta", alpha.swim.member("beta").incarnation, "carol")
    claim = sign_claim(body, "carol", ClaimSigner(Signer("carol", CAROL_KEY)))
    batch = swim_pb2.SwimBatch(reply_to=CAROL_ADDRESS, messages=[
        swim_codec.encode(Gossip("carol", (claim,)))])
    alpha.handle_batch("carol", batch)
    assert alpha.swim.member("beta").state is MemberState.DEAD


def _sent(alpha, monkeypatch) -> list:
    """What alpha's membership sends from now on, (address, message), instead of sending it."""
    sent: list = []
    monkeypatch.setattr(alpha, "_flush", lambda: sent.extend(alpha.swim.datagrams_to_send()))
    return sent


def _beta_answers(alpha, beta, sent: list, now: float) -> None:
    """beta gets what alpha sent it, and alpha gets beta's answer (as a Swim call's reply)."""
    batch = [m for address, m in sent if address == BETA_ADDRESS]
    sent.clear()
    for msg in batch:
        beta.core.handle_message(now, alpha.agent.endpoint, msg)
    beta.deliver(now)


async def test_a_verdict_refuted_within_the_grace_acts_on_nothing(
        agent, monkeypatch) -> None:
    alpha, beta, clock = _alpha_with_beta(agent, monkeypatch)
    calls = Calls(agent)
    sent = _sent(alpha, monkeypatch)
    clock.t += 1
    _carol_says_beta_is_dead(alpha, clock())
    alpha._observe()
    assert alpha.grace.standing("beta") is Standing.HELD
    # SWIM's view is shown as it is; the workflows read a doubtful member, not a lost one.
    assert {m.domain: m.state for m in alpha.members()}["beta"] == "DEAD"
    assert alpha.state_for_work("beta") == "SUSPECT" and alpha.lost("beta") is None

    clock.t += 0.4 * alpha.grace.grace
    # beta hears of its verdict (from carol, say) and refutes; its refutation reaches
    # alpha on beta's next message to it.
    beta.core.handle_message(clock(), CAROL_ADDRESS, Gossip("carol", (_dead_claim(alpha),)))
    clock.t += 1.0
    beta.core.handle_timer(clock())  # a probe (of alpha, the only member it knows)
    beta.deliver(clock())
    sent.clear()
    assert alpha.swim.member("beta").state is MemberState.ALIVE
    alpha._observe()
    assert alpha.grace.standing("beta") is Standing.NONE
    assert alpha.grace.stats["withdrawn"] == 1

    for _ in range(3):  # well past the grace
        clock.t += alpha.grace.grace
        alpha._observe()
    assert calls.acted == [] and alpha.state_for_work("beta") == "ALIVE"


def _dead_claim(alpha):
    body = ClaimBody(ClaimKind.DEAD, "beta", alpha.swim.member("beta").incarnation, "carol")
    return sign_claim(body, "carol", ClaimSigner(Signer("carol", CAROL_KEY)))


async def test_a_verdict_that_stands_for_the_grace_is_acted_on_once(
        agent, monkeypatch) -> None:
    alpha, beta, clock = _alpha_with_beta(agent, monkeypatch)
    calls = Calls(agent)
    _sent(alpha, monkeypatch)  # the direct check goes nowhere: beta is gone
    clock.t += 1
    verdict_at = clock()
    _carol_says_beta_is_dead(alpha, clock())
    alpha._observe()
    # The membership loop sleeps until the grace's next deadline (the check, then its end).
    assert alpha.grace.get_timer() == verdict_at + CHECK_AT * alpha.grace.grace
    clock.t = alpha.grace.get_timer()
    alpha._observe()  # the check
    assert alpha.grace.get_timer() == verdict_at + alpha.grace.grace
    clock.t = verdict_at + alpha.grace.grace - 0.01
    alpha._observe()
    assert calls.acted == [] and alpha.state_for_work("beta") == "SUSPECT"

    clock.t = verdict_at + alpha.grace.grace
    alpha._observe()
    assert calls.acted == ["beta"]
    assert alpha.lost("beta") == "DEAD" and alpha.state_for_work("beta") == "DEAD"
    for _ in range(3):
        clock.t += alpha.grace.grace
        alpha._observe()
    assert calls.acted == ["beta"]


async def test_a_sign_of_life_during_the_grace_starts_it_again(
        agent, monkeypatch) -> None:
    alpha, beta, clock = _alpha_with_beta(agent, monkeypatch)
    calls = Calls(agent)
    _sent(alpha, monkeypatch)
    clock.t += 1
    _carol_says_beta_is_dead(alpha, clock())
    alpha._observe()
    grace = alpha.grace.grace
    clock.t += grace - 1
    alpha.heard_from("beta")  # a call beta signed reached us: alive then
    heard_at = clock()
    assert alpha.grace.standing("beta") is Standing.HEARD
    clock.t += 2  # past the verdict's grace, not past the sign of life's
    alpha._observe()
    assert calls.acted == []
    clock.t = heard_at + grace
    alpha._observe()
    assert calls.acted == ["beta"]


async def test_the_direct_check_halfway_through_the_grace_gets_the_refutation(
        agent, monkeypatch) -> None:
    alpha, beta, clock = _alpha_with_beta(agent, monkeypatch)
    calls = Calls(agent)
    sent = _sent(alpha, monkeypatch)
    clock.t += 1
    _carol_says_beta_is_dead(alpha, clock())
    alpha._observe()
    sent.clear()
    clock.t = alpha.grace.get_timer()  # halfway
    alpha._observe()
    to_beta = [m for address, m in sent if address == BETA_ADDRESS]
    assert len(to_beta) == 1 and to_beta[0].claims[0] == _dead_claim(alpha)
    _beta_answers(alpha, beta, sent, clock())  # beta refutes in its answer
    alpha._observe()
    assert alpha.swim.member("beta").state is MemberState.ALIVE
    assert alpha.grace.standing("beta") is Standing.NONE
    clock.t += 2 * alpha.grace.grace
    alpha._observe()
    assert calls.acted == []


def test_the_grace_is_the_profiles_and_gossip_tuning_overrides_it(agent) -> None:
    assert {n: make_profile(n).loss_grace for n in ("lan", "local", "wan")} == {
        "lan": 5.0, "local": 3.0, "wan": 30.0}
    assert Membership(agent, incarnation=1).grace.grace == 5.0  # the agent's lan default
    config = _parse(MINIMAL + "gossip: {profile: local, tuning: {loss_grace: 1.5}}\n")
    assert make_profile(gossip_profile_name(config.gossip.profile),
                        **typed_overrides(dict(config.gossip.tuning))).loss_grace == 1.5
    assert "loss_grace" in _error(MINIMAL + "gossip: {tuning: {loss_grace: -1}}\n")
    # Reaped before its grace ran out, a verdict would never be acted on.
    assert "dead_retention" in _error(MINIMAL + "gossip: {tuning: {loss_grace: 60}}\n")


@pytest.fixture
async def slow_probes(tmp_path):
    # Probes 5 s apart (the wan profile) and a short grace: the grace's deadlines are the
    # loop's earliest.
    async for a in _agent(tmp_path, "gossip: {profile: wan, tuning: {loss_grace: 0.4}}\n"):
        yield a


async def test_the_membership_loop_sleeps_until_the_graces_deadline(slow_probes) -> None:
    agent = slow_probes
    runner = await _running(agent)
    try:
        membership = agent.membership
        # SWIM's first probe comes at a random moment within the first period: wait until
        # its next deadline is well past this grace's, so that only the grace wakes the loop.
        await _until(lambda: membership.sleep.parked
                     and membership.swim.get_timer() > agent.now() + 1.0,
                     "membership to park with its next probe over a second away",
                     deadline_s=15)
        # A verdict as the loop takes it from SWIM's events (beta is no member: nothing
        # else happens), then the loop is woken once, as an event wakes it.
        [held] = membership.grace.step(agent.now(), Verdict("beta", 3))
        grace_timer = membership.grace.get_timer()
        # Nothing else would wake it before the grace is over.
        assert grace_timer < held.until < membership.swim.get_timer()
        turns = membership.sleep.wakeups
        membership.wake()
        await _until(lambda: membership.sleep.wakeups > turns and membership.sleep.parked,
                     "the loop to park again")
        assert membership.sleep.deadline == grace_timer  # the check, halfway
        # Woken by its own deadlines only: the check, then the end of the grace.
        await _until(lambda: membership.lost("beta") == "DEAD", "the grace to be acted on",
                     deadline_s=10)
        assert membership.grace.stats["checks"] == 1
    finally:
        agent.stop()
        await runner
