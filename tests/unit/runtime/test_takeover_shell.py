"""Coordinator takeover, the shell's pure parts: its config, the epoch columns, the epoch
held, and the end-notice and compensation rows of the authority table with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.negotiation.messages import TxInfo
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.keyed_locks import KeyedLocks
from fedorch.runtime.round_proofs import RoundProofs
from fedorch.runtime.store.schema import MIGRATIONS
from fedorch.runtime.store.store import AcceptorRow, Store, WorkflowRow
from fedorch.runtime.takeover import Takeovers, held

from tests.unit.runtime.test_config import MINIMAL, _error, _parse

WF = "coord.0123abcd"


def _row(**kw) -> WorkflowRow:
    fields: dict = dict(id=WF, name="w", coordinator="coord", state="RUNNING", spec=b"",
                        placement={"a": "p1", "b": "p2"}, round=1)
    fields.update(kw)
    return WorkflowRow(**fields)


def test_takeover_after_s_defaults_to_ten_seconds_and_must_be_positive() -> None:
    assert _parse(MINIMAL).negotiation.takeover_after_s == 10
    assert _parse(MINIMAL + "negotiation: {takeover_after_s: 2.5}\n"
                  ).negotiation.takeover_after_s == 2.5
    assert "takeover_after_s" in _error(MINIMAL + "negotiation: {takeover_after_s: 0}\n")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data")
    try:
        yield s
    finally:
        await s.close()


async def test_the_epoch_columns_round_trip(store: Store) -> None:
    assert "granted_epoch" in MIGRATIONS[7]  # migration 8 (7 -> 8)
    await store.save_workflow(_row(coordinator="p1", epoch=1, granted_epoch=2,
                                   granted_to="p2"))
    row = await store.get_workflow(WF)
    assert (row.coordinator, row.epoch, row.granted_epoch, row.granted_to) == (
        "p1", 1, 2, "p2")


def test_held_is_the_higher_of_followed_and_granted() -> None:
    assert held(_row()) == (0, "coord")
    assert held(_row(coordinator="p1", epoch=1, granted_epoch=1, granted_to="p1")) == (1, "p1")
    assert held(_row(granted_epoch=1, granted_to="p1")) == (1, "p1")  # our own claim


@pytest.mark.parametrize("kind", ["cancel", "compensate"])
def test_a_successor_may_end_and_compensate_only_in_its_epoch(kind: str) -> None:
    parts = {"p1", "p2"}
    assert authorize(kind, "p1", Facts(workflow_id=WF, epoch=1, held=(1, "p1"),
                                       participants=parts))
    assert authorize(kind, "coord", Facts(workflow_id=WF, epoch=0, held=(0, "coord"),
                                          participants=parts))
    for sender, facts, reason in [
        ("coord", Facts(workflow_id=WF, epoch=0, held=(1, "p1"), participants=parts),
         "stale_epoch"),
        ("p2", Facts(workflow_id=WF, epoch=1, held=(1, "p1"), participants=parts),
         "not_coordinator"),
        ("outsider", Facts(workflow_id=WF, epoch=2, held=(1, "p1"), participants=parts),
         "not_participant"),
        ("p1", Facts(workflow_id=WF, epoch=0), "not_coordinator"),
    ]:
        with pytest.raises(Refused) as refused:
            authorize(kind, sender, facts)
        assert refused.value.reason == reason, (sender, facts)


# ---- an acceptor that holds no step answers claims (Paxos Commit) -----------------------

class _Counter:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def labels(self, reason: str) -> _Counter:
        self._reason = reason
        return self

    def inc(self) -> None:
        self.counts[self._reason] = self.counts.get(self._reason, 0) + 1


def _acceptor_only(store: Store, domain: str = "x") -> tuple[Takeovers, SimpleNamespace]:
    """The claim path of the shell around a real store, for an agent with no workflow row
    (nothing else of the agent is reached on it)."""
    agent = SimpleNamespace(domain=domain, store=store, active={}, trust=None,
                            metrics=SimpleNamespace(rejected_messages=_Counter()))
    shell = Takeovers.__new__(Takeovers)
    shell.agent, shell._granting, shell._grant_rows = agent, KeyedLocks(), None
    shell.proofs = RoundProofs(agent)  # claims here carry no proof: never opened
    return shell, agent


async def _accepted_for(store: Store, acceptors: tuple[str, ...]) -> None:
    tx = TxInfo(WF, 1, "coord", ("p1",), acceptors)
    await store.save_acceptor(AcceptorRow(WF, 1, wire.tx_bytes(tx)))


def _claim(epoch: int) -> peer_pb2.TakeoverClaim:
    return peer_pb2.TakeoverClaim(workflow_id=WF, epoch=epoch)


async def test_an_extra_acceptor_grants_an_epoch_once_and_durably(store: Store, tmp_path) -> None:
    assert "takeover_grants" in MIGRATIONS[12]  # migration 13 (12 -> 13)
    await _accepted_for(store, ("coord", "p1", "x"))
    shell, _ = _acceptor_only(store)
    answer = await shell.on_claim("p1", _claim(1))
    assert answer.granted and (answer.held_epoch, answer.holder) == (1, "p1")
    assert await store.select("SELECT epoch, holder FROM takeover_grants") == [(1, "p1")]
    again = await shell.on_claim("p1", _claim(1))  # the same claim again: allowed
    assert again.granted
    await store.close()
    reopened = await Store.open(tmp_path / "data")  # the grant survives a restart
    try:
        shell, _ = _acceptor_only(reopened)
        lower = await shell.on_claim("p1", _claim(1))
        assert lower.granted  # still p1's
        assert (await shell.on_claim("p1", _claim(2))).granted
        assert await reopened.select("SELECT epoch, holder FROM takeover_grants") == [(2, "p1")]
        denied = await shell.on_claim("p1", _claim(1))  # below the held epoch
        assert not denied.granted and (denied.held_epoch, denied.holder) == (2, "p1")
    finally:
        await reopened.close()


async def test_two_claimants_of_one_epoch_get_one_grant(store: Store) -> None:
    tx = TxInfo(WF, 1, "coord", ("p1", "p2"), ("coord", "p1", "p2", "x"))
    await store.save_acceptor(AcceptorRow(WF, 1, wire.tx_bytes(tx)))
    shell, _ = _acceptor_only(store)
    first, second = await asyncio.gather(shell.on_claim("p1", _claim(1)),
                                         shell.on_claim("p2", _claim(1)))
    assert [first.granted, second.granted].count(True) == 1
    loser = second if first.granted else first
    assert loser.held_epoch == 1 and loser.holder in {"p1", "p2"}


async def test_an_extra_acceptor_refuses_strangers_and_rounds_it_never_accepted(
        store: Store) -> None:
    shell, agent = _acceptor_only(store)
    unknown = await shell.on_claim("p1", _claim(1))  # no record of the workflow
    assert not unknown.granted and unknown.error
    await _accepted_for(store, ("coord", "p1", "x"))
    outsider = await shell.on_claim("y", _claim(1))  # not a participant of its round
    assert not outsider.granted and outsider.error
    assert agent.metrics.rejected_messages.counts == {"not_participant": 1}
    other, _ = _acceptor_only(store, domain="z")  # a domain not among its acceptors
    assert not (await other.on_claim("p1", _claim(1))).granted
    assert await store.select("SELECT * FROM takeover_grants") == []
