"""Coordinator takeover, the shell's pure parts: its config, the epoch columns, the epoch
held, and the end-notice and compensation rows of the authority table with it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fedorch.core.identity.authority import Facts, Refused, authorize
from fedorch.runtime.store.schema import MIGRATIONS
from fedorch.runtime.store.store import Store, WorkflowRow
from fedorch.runtime.takeover import held

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
