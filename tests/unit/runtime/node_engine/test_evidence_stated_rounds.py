"""An acceptor of the node engine makes a record only of a round its coordinator stated
(core/node/takeover_proofs.py `check_stated`, applied by the authority table at the
gate, runtime/node_engine/boundary.py), with real keys: the coordinator's signature of
the round rides in the PREPARE's transaction, a participant keeps it, and a lying
participant cannot leave a record of a round of its own making at an acceptor."""

from __future__ import annotations

import random
import time
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer
from fedorch.core.identity.trust import TrustStore
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import ABORT, Accept, Ballot, PaxosPrepare, Promise, TxInfo
from fedorch.core.node import Message, Node
from fedorch.core.node.inputs import Submit
from fedorch.core.node.records import PrepareMsg, Timing, WfInfo
from fedorch.core.node.takeover_grants import StatedRound, round_statement, sign_round
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.node_engine.boundary import AuthorizedNode
from fedorch.runtime.node_engine.evidence import NodeEvidence, grant_signer

KEYS = {name: Ed25519PrivateKey.generate() for name in ("alpha", "beta", "gamma")}
TIMING = Timing(takeover_after_s=3.0)  # takeover composed, as the node engine always runs
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="a", capability="c")])
# gamma coordinates, beta holds the step, alpha is an acceptor that holds none.
TX = TxInfo("gamma.wf-1", 1, "gamma", ("beta",), ("alpha", "beta", "gamma"))


def _trust() -> TrustStore:
    return TrustStore({name: key.public_key() for name, key in KEYS.items()})


def _signer(name: str):
    return grant_signer(Signer(name, KEYS[name]))


def _signed(tx: TxInfo, by: str = "gamma") -> TxInfo:
    """`tx` carrying `by`'s signature of the round `tx` names (the coordinator's, when
    `by` is it)."""
    stated = sign_round(_signer(by), tx.workflow_id, tx.round, tx.coordinator,
                        tx.participants, tx.acceptors)
    return replace(tx, round_tx=stated.signature)


def _node(name: str, capacities: dict[str, int] | None = None) -> Node:
    return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                capacities=capacities or {}, timing=TIMING,
                peers=["alpha", "beta", "gamma"], rng=random.Random(1),
                evidence=NodeEvidence(_trust()), sign_grant=_signer(name),
                now=time.monotonic())


class Gate:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.metric: list[str] = []
        self.gate = AuthorizedNode(node, on_refused=self.metric.append)

    def step(self, src: str, msg: object) -> list:
        """Step `msg` from `src`; what the Node sends in answer."""
        self.gate.step(time.monotonic(), Message(src, msg))
        ready = self.node.ready()
        self.node.advance(ready)
        return [o.msg for o in (*ready.send_now, *ready.send_after_write)]

    def refused(self, src: str, msg: object) -> str:
        before = dict(self.gate.refused)
        with pytest.raises(RemoteProtocolError, match="refused"):
            self.step(src, msg)
        ready = self.node.ready()
        assert not ready.writes and not ready.send_now and not ready.send_after_write
        self.node.advance(ready)
        (reason,) = [r for r in self.gate.refused if self.gate.refused[r] != before.get(r, 0)]
        return reason


def test_a_lying_participant_leaves_no_record_of_a_round_its_coordinator_did_not_state():
    g = Gate(_node("alpha"))
    lies = [
        # The real round without its coordinator's signature.
        (PaxosPrepare(TX, Ballot(1, "beta")), "no_signed_round"),
        (Accept(TX, Ballot(1, "beta"), ABORT), "no_signed_round"),
        # Signed by the liar itself, not by the coordinator.
        (PaxosPrepare(_signed(TX, by="beta"), Ballot(1, "beta")), "bad_signed_round"),
        # The coordinator's genuine signature, under a round with other parties.
        (PaxosPrepare(TxInfo(TX.workflow_id, 1, "gamma", ("beta", "gamma"), TX.acceptors,
                             round_tx=_signed(TX).round_tx), Ballot(1, "beta")),
         "bad_signed_round"),
        # A round of gamma's workflow stated as the liar's own (the table's refusal).
        (PaxosPrepare(TxInfo(TX.workflow_id, 1, "beta", ("beta",), TX.acceptors),
                      Ballot(1, "beta")), "foreign_workflow"),
    ]
    for msg, reason in lies:
        assert g.refused("beta", msg) == reason
        assert g.node.acceptor.record(TX.key) is None and not g.node.state.acceptor
    assert g.metric == [reason for _, reason in lies]  # each counted (the agent's metric)
    # The round as its coordinator signed it: promised, and recorded.
    answers = g.step("beta", PaxosPrepare(_signed(TX), Ballot(1, "beta")))
    assert [type(a) for a in answers] == [Promise]
    assert g.node.acceptor.record(TX.key) is not None
    # Its coordinator states its own round with no signature: its envelope does.
    other = TxInfo("gamma.wf-2", 1, "gamma", ("beta",), ("alpha", "beta", "gamma"))
    assert [type(a) for a in g.step("gamma", PaxosPrepare(other, Ballot(1, "gamma")))] \
        == [Promise]


def test_an_acceptor_holding_the_prepare_refuses_the_round_stated_otherwise():
    """beta holds a step of gamma's round: a round of that key with other acceptors,
    stated by the other participant, is refused whatever it carries; the round of its
    PREPARE is taken."""
    g = Gate(_node("beta", {"c": 1}))
    tx = TxInfo("gamma.wf-3", 1, "gamma", ("alpha", "beta"), ("alpha", "beta", "gamma"))
    prepare = PrepareMsg(_signed(tx), (("a", "c"),), WfInfo(SPEC, {"a": "beta"}, "gamma"))
    (vote,) = g.step("gamma", prepare)
    assert vote.yes, vote
    other = TxInfo(tx.workflow_id, 1, "gamma", ("alpha", "beta"),
                   ("alpha", "beta", "delta", "gamma"))
    assert g.refused("alpha", PaxosPrepare(_signed(other), Ballot(1, "alpha"))) \
        == "round_mismatch"
    assert g.node.acceptor.record(tx.key) is None
    assert [type(a) for a in g.step("alpha", PaxosPrepare(tx, Ballot(1, "alpha")))] \
        == [Promise]


def test_a_coordinators_prepare_carries_its_signature_of_the_round():
    """Every round, an acceptor holding no step or not: the signature the acceptors
    check rides in the PREPARE's transaction, and the trust store verifies it."""
    node = _node("gamma", {"c": 1})
    node.step(time.monotonic(), Submit("gamma.wf-9", SPEC, placement={"a": "beta"}))
    ready = node.ready()
    node.advance(ready)
    prepares = [o.msg for o in (*ready.send_now, *ready.send_after_write)
                if type(o.msg) is PrepareMsg]
    assert prepares, ready
    evidence = NodeEvidence(_trust())
    for msg in prepares:
        tx = msg.tx
        assert tx.round_tx
        assert evidence.round_signed(StatedRound("gamma", round_statement(
            tx.workflow_id, tx.round, tx.coordinator, tx.participants, tx.acceptors,
            tx.created_ms), tx.round_tx))
