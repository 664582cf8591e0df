"""A trusted domain that lies plants an acceptor record through the real PaxosPrepare
path (a round of its own making, itself the only participant), then claims a takeover
epoch from that acceptor, which holds no step of the workflow: nothing is granted on the
record (agent/core/workflow/acceptor_grant.py), the attempt is refused with its reason
and counted, and the honest claimant's proof still grants. Real store, real signatures,
the real acceptor shell (agent/runtime/consensus.py) and claim path
(agent/runtime/takeover.py)."""

from __future__ import annotations

import os
import random
from types import SimpleNamespace

import pytest
from fedorch.core.identity.envelope import open_message, seal
from fedorch.core.identity.replay import ReplayGuard
from fedorch.core.negotiation.messages import Ballot, PaxosPrepare, Promise, TxInfo
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.consensus import Consensus

from tests.unit.runtime.test_round_proofs import (
    ACCEPTORS,
    SIGNERS,
    TRUST,
    WF,
    _acceptor,
    _grants,
    claim,
    proven_claim,
    store,  # noqa: F401 - the fixture
)

PLANTED_ROUND = 7  # no round the coordinator ever ran


def _consensus(agent: SimpleNamespace) -> Consensus:
    """The acceptor shell of an agent that holds no step of WF (no hold, no row)."""
    agent.config = SimpleNamespace(negotiation=SimpleNamespace(prepare_timeout_s=2.0,
                                                               lease_s=30.0))
    agent.rng = random.Random(1)
    agent.now = lambda: 100.0
    agent.participant = SimpleNamespace(hold=lambda key: None, keys_of=lambda wf: [])
    agent.coordination = SimpleNamespace(tx_of=lambda key: None)
    return Consensus(agent)


async def _plant(consensus: Consensus, planter: str, participants: tuple[str, ...],
                 acceptors: tuple[str, ...] | None = None,
                 round_: int = PLANTED_ROUND) -> object:
    """`planter` sends x a signed PaxosPrepare of a round of its own making, as the
    peer service hands it on: opened (signature, recipient, replay) and then routed."""
    tx = TxInfo(WF, round_, "coord", participants, acceptors or ("coord", planter, "x"))
    kind, message = wire.encode(PaxosPrepare(tx, Ballot(1, planter)))
    envelope = seal(SIGNERS[planter], recipient="x", now_ms=1_000, nonce=os.urandom(16),
                    **{kind: message})
    body = open_message(envelope, TRUST, ReplayGuard(60_000), me="x", now_ms=1_000,
                        expect="paxos_prepare")
    return await consensus.on_rpc(body)


@pytest.mark.parametrize("planter", ["p1", "mallory"])
async def test_a_planted_record_grants_its_planter_nothing(store, planter) -> None:  # noqa: F811
    """p1 (a participant of the committed round, lying) and mallory (none) each plant a
    round naming themselves its only participant; their claims are refused."""
    shell, agent = _acceptor(store)
    kind, reply = await _plant(_consensus(agent), planter, (planter,))
    # The acceptor took it: a promise, and a record of the planted round on disk.
    assert kind == "paxos_promise"
    assert isinstance(wire.decode(_opened(kind, reply), TRUST), Promise)
    rows = await store.select("SELECT round FROM acceptor_records WHERE workflow_id = ?", (WF,))
    assert rows == [(PLANTED_ROUND,)]

    bare = await shell.on_claim(planter, claim())
    assert not bare.granted and "no proof" in bare.error
    assert agent.metrics.rejected_messages.counts == {"no_proof": 1}
    assert await _grants(store) == []

    if planter == "mallory":  # the real round's proof, shown by an outsider: not its own
        stolen = await shell.on_claim("mallory", proven_claim())
        assert not stolen.granted and "mallory is no participant" in stolen.error
        assert agent.metrics.rejected_messages.counts == {"no_proof": 1, "not_participant": 1}
        assert await _grants(store) == []

    # The honest claim, with the coordinator's signed round and its COMMIT, is granted
    # beside the planted record (undecided: it contradicts nothing), naming the real
    # round and electorate.
    honest = await shell.on_claim("p1", proven_claim())
    assert honest.granted and honest.committed_round == 1
    assert list(honest.electorate) == sorted(ACCEPTORS)
    assert await _grants(store) == [(WF, 1, "p1")]


async def test_a_record_of_the_real_round_grants_nothing_on_its_own(store) -> None:  # noqa: F811
    """Not even a record that is the committed round's grants without the proof (here
    from p1's recovery PaxosPrepare): the acceptor cannot tell a stated round from a
    true one, so it asks every claimant for the proof, and the record agrees with it."""
    shell, agent = _acceptor(store)
    await _plant(_consensus(agent), "p1", ("p1",), ACCEPTORS, round_=1)
    answer = await shell.on_claim("p1", claim())
    assert not answer.granted and agent.metrics.rejected_messages.counts == {"no_proof": 1}
    assert (await shell.on_claim("p1", proven_claim())).granted


def _opened(kind: str, reply: object) -> peer_pb2.Body:
    body = peer_pb2.Body(sender="x", recipient="")
    getattr(body, kind).CopyFrom(reply)
    return body
