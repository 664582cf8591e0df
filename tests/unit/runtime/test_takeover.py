"""Coordinator takeover, the shell's pure parts: its config, the epoch columns, the epoch
held, and the end-notice and compensation rows of the authority table with it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.core.negotiation.messages import TxInfo
from fedorch.runtime import paxos_wire as wire
from fedorch.runtime.store.schema import MIGRATIONS
from fedorch.runtime.store.store import AcceptorRow, Store, WorkflowRow
from fedorch.runtime.takeover import held

from tests.unit.runtime.test_config import MINIMAL, _error, _parse
from tests.unit.runtime.test_round_proofs import (
    _acceptor,
    claim,
    commit,
    proven_claim,
    signed_round,
)

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

async def _accepted_for(store: Store, acceptors: tuple[str, ...]) -> None:
    tx = TxInfo(WF, 1, "coord", ("p1",), acceptors)
    await store.save_acceptor(AcceptorRow(WF, 1, wire.tx_bytes(tx)))


# An acceptor holding no step grants only on the round's proof, whatever it holds
# (tests/unit/runtime/test_round_proofs.py, test_consensus_planted_records.py): the claims here
# carry one, made with real signatures.


async def test_an_extra_acceptor_grants_an_epoch_once_and_durably(store: Store, tmp_path) -> None:
    assert "takeover_grants" in MIGRATIONS[12]  # migration 13 (12 -> 13)
    await _accepted_for(store, ("coord", "p1", "x"))
    shell, _ = _acceptor(store)
    answer = await shell.on_claim("p1", proven_claim(1))
    assert answer.granted and (answer.held_epoch, answer.holder) == (1, "p1")
    assert await store.select("SELECT epoch, holder FROM takeover_grants") == [(1, "p1")]
    again = await shell.on_claim("p1", proven_claim(1))  # the same claim again: allowed
    assert again.granted
    await store.close()
    reopened = await Store.open(tmp_path / "data")  # the grant survives a restart
    try:
        shell, _ = _acceptor(reopened)
        lower = await shell.on_claim("p1", proven_claim(1))
        assert lower.granted  # still p1's
        assert (await shell.on_claim("p1", proven_claim(2))).granted
        assert await reopened.select("SELECT epoch, holder FROM takeover_grants") == [(2, "p1")]
        denied = await shell.on_claim("p1", proven_claim(1))  # below the held epoch
        assert not denied.granted and (denied.held_epoch, denied.holder) == (2, "p1")
    finally:
        await reopened.close()


async def test_two_claimants_of_one_epoch_get_one_grant(store: Store) -> None:
    tx = TxInfo(WF, 1, "coord", ("p1", "p2"), ("coord", "p1", "p2", "x"))
    await store.save_acceptor(AcceptorRow(WF, 1, wire.tx_bytes(tx)))
    shell, _ = _acceptor(store)
    round_tx = signed_round(participants=("p1", "p2"), acceptors=("coord", "p1", "p2", "x"))
    first, second = await asyncio.gather(
        shell.on_claim("p1", claim(1, round_tx, commit("p1", "p2"))),
        shell.on_claim("p2", claim(1, round_tx, commit("p1", "p2", signer="p2"))))
    assert [first.granted, second.granted].count(True) == 1
    loser = second if first.granted else first
    assert loser.held_epoch == 1 and loser.holder in {"p1", "p2"}


async def test_an_extra_acceptor_refuses_strangers_and_rounds_it_never_accepted(
        store: Store) -> None:
    shell, agent = _acceptor(store)
    unknown = await shell.on_claim("p1", claim(1))  # no record of the workflow, no proof
    assert not unknown.granted and unknown.error
    assert agent.metrics.rejected_messages.counts == {}  # no fault of the claimant
    await _accepted_for(store, ("coord", "p1", "x"))
    bare = await shell.on_claim("p1", claim(1))  # its record alone is no proof
    assert not bare.granted and agent.metrics.rejected_messages.counts == {"no_proof": 1}
    outsider = await shell.on_claim("y", proven_claim(1))  # not a participant of its round
    assert not outsider.granted and outsider.error
    assert agent.metrics.rejected_messages.counts == {"no_proof": 1, "not_participant": 1}
    other, counted = _acceptor(store, domain="p2")  # a domain not among its acceptors
    assert not (await other.on_claim("p1", proven_claim(1))).granted
    assert counted.metrics.rejected_messages.counts == {"not_acceptor": 1}
    assert await store.select("SELECT * FROM takeover_grants") == []
