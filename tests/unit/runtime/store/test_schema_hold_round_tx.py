"""The coordinator's signed round kept with a participant's hold (`hold_txs.round_tx`):
added to a schema-16 data dir in place (migration 16 -> 17), empty for the holds
written before, and written with the reservation as given."""

from __future__ import annotations

from pathlib import Path

from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION
from fedorch.runtime.store.store import HoldTxRow, ReservationRow

from tests.unit.runtime.store.old_data_dir import data_dir_at, migrated

WF = "alpha.0123abcd"


async def test_a_version_16_data_dir_gains_the_column_in_place(tmp_path: Path) -> None:
    assert "round_tx" in MIGRATIONS[16] and SCHEMA_VERSION >= 17  # migration 16 -> 17
    data = data_dir_at(tmp_path, 16, "INSERT INTO hold_txs(workflow_id, round, tx, spec,"
                       f" placement) VALUES('{WF}', 1, x'01', x'02', '{{}}');")
    async with migrated(data) as store:
        before = await store.get_hold_tx(WF, 1)
        assert before is not None and before.round_tx == b""  # a hold from before: none
        signed = b"\x0a\x03abc\x12\x40" + bytes(64)
        await store.save_reservation(
            ReservationRow(WF, 2, "alpha", "prepared", [("s", "cap")], 1),
            tx=HoldTxRow(WF, 2, b"\x01", b"\x02", {"s": "beta"}, "", signed))
        assert (await store.get_hold_tx(WF, 2)).round_tx == signed  # the bytes as given
