"""The node engine's votes with real keys (runtime/node_engine/evidence.py wiring,
core/node/votes.py, the gate of runtime/node_engine/boundary.py): a participant's YES
leaves signed with its domain key, and a coordinator that lies cannot make a COMMIT
certificate in which another domain voted YES."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.key_records import make_revocation
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import Decision, TxInfo, Value, VoteIn
from fedorch.core.node import Message, Node
from fedorch.core.node.records import PrepareMsg, Timing, VoteMsg, WfInfo
from fedorch.core.node.takeover_grants import sign_round
from fedorch.core.node.votes import Votes
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.node_engine.boundary import AuthorizedNode
from fedorch.runtime.node_engine.evidence import NodeEvidence, grant_signer, vote_signer

KEYS = {name: Ed25519PrivateKey.generate() for name in ("alpha", "beta", "gamma")}
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="a", capability="c"),
                                              spec_pb2.StepSpec(id="b", capability="c")])
# gamma coordinates (and lies); alpha and beta hold a step each.
TX = TxInfo("gamma.wf-1", 1, "gamma", ("alpha", "beta"), ("alpha", "beta", "gamma"))


def _engine_node(name: str, trust: TrustStore) -> Node:
    """A Node wired as the node engine wires it (engine.py `_build`)."""
    evidence = NodeEvidence(trust)
    signer = Signer(name, KEYS[name])
    return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"c": 2},
                timing=Timing(takeover_after_s=3.0), peers=["alpha", "beta", "gamma"],
                rng=random.Random(1), evidence=evidence, sign_grant=grant_signer(signer),
                sign_vote=vote_signer(signer, trust), verify_vote=evidence.verify_vote,
                now=time.monotonic())


class Participant:
    """beta, prepared in TX (its YES sent); its gate counts refusals as the agent does."""

    def __init__(self) -> None:
        self.trust = TrustStore({n: k.public_key() for n, k in KEYS.items()})
        self.node = _engine_node("beta", self.trust)
        self.metric: list[str] = []
        self.gate = AuthorizedNode(self.node, on_refused=self.metric.append)
        stated = sign_round(grant_signer(Signer("gamma", KEYS["gamma"])), TX.workflow_id,
                            TX.round, "gamma", TX.participants, TX.acceptors)
        prepare = PrepareMsg(replace(TX, round_tx=stated.signature), (("b", "c"),),
                             WfInfo(SPEC, {"a": "alpha", "b": "beta"}, "gamma"))
        (self.vote,) = self.step("gamma", prepare)
        assert type(self.vote) is VoteMsg and self.vote.yes

    def step(self, src: str, msg: object) -> list:
        self.gate.step(time.monotonic(), Message(src, msg))
        ready = self.node.ready()
        self.node.advance(ready)
        return [o.msg for o in (*ready.send_now, *ready.send_after_write)]


def _yes(voter: str, *, key_of: str | None = None) -> VoteIn:
    """`voter`'s YES of TX, signed with `key_of`'s domain key (its own by default)."""
    signer = Signer(key_of or voter, KEYS[key_of or voter])
    (raw,) = Votes(voter, signer.sign, None).seal([(TX.key, True)])
    return VoteIn(TX.round, voter, True, "", raw)


def test_the_yes_leaves_signed_with_the_domain_key():
    beta = Participant()
    checker = NodeEvidence(TrustStore({n: k.public_key() for n, k in KEYS.items()}))
    assert Votes("gamma", None, checker.verify_vote).holds(TX.key, "beta", True,
                                                           beta.vote.evidence)


def test_a_lying_coordinator_cannot_show_a_yes_another_domain_did_not_sign():
    beta = Participant()
    own = VoteIn(TX.round, "beta", True, "", beta.vote.evidence)
    for alpha in (_yes("alpha", key_of="gamma"),  # made with the coordinator's own key
                  VoteIn(TX.round, "alpha", True, "", b"gamma.wf-1/1/alpha/yes")):
        with pytest.raises(RemoteProtocolError, match="forged_vote"):
            beta.step("gamma", Decision(TX.key, Value(True, (alpha, own)),
                                        "gamma"))
        assert TX.key not in beta.node.state.learned
    assert beta.metric == ["forged_vote", "forged_vote"]  # the agent's counter
    # alpha's own signed YES: the COMMIT is taken, the step committed here.
    beta.step("gamma", Decision(TX.key, Value(True, (_yes("alpha"), own)), "gamma"))
    assert beta.node.state.learned[TX.key].commit and TX.workflow_id in beta.node.state.committed


def test_a_revoked_voters_yes_counts_for_nothing():
    beta = Participant()
    alpha_key = KEYS["alpha"]
    changed, refused = beta.trust.learn([make_revocation(
        "alpha", alpha_key.public_key(), alpha_key, serial=1,
        now_ms=int(time.time() * 1000))])
    assert changed and refused == 0
    own = VoteIn(TX.round, "beta", True, "", beta.vote.evidence)
    with pytest.raises(RemoteProtocolError, match="forged_vote"):
        beta.step("gamma", Decision(TX.key, Value(True, (_yes("alpha"), own)), "gamma"))
    assert TX.key not in beta.node.state.learned and beta.metric == ["forged_vote"]
