"""node.db's identity (runtime/node_engine/identity.py): a missing, empty, truncated,
corrupt, replaced or foreign node store is refused with one line naming the file and
what to do; `start_fresh` moves it aside; creation and adoption survive a crash."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from pathlib import Path

import pytest
from fedorch.core.node.ready import PUT, Op, Write
from fedorch.runtime.node_engine import identity as ident
from fedorch.runtime.node_engine.identity import (
    MARKER_KEY,
    NodeDbIdentity,
    NodeDbRefused,
    check_node_db,
    open_checked,
)
from fedorch.runtime.node_store import SqliteDurable

KEY = "sha256:" + "a" * 32


class AgentDb:
    """agent.db's meta table, as the daemon hands it over (one marker key)."""

    def __init__(self) -> None:
        self.meta: dict[str, str] = {}

    async def get(self) -> str | None:
        return self.meta.get(MARKER_KEY)

    async def set(self, value: str | None) -> None:
        self.meta[MARKER_KEY] = value or ""


def check(data: Path, agent_db: AgentDb, *, domain: str = "d0", key: str = KEY,
          start_fresh: bool = False, earlier_keys=()) -> Path:
    return asyncio.run(open_checked(data, domain, key, get_marker=agent_db.get,
                                    set_marker=agent_db.set, start_fresh=start_fresh,
                                    earlier_keys=earlier_keys))


def refusal(data: Path, agent_db: AgentDb, **kw) -> str:
    with pytest.raises(NodeDbRefused) as refused:
        check(data, agent_db, **kw)
    line = str(refused.value)
    assert "\n" not in line
    assert line.startswith(f"{data / 'node.db'}: "), line
    assert "restore it" in line and "--start-fresh" in line, line
    return line


def with_rows(path: Path, n: int = 200) -> None:
    """A node store with rows in it, as a running Node leaves it (closed)."""
    ops = [Op("committed", PUT, f"wf-{i:05d}-" + "x" * 200, i % 7) for i in range(n)]
    with SqliteDurable(path) as store:
        store.write([Write("rows", ops)])


@pytest.fixture
def made(tmp_path):
    """A data dir whose node.db was created by the check and then used."""
    agent_db = AgentDb()
    path = check(tmp_path, agent_db)
    with_rows(path)
    return tmp_path, agent_db


def names(data: Path) -> list[str]:
    return sorted(p.name for p in data.iterdir())


def test_the_first_start_creates_node_db_with_its_identity_and_agent_db_marker(tmp_path):
    agent_db = AgentDb()
    path = check(tmp_path, agent_db)
    assert path == tmp_path / "node.db" and path.stat().st_size > 0
    marker = NodeDbIdentity.from_json(agent_db.meta[MARKER_KEY])
    assert (marker.domain, marker.key) == ("d0", KEY)
    with sqlite3.connect(path) as con:
        assert ident._read_record(con) == marker
    with SqliteDurable(path) as store:  # the Node's tables beside the identity
        assert store.load() == SqliteDurable(tmp_path / "other.db").load()
    assert check(tmp_path, agent_db) == path  # and it is accepted again
    assert NodeDbIdentity.from_json(agent_db.meta[MARKER_KEY]) == marker


