"""The end notices table (agent/runtime/store/end_notices.py): added to a schema-15 data
dir in place (migration 15 -> 16), a row per (workflow, domain)."""

from __future__ import annotations

from pathlib import Path

from fedorch.runtime.store import end_notices
from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION

from tests.unit.runtime.store.old_data_dir import data_dir_at, migrated, tables_in

WF = "alpha.0123abcd"


async def test_a_version_15_data_dir_gains_the_table_in_place(tmp_path: Path) -> None:
    assert "end_notices" in MIGRATIONS[15] and SCHEMA_VERSION >= 16  # migration 15 -> 16
    data = data_dir_at(tmp_path, 15, "INSERT INTO workflows(id, name, coordinator, state,"
                       f" spec, created_ms, updated_ms, epoch) VALUES('{WF}', 'n', 'alpha',"
                       " 'SUCCEEDED', x'00', 1, 2, 0);")
    assert "end_notices" not in tables_in(data)
    async with migrated(data) as store:
        assert (await store.get_workflow(WF)).state == "SUCCEEDED"
        assert await end_notices.owed(store) == []
        # Owed twice to one domain (an end written again): one row, the latest time.
        await store.apply(end_notices.owed_statements(WF, ["beta", "gamma"], 5))
        await store.apply(end_notices.owed_statements(WF, ["beta"], 7))
        assert await end_notices.owed(store) == [end_notices.OwedNotice(WF, "beta", 7),
                                                 end_notices.OwedNotice(WF, "gamma", 5)]
        assert await store.apply([end_notices.delivered_statement(WF, "beta")]) == [1]
        assert await store.apply([end_notices.delivered_statement(WF, "beta")]) == [0]
        assert [n.domain for n in await end_notices.owed(store)] == ["gamma"]
