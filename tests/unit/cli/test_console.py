"""`fedorch console token`: a token the named console verifies, and clear usage errors."""

from __future__ import annotations

import json
import time

from click.testing import CliRunner
from fedorch.cli.main import cli
from fedorch.core.identity.clients import ClientKeys, init_client_keys, load_identity
from fedorch.core.identity.console_token import verify_token


def _run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env={"FEDORCH_IDENTITY": "", **(env or {})})


def test_token_verifies_at_the_named_console_only(tmp_path):
    key_file, _ = init_client_keys("alice", tmp_path)
    known = ClientKeys({"alice": load_identity(key_file).key.public_key()})
    result = _run("console", "token", "--identity", str(key_file), "--domain", "eu-west",
                  "--ttl", "120", "--workflow", "eu-west.w1", "--json")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    grant = verify_token(printed["token"], known, "eu-west", now_s=time.time())
    assert (grant.principal, grant.allow, grant.workflow) == ("alice", {"cancel"}, "eu-west.w1")
    assert printed["expires_s"] == grant.expires_s

    url = _run("console", "token", "--domain", "eu-west", "--url", "http://127.0.0.1:9201/",
               env={"FEDORCH_IDENTITY": str(key_file)})
    assert url.exit_code == 0, url.output
    link, _, token = url.output.strip().partition("#token=")
    assert link == "http://127.0.0.1:9201/"
    assert verify_token(token, known, "eu-west", now_s=time.time()).principal == "alice"


def test_usage_errors_exit_2(tmp_path):
    key_file, _ = init_client_keys("alice", tmp_path)
    no_identity = _run("console", "token", "--domain", "eu-west")
    assert no_identity.exit_code == 2 and "--identity" in no_identity.output
    for extra in (["--ttl", "0"], ["--ttl", "999999"], ["--allow", "submit"],
                  ["--url", "ftp://x"]):
        result = _run("console", "token", "--identity", str(key_file), "--domain", "eu-west",
                      *extra)
        assert result.exit_code == 2, (extra, result.output)
    missing = _run("console", "token", "--identity", str(tmp_path / "nope.key"),
                   "--domain", "eu-west")
    assert missing.exit_code == 2 and "not found" in missing.output
