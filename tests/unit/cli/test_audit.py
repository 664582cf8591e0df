"""`fedorch audit` on bad input: exit 2 for what cannot be read, 1 for a proof that does
not hold, one error line each."""

from __future__ import annotations

import json

from click.testing import CliRunner
from fedorch.cli.main import cli
from fedorch.core.identity.keys import init_keys


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_a_data_dir_without_a_database_is_bad_input(tmp_path):
    for command in (["verify"], ["show", "eu.1"], ["proof", "eu.1"]):
        result = _run("audit", *command, "--data-dir", str(tmp_path))
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith("fedorch: error:") and "agent.db" in result.stderr


def test_a_proof_that_is_not_json_or_not_a_proof_does_not_hold(tmp_path):
    keys = tmp_path / "keys"
    init_keys("eu", keys)
    for text in ("{not json", json.dumps({"format": "fedorch-audit-proof/1"}), "[]",
                 json.dumps({"format": "fedorch-audit-proof/2"}),
                 json.dumps({"format": "fedorch-audit-proof/2", "workflow": 1,
                             "submission": {}, "certificates": {}, "results": {},
                             "final": "", "summary": {}})):
        path = tmp_path / "proof.json"
        path.write_text(text)
        result = _run("audit", "check", str(path), "--trust", str(keys))
        assert result.exit_code == 1, result.output
        assert "proof does not hold" in result.stderr


def test_a_trust_dir_without_keys_is_bad_input(tmp_path):
    path = tmp_path / "proof.json"
    path.write_text("{}")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _run("audit", "check", str(path), "--trust", str(empty))
    assert result.exit_code == 2 and "no public key files" in result.stderr


def _acts_log(tmp_path):
    """A data dir whose log holds one node-engine `acts` record of two acts."""
    import asyncio

    from fedorch.runtime.store.audit_table import ACTS, append_statement
    from fedorch.runtime.store.store import Store

    async def write() -> None:
        store = await Store.open(tmp_path)
        try:
            await store.apply([append_statement(ACTS, "eu.1", 9, {"acts": [
                {"kind": "step_started", "time_ms": 7, "data": {"step": "a", "attempt": 1}},
                {"kind": "learned", "time_ms": 8, "data": {"round": 1, "outcome": "COMMIT"}},
            ]})])
        finally:
            await store.close()
    asyncio.run(write())


def test_show_reads_an_acts_record_as_its_acts_and_verify_names_an_edit_of_one(tmp_path):
    import sqlite3

    _acts_log(tmp_path)
    shown = _run("audit", "show", "eu.1", "--data-dir", str(tmp_path), "--json")
    assert shown.exit_code == 0, shown.output
    assert [(r["seq"], r["kind"], r["time_ms"], r["data"]) for r in json.loads(shown.output)] == [
        (1, "step_started", 7, {"step": "a", "attempt": 1}),
        (1, "learned", 8, {"round": 1, "outcome": "COMMIT"})]
    text = _run("audit", "show", "eu.1", "--data-dir", str(tmp_path))
    assert text.exit_code == 0 and "step_started" in text.output and "learned" in text.output
    assert _run("audit", "verify", "--data-dir", str(tmp_path)).exit_code == 0
    con = sqlite3.connect(tmp_path / "agent.db")
    try:
        con.execute("UPDATE audit SET body = CAST(replace(body, '\"attempt\":1',"
                    " '\"attempt\":2') AS BLOB) WHERE seq = 1")
        con.commit()
    finally:
        con.close()
    result = _run("audit", "verify", "--data-dir", str(tmp_path))
    assert result.exit_code == 1 and "record 1: changed" in result.stderr, result.stderr