@pytest.mark.parametrize("how, says", [
    ("missing", "missing, but agent.db records node store"),
    ("empty", "empty (zero bytes)"),
    ("garbage", "not a node store this agent can read"),
    ("truncated", "node.db: "),
    ("replaced", "has no identity record, but agent.db records node store"),
    ("copied", "belongs to domain 'd9', not 'd0'"),
    ("other", "but agent.db records"),
    ("unmarked", "agent.db records none"),
])
def test_a_node_db_that_is_not_the_one_written_is_refused_with_one_line(made, how, says):
    data, agent_db = made
    db = data / "node.db"
    for companion in ("node.db-wal", "node.db-shm"):
        (data / companion).unlink(missing_ok=True)
    if how == "missing":
        db.unlink()
    elif how == "empty":
        db.write_bytes(b"")
    elif how == "garbage":
        db.write_bytes(os.urandom(64 * 1024))
    elif how == "truncated":
        size = db.stat().st_size
        with open(db, "r+b") as f:
            f.truncate(size // 2)
    elif how == "replaced":
        db.unlink()
        SqliteDurable(db).close()  # a file of the right schema, made by someone else
    elif how == "copied":
        other = data / "elsewhere"
        other.mkdir()
        check(other, AgentDb(), domain="d9")
        os.replace(other / "node.db", db)
    elif how == "other":  # this domain's, from another data dir
        other = data / "elsewhere"
        other.mkdir()
        check(other, AgentDb())
        os.replace(other / "node.db", db)
    elif how == "unmarked":
        agent_db.meta.clear()  # agent.db replaced (or started fresh)
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    line = refusal(data, agent_db)
    assert says in line, line
    # Refusing touched nothing.
    assert {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()} == before

    # With the explicit flag the refused file is moved aside, never deleted, and a new
    # node store starts, accepted from then on.
    marker = agent_db.meta.get(MARKER_KEY)
    check(data, agent_db, start_fresh=True)
    aside = [n for n in names(data) if n.startswith("node.db.bad-")]
    assert aside if how != "missing" else not aside, names(data)
    if how != "missing":
        moved = data / sorted(n for n in aside if n.endswith(("-wal", "-shm")) is False)[0]
        assert moved.read_bytes() == before["node.db"]
    assert agent_db.meta[MARKER_KEY] != marker
    check(data, agent_db)


def test_a_node_db_from_before_identities_is_adopted_with_its_rows(tmp_path):
    path = tmp_path / "node.db"
    with_rows(path, 3)
    with SqliteDurable(path) as store:
        rows = store.load()
    agent_db = AgentDb()
    check(tmp_path, agent_db)
    with SqliteDurable(path) as store:
        assert store.load() == rows
    assert MARKER_KEY in agent_db.meta
    check(tmp_path, agent_db)


def test_a_creation_cut_before_the_marker_starts_again(tmp_path):
    agent_db = AgentDb()
    new = ident._create(tmp_path / "node.db", NodeDbIdentity.new("d0", KEY))
    assert new.exists() and not (tmp_path / "node.db").exists()
    check(tmp_path, agent_db)
    marker = NodeDbIdentity.from_json(agent_db.meta[MARKER_KEY])
    with sqlite3.connect(tmp_path / "node.db") as con:
        assert ident._read_record(con) == marker
    assert names(tmp_path) == ["node.db"]


def test_a_creation_cut_after_the_marker_is_finished(tmp_path):
    agent_db = AgentDb()
    identity = NodeDbIdentity.new("d0", KEY)
    ident._create(tmp_path / "node.db", identity)
    asyncio.run(agent_db.set(identity.to_json()))
    check(tmp_path, agent_db)
    with sqlite3.connect(tmp_path / "node.db") as con:
        assert ident._read_record(con) == identity
    assert "node.db.new" not in names(tmp_path)


def test_a_key_this_domain_rotated_away_from_is_no_mismatch(made):
    data, agent_db = made
    new_key = "sha256:" + "b" * 32
    assert "another key" in refusal(data, agent_db, key=new_key)
    check(data, agent_db, key=new_key, earlier_keys={KEY})
    marker = NodeDbIdentity.from_json(agent_db.meta[MARKER_KEY])
    assert marker.key == new_key
    check(data, agent_db, key=new_key)  # re-labelled: no earlier key needed now


def test_the_check_alone_never_moves_anything(made):
    data, agent_db = made
    (data / "node.db").write_bytes(b"")
    with pytest.raises(NodeDbRefused):
        asyncio.run(check_node_db(data, "d0", KEY, get_marker=agent_db.get,
                                  set_marker=agent_db.set))
    assert not [n for n in names(data) if n.startswith("node.db.bad-")]
