"""`fedorch keys ca init | issue` and `fedorch keys init --ca`: a federation CA and the
certificates it issues (agent/cli/keys.py)."""

from __future__ import annotations

import json
import stat
import time

from click.testing import CliRunner
from fedorch.cli.main import cli
from fedorch.core.identity.federation_ca import ca_peer_domain, check_issued, load_ca
from fedorch.core.identity.keys import load_public_key_file
from fedorch.core.identity.trust import TrustStore


def _run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_a_ca_issues_a_domains_certificate_at_key_init_and_renews_it(tmp_path):
    made = _run("keys", "ca", "init", "--dir", str(tmp_path / "ca"), "--json")
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    again = _run("keys", "ca", "init", "--dir", str(tmp_path / "ca"))
    assert again.exit_code == 1 and "refusing to overwrite" in again.output

    done = _run("keys", "init", "--domain", "eu-west", "--dir", str(tmp_path / "k"),
                "--ca", str(tmp_path / "ca"), "--json")
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    cert, key = (tmp_path / "k" / "eu-west.crt").read_bytes(), \
        (tmp_path / "k" / "eu-west.tls.key").read_bytes()
    assert out["certificate"].endswith("eu-west.crt")
    assert stat.S_IMODE((tmp_path / "k" / "eu-west.tls.key").stat().st_mode) == 0o600
    ca_cert = load_ca(None, (tmp_path / "ca" / "ca.crt").read_bytes())[1]
    check_issued(cert, key, ca_cert, "eu-west", time.time())
    trust = TrustStore(dict([load_public_key_file(tmp_path / "k" / "eu-west.pub")]))
    assert ca_peer_domain(cert, ca_cert, trust) == "eu-west"

    renewed = _run("keys", "ca", "issue", "--ca", str(tmp_path / "ca"), "--domain", "eu-west",
                   "--dir", str(tmp_path / "k"))
    assert renewed.exit_code == 0, renewed.output
    assert (tmp_path / "k" / "eu-west.crt").read_bytes() != cert
    assert (tmp_path / "k" / "eu-west.key").exists()  # the domain key is untouched


def test_bad_ca_usage_is_refused_with_exit_2_and_writes_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    missing = _run("keys", "init", "--domain", "eu-west", "--dir", str(tmp_path / "k"),
                   "--ca", str(tmp_path / "empty"))
    assert missing.exit_code == 2 and "cannot read the CA" in missing.output
    assert not (tmp_path / "k").exists()
    _run("keys", "ca", "init", "--dir", str(tmp_path / "ca"))
    client = _run("keys", "init", "--client", "alice", "--dir", str(tmp_path / "k"),
                  "--ca", str(tmp_path / "ca"))
    assert client.exit_code == 2 and "give --domain NAME" in client.output
    bad = _run("keys", "ca", "issue", "--ca", str(tmp_path / "ca"), "--domain", "../x",
               "--dir", str(tmp_path / "k"))
    assert bad.exit_code == 2 and "invalid domain name" in bad.output
    assert not (tmp_path / "k").exists()
