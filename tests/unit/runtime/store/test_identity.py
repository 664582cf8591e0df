"""An agent opens only the database it wrote: identity records, damaged files, and
starting fresh by moving the refused file aside."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.runtime.store.identity import IDENTITY_FILE, BadDatabase, key_fingerprint
from fedorch.runtime.store.store import Store, StoreError

KEY = key_fingerprint(Ed25519PrivateKey.generate().public_key())
OTHER_KEY = key_fingerprint(Ed25519PrivateKey.generate().public_key())


async def _open(data: Path, domain: str = "alpha", key: str = KEY, **kw) -> Store:
    return await Store.open(data, domain=domain, key=key, **kw)


async def _make(data: Path, domain: str = "alpha", workflows: int = 1) -> None:
    s = await _open(data, domain)
    for i in range(workflows):
        await s.set_meta(f"wf-{i}", "x" * 200)
    await s.close()


async def _refused(data: Path, *fragments: str, **kw) -> str:
    with pytest.raises(BadDatabase) as info:
        await _open(data, **kw)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(data / "agent.db")) or IDENTITY_FILE in message
    assert "restore it from a backup" in message and "--start-fresh" in message
    for fragment in fragments:
        assert fragment in message, message
    return message


def _files(data: Path) -> set[str]:
    return {p.name for p in data.iterdir()}


async def test_a_new_data_dir_gets_an_identity_in_both_places(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    recorded = json.loads((data / IDENTITY_FILE).read_text())
    assert recorded["domain"] == "alpha" and recorded["key"] == KEY
    s = await _open(data)
    try:
        assert await s.get_meta("identity.database") == recorded["database"]
        assert await s.get_meta("wf-0") is not None
    finally:
        await s.close()


async def test_a_missing_database_is_refused_where_one_existed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    (data / "agent.db").unlink()
    await _refused(data, "missing", IDENTITY_FILE)
    assert "agent.db" not in _files(data)  # refusing created nothing


async def test_a_zero_length_database_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    for name in ("agent.db-wal", "agent.db-shm"):
        (data / name).unlink(missing_ok=True)
    (data / "agent.db").write_bytes(b"")
    await _refused(data, "empty (zero bytes)")
    assert (data / "agent.db").stat().st_size == 0  # left as found


async def test_a_zero_length_database_is_refused_without_an_identity_record(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "agent.db").write_bytes(b"")
    await _refused(data, "empty (zero bytes)")


async def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "agent.db").write_bytes(b"this is not sqlite\n" * 500)
    await _refused(data, "not a readable SQLite database")


async def test_a_truncated_database_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data, workflows=300)
    with sqlite3.connect(data / "agent.db") as db:  # everything into the main file
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = (data / "agent.db").stat().st_size
    assert size > 64 * 1024
    os.truncate(data / "agent.db", size // 2)
    await _refused(data)


async def test_another_domains_database_is_refused(tmp_path: Path) -> None:
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    await _make(mine)
    await _make(theirs, domain="beta")
    shutil.copy(theirs / "agent.db", mine / "agent.db")
    await _refused(mine, "belongs to domain 'beta', not 'alpha'")


async def test_a_database_written_with_another_key_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    await _refused(data, "another key", key=OTHER_KEY)


async def test_another_database_of_the_same_domain_is_refused(tmp_path: Path) -> None:
    mine, other = tmp_path / "mine", tmp_path / "other"
    await _make(mine)
    await _make(other)
    shutil.copy(other / "agent.db", mine / "agent.db")
    await _refused(mine, "but identity.json says this data dir's is")


async def test_a_database_without_identity_where_one_was_recorded_is_refused(
        tmp_path: Path) -> None:
    data, bare = tmp_path / "data", tmp_path / "bare"
    await _make(data)
    s = await Store.open(bare)  # no identity given: none recorded
    await s.close()
    shutil.copy(bare / "agent.db", data / "agent.db")
    await _refused(data, "has no identity record")


async def test_a_data_dir_from_before_identity_records_is_adopted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    s = await Store.open(data)
    await s.set_meta("wf-old", "x")
    await s.close()
    assert IDENTITY_FILE not in _files(data)
    s = await _open(data)
    try:
        assert await s.get_meta("wf-old") == "x"
    finally:
        await s.close()
    assert json.loads((data / IDENTITY_FILE).read_text())["domain"] == "alpha"
    await _refused(data, "belongs to domain", domain="beta")  # now it is alpha's


async def test_a_lost_identity_file_is_written_again_from_the_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    before = json.loads((data / IDENTITY_FILE).read_text())
    (data / IDENTITY_FILE).unlink()
    s = await _open(data)
    await s.close()
    assert json.loads((data / IDENTITY_FILE).read_text()) == before


async def test_an_unreadable_identity_record_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    (data / IDENTITY_FILE).write_text("{not json")
    await _refused(data, "unreadable identity record")


async def test_start_fresh_moves_the_refused_file_aside(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    old_id = json.loads((data / IDENTITY_FILE).read_text())["database"]
    garbage = b"this is not sqlite\n" * 500
    for name in ("agent.db-wal", "agent.db-shm"):
        (data / name).unlink(missing_ok=True)
    (data / "agent.db").write_bytes(garbage)
    s = await _open(data, start_fresh=True)
    try:
        assert await s.get_meta("wf-0") is None
        new_id = await s.get_meta("identity.database")
    finally:
        await s.close()
    assert new_id != old_id
    aside = sorted(n for n in _files(data) if n.startswith("agent.db.bad-"))
    moved_db = [n for n in aside if n.count(".") == 2]
    assert len(moved_db) == 1 and (data / moved_db[0]).read_bytes() == garbage
    assert json.loads((data / f"{moved_db[0]}.{IDENTITY_FILE}").read_text())["database"] \
        == old_id
    assert json.loads((data / IDENTITY_FILE).read_text())["database"] == new_id


async def test_start_fresh_leaves_a_good_database_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    s = await _open(data, start_fresh=True)
    try:
        assert await s.get_meta("wf-0") is not None
    finally:
        await s.close()
    assert not [n for n in _files(data) if n.startswith("agent.db.bad-")]


async def test_a_newer_schema_is_not_moved_aside(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await _make(data)
    s = await _open(data)
    await s.set_meta("schema_version", "999")
    await s.close()
    with pytest.raises(StoreError, match="schema version 999") as info:
        await _open(data, start_fresh=True)
    assert not isinstance(info.value, BadDatabase)
    assert not [n for n in _files(data) if n.startswith("agent.db.bad-")]


async def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError) as info:
        await _open(blocker / "data")
    assert "cannot use the data dir" in str(info.value) and "\n" not in str(info.value)
