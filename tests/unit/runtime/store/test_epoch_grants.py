"""A successor's epoch grants on disk (agent/runtime/store/epoch_grants.py): kept byte for
byte, never replaced by an older epoch's, added to a schema-14 data dir in place, and
deleted by retention with their workflow."""

from __future__ import annotations

from pathlib import Path

from fedorch.core.workflow.lifecycle import TERMINAL_NAMES
from fedorch.gen.fedorch.v1 import keys_pb2, peer_pb2
from fedorch.runtime.store import compaction
from fedorch.runtime.store.epoch_grants import grant_statement, grants_of
from fedorch.runtime.store.schema import MIGRATIONS, SCHEMA_VERSION
from fedorch.runtime.store.store import Store, WorkflowRow

from tests.unit.runtime.store.old_data_dir import data_dir_at, migrated, tables_in

WF = "gamma.0123abcd"


def _envelope(tag: bytes) -> peer_pb2.Envelope:
    # Bytes no serializer of ours would produce (a field number we do not use, every
    # byte value): what comes back must be what went in, not a re-encoding.
    return peer_pb2.Envelope(body=b"\xfa\x07\x03odd" + tag + bytes(range(256)),
                             signature=bytes(range(64)) + tag,
                             key_records=[keys_pb2.KeyRecord()])


async def test_grants_round_trip_byte_exact_and_by_epoch(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        beta, gamma = _envelope(b"beta"), _envelope(b"gamma")
        await store.apply([grant_statement(WF, "beta", 1, beta),
                           grant_statement(WF, "gamma", 2, gamma)])
        kept = await grants_of(store, WF, 1)
        assert list(kept) == ["beta"]
        assert kept["beta"].body == beta.body and kept["beta"].signature == beta.signature
        assert not kept["beta"].key_records  # outside the signature: not evidence
        assert list(await grants_of(store, WF, 2)) == ["gamma"]
        assert await grants_of(store, "other.1", 1) == {}
    finally:
        await store.close()


async def test_a_late_grant_of_an_older_epoch_never_replaces_a_newer_one(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        newer, older = _envelope(b"2"), _envelope(b"1")
        assert await store.apply([grant_statement(WF, "beta", 2, newer)]) == [1]
        assert await store.apply([grant_statement(WF, "beta", 1, older)]) == [0]
        assert await grants_of(store, WF, 1) == {}
        assert (await grants_of(store, WF, 2))["beta"].body == newer.body
        again = _envelope(b"2 again")  # the same epoch granted again: the latest is kept
        await store.apply([grant_statement(WF, "beta", 2, again)])
        assert (await grants_of(store, WF, 2))["beta"].body == again.body
    finally:
        await store.close()


async def test_a_version_14_data_dir_gains_the_table_in_place(tmp_path: Path) -> None:
    assert "epoch_grants" in MIGRATIONS[14] and SCHEMA_VERSION >= 15  # migration 14 -> 15
    data = data_dir_at(tmp_path, 14, "INSERT INTO workflows(id, name, coordinator, state,"
                       f" spec, created_ms, updated_ms, epoch) VALUES('{WF}', 'n', 'beta',"
                       " 'RUNNING', x'00', 1, 2, 1);")
    assert "epoch_grants" not in tables_in(data)
    async with migrated(data) as store:
        old = await store.get_workflow(WF)
        assert old is not None and (old.coordinator, old.epoch) == ("beta", 1)
        assert await grants_of(store, WF, 1) == {}
        assert await store.select("SELECT * FROM replacement_rounds") == []  # the same migration
        await store.apply([grant_statement(WF, "alpha", 1, _envelope(b"a"))])
        assert list(await grants_of(store, WF, 1)) == ["alpha"]


async def test_retention_removes_the_grants_with_their_workflow(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "data")
    try:
        for wf in ("w.ended", "w.running"):
            await store.save_workflow(WorkflowRow(
                id=wf, name="n", coordinator="beta", state="SUCCEEDED" if wf == "w.ended"
                else "RUNNING", spec=b"s", created_ms=1, updated_ms=1))
            await store.apply([grant_statement(wf, "alpha", 1, _envelope(b"x"))])
        # Left without its workflow row (removed by an older agent, say): a leftover.
        await store.apply([grant_statement("w.orphan", "alpha", 1, _envelope(b"o"))])
        removed = await compaction.compact(store, ["w.ended"], TERMINAL_NAMES)
        assert removed == {"workflows": 1, "epoch_grants": 1}
        assert await grants_of(store, "w.ended", 1) == {}
        assert list(await grants_of(store, "w.running", 1)) == ["alpha"]
        found, _ = await compaction.leftovers(store, limit=10)
        assert [f.workflow_id for f in found] == ["w.orphan"]
        assert await compaction.compact_leftovers(store, ["w.orphan"]) == {"epoch_grants": 1}
        assert await grants_of(store, "w.orphan", 1) == {}
    finally:
        await store.close()
