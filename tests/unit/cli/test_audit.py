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
    for text in ("{not json", json.dumps({"format": "fedorch-audit-proof/1"}), "[]"):
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
