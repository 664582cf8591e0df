"""The coordinator's signed round kept with an acceptor's record
(`acceptor_records.round_tx`): added to a schema-17 data dir in place (migration
17 -> 18), empty for the records written before (an older agent's, still read back and
answered from), and written and read back as given."""

from __future__ import annotations

from pathlib import Path

from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION
from fedorch.runtime.store.store import AcceptorRow, Store

from tests.unit.runtime.store.old_data_dir import data_dir_at, migrated

WF = "beta.0123abcd"


async def test_a_version_17_data_dir_gains_the_column_in_place(tmp_path: Path) -> None:
    assert "acceptor_records ADD COLUMN round_tx" in MIGRATIONS[17]  # migration 17 -> 18
    assert SCHEMA_VERSION >= 18
    data = data_dir_at(tmp_path, 17, "INSERT INTO acceptor_records(workflow_id, round, tx,"
                       f" promised_n, promised_by) VALUES('{WF}', 1, x'01', 3, 'delta');")
    async with migrated(data) as store:
        before = await store.get_acceptor_record(WF, 1)
        # An older agent's record: kept, with its promise, and no signed round.
        assert before == AcceptorRow(WF, 1, b"\x01", (3, "delta"), None, None, None, b"")
        signed = b"\x0a\x03abc\x12\x40" + bytes(64)
        await store.save_acceptor(AcceptorRow(WF, 2, b"\x02", (5, "delta"), round_tx=signed))
        assert (await store.get_acceptor_record(WF, 2)).round_tx == signed  # as given
        # The statement the coordinator's own acceptor writes with its proposal cell
        # keeps it too.
        await store.apply([Store.proposal_statement(WF, 3, "COMMIT", b"v"),
                           Store.acceptor_statement(AcceptorRow(WF, 3, b"\x03", round_tx=signed),
                                                    if_proposed_commit=True)])
        assert (await store.get_acceptor_record(WF, 3)).round_tx == signed
