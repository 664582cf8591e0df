"""`fedorch trust list` shows the keys each domain has now: the configured key moved on
by the rotation and revocation records the agent learned (its database) and this
domain's own records (agent/cli/trust.py, core/identity/key_records.key_states)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fedorch.cli.main import cli
from fedorch.core.identity.keys import init_keys, load_public_key_file
from fedorch.core.identity.rotation import revoke_key, rotate_keys
from fedorch.runtime.store.identity import key_fingerprint

CONFIG = """\
domain: eu-west
listen: 127.0.0.1:7101
data_dir: ./data
key_file: keys/eu-west.key
trust:
  key_files:
    - keys/us-east.pub
"""


def _fingerprint(path: Path) -> str:
    return key_fingerprint(load_public_key_file(path)[1])


def _learn(data: Path, changes) -> None:
    """As the agent keeps what it learned (the key_records table of its database)."""
    data.mkdir(exist_ok=True)
    with sqlite3.connect(data / "agent.db") as db:
        db.execute("CREATE TABLE IF NOT EXISTS key_records (statement BLOB PRIMARY KEY,"
                   " domain TEXT NOT NULL, record BLOB NOT NULL, learned_ms INTEGER NOT NULL)")
        for n, c in enumerate(changes):
            db.execute("INSERT OR IGNORE INTO key_records VALUES (?, ?, ?, ?)",
                       (c.record.statement, c.domain, c.record.SerializeToString(), n))


def _list(conf: Path) -> dict:
    result = CliRunner().invoke(cli, ["trust", "list", "--config", str(conf), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_trust_list_shows_keys_learned_by_rotation_and_their_state(tmp_path):
    keys, home = tmp_path / "keys", tmp_path / "us-east-home"
    for domain in ("eu-west", "us-east"):
        init_keys(domain, keys)
    home.mkdir()
    for suffix in (".key", ".pub"):  # us-east's own copy; eu-west keeps the .pub it trusts
        shutil.copy(keys / f"us-east{suffix}", home / f"us-east{suffix}")
    conf = tmp_path / "eu-west.yaml"
    conf.write_text(CONFIG)
    first = _fingerprint(keys / "us-east.pub")

    listed = _list(conf)  # nothing learned yet: the configured keys, active
    assert listed["trusted"][0]["keys"] == [{"fingerprint": first, "state": "active"}]
    assert [k["state"] for k in listed["keys"]] == ["active"]

    now_ms = int(time.time() * 1000)
    rotated = rotate_keys("us-east", home, now_ms)
    second = key_fingerprint(Ed25519PublicKey.from_public_bytes(rotated.change.new))
    _learn(tmp_path / "data", [rotated.change])
    keys_now = _list(conf)["trusted"][0]["keys"]
    assert [(k["fingerprint"], k["state"]) for k in keys_now] == \
        [(first, "overlap"), (second, "active")]
    assert "until" in keys_now[0]

    revoked = revoke_key("us-east", home, now_ms + 1)  # the key the rotation replaced
    _learn(tmp_path / "data", [rotated.change, revoked])
    assert [(k["fingerprint"], k["state"]) for k in _list(conf)["trusted"][0]["keys"]] == \
        [(first, "revoked"), (second, "active")]

    own = rotate_keys("eu-west", keys, now_ms)  # this domain's own records, beside its key
    mine = [k["state"] for k in _list(conf)["keys"]]
    assert mine == ["overlap", "active"], mine
    assert _list(conf)["keys"][1]["fingerprint"] == key_fingerprint(
        Ed25519PublicKey.from_public_bytes(own.change.new))


def test_a_forged_record_in_the_database_changes_no_key(tmp_path):
    """A record not signed by the domain's keys (learned from a liar) is ignored."""
    keys, other = tmp_path / "keys", tmp_path / "mallory"
    for domain in ("eu-west", "us-east"):
        init_keys(domain, keys)
    init_keys("us-east", other)  # another key in us-east's name
    forged = rotate_keys("us-east", other, int(time.time() * 1000))
    conf = tmp_path / "eu-west.yaml"
    conf.write_text(CONFIG)
    _learn(tmp_path / "data", [forged.change])
    assert _list(conf)["trusted"][0]["keys"] == [
        {"fingerprint": _fingerprint(keys / "us-east.pub"), "state": "active"}]
