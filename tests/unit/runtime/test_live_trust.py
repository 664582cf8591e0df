"""Live trust changes: the trust store adds and removes domains (idempotently, forgetting
cached signatures of a removed domain, never the agent's own), and `fedorch trust`
edits the config's trust list, refusing bad input with exit 2 and changing nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.cli.main import cli
from fedorch.core.identity.keys import init_keys
from fedorch.core.identity.trust import TrustStore
from fedorch.runtime.config import load_config

CONFIG = """\
# eu-west: the trust list below is edited by `fedorch trust`
domain: eu-west
listen: 127.0.0.1:7101
data_dir: ./data
key_file: keys/eu-west.key
trust:
  key_files:
    - keys/us-east.pub   # a partner
"""


def test_remove_and_add_back() -> None:
    eu, us = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    store = TrustStore({"eu-west": eu.public_key(), "us-east": us.public_key()})
    signature = us.sign(b"hello")
    assert store.verify("us-east", b"hello", signature)  # now cached
    assert store.remove("us-east") is True
    assert not store.verify("us-east", b"hello", signature)  # the cache forgot it too
    assert "us-east" not in store
    assert store.remove("us-east") is False  # twice: a no-op
    store.add("us-east", us.public_key())
    store.add("us-east", us.public_key())  # same key again: a no-op
    assert store.verify("us-east", b"hello", signature)
    with pytest.raises(ValueError, match="different key"):
        store.add("us-east", Ed25519PrivateKey.generate().public_key())


def test_apply_keeps_own_domain_and_is_idempotent() -> None:
    keys = {d: Ed25519PrivateKey.generate().public_key() for d in ("eu", "us", "partner")}
    store = TrustStore({"eu": keys["eu"], "us": keys["us"]})
    wanted = TrustStore({"partner": keys["partner"]})
    assert store.apply(wanted, keep="eu") == (["partner"], ["us"])
    assert store.domains() == ["eu", "partner"]
    assert store.apply(wanted, keep="eu") == ([], [])
    assert store.domains() == ["eu", "partner"]


def test_apply_with_a_changed_key_changes_nothing() -> None:
    us = Ed25519PrivateKey.generate().public_key()
    store = TrustStore({"eu": Ed25519PrivateKey.generate().public_key(), "us": us})
    wanted = TrustStore({"us": Ed25519PrivateKey.generate().public_key()})
    with pytest.raises(ValueError, match="different key"):
        store.apply(wanted, keep="eu")
    assert store.domains() == ["eu", "us"] and store.key("us") is us


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    for domain in ("eu-west", "us-east", "partner"):
        init_keys(domain, keys)
    path = tmp_path / "eu-west.yaml"
    path.write_text(CONFIG)
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def _listed(conf: Path) -> list[str]:
    code, out = _run("trust", "list", "--config", str(conf), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["domain"] == "eu-west"
    return sorted(row["domain"] for row in data["trusted"])


def test_cli_add_remove_list(conf: Path) -> None:
    partner = conf.parent / "keys" / "partner.pub"
    assert _listed(conf) == ["us-east"]
    code, out = _run("trust", "add", str(partner), "--config", str(conf))
    assert code == 0, out
    assert _listed(conf) == ["partner", "us-east"]
    code, out = _run("trust", "add", str(partner), "--config", str(conf))
    assert code == 0 and "already trusted" in out
    assert _listed(conf) == ["partner", "us-east"]
    code, out = _run("trust", "remove", "us-east", "--config", str(conf))
    assert code == 0, out
    assert _listed(conf) == ["partner"]
    text = conf.read_text()
    assert "# eu-west: the trust list below" in text  # the operator's comments survive
    assert list(load_config(conf).trust.key_files) == [str(partner)]


@pytest.mark.parametrize("args, message", [
    (("remove", "nobody"), "not trusted"),
    (("remove", "eu-west"), "own domain"),
    (("add", "keys/eu-west.key"), ""),          # a private key, not a domain .pub
    (("add", "missing.pub"), ""),
    (("add", "keys/eu-west.pub"), "own domain"),
])
def test_cli_bad_input_changes_nothing(conf: Path, args: tuple[str, ...], message: str) -> None:
    before = conf.read_text()
    argv = [a if not a.startswith(("keys/", "missing")) else str(conf.parent / a) for a in args]
    code, out = _run("trust", *argv, "--config", str(conf))
    assert code == 2, out
    assert message in out
    assert conf.read_text() == before


def test_cli_add_a_different_key_for_a_trusted_domain(conf: Path, tmp_path: Path) -> None:
    init_keys("us-east", tmp_path / "other")
    before = conf.read_text()
    code, out = _run("trust", "add", str(tmp_path / "other" / "us-east.pub"),
                     "--config", str(conf))
    assert code == 2 and "different key" in out
    assert conf.read_text() == before


def test_cli_signals_a_process_that_does_not_exist(conf: Path) -> None:
    # A pid far above any pid_max: refused with exit 2 before the config is edited.
    before = conf.read_text()
    code, out = _run("trust", "remove", "us-east", "--config", str(conf), "--pid", "2147483646")
    assert code == 2 and "no process" in out
    assert conf.read_text() == before


def _agent_with(tmp_path: Path, listed: list[str]):
    """The parts of an agent reload_trust touches: its store, domain, config and hooks."""
    from types import SimpleNamespace

    from fedorch.gen.fedorch.v1 import config_pb2
    from fedorch.runtime.live_trust import reload_trust

    keys = tmp_path / "keys"
    for domain in ("eu-west", "us-east", "partner"):
        init_keys(domain, keys)
    store = TrustStore.from_files([keys / "eu-west.pub", keys / "us-east.pub"])
    config = config_pb2.AgentConfig(domain="eu-west")
    config.trust.key_files.extend([str(keys / "us-east.pub")])
    calls: list[str] = []
    agent = SimpleNamespace(trust=store, domain="eu-west", config=config, membership=None,
                            on_trust_change=[lambda: calls.append("changed")])
    wanted = config_pb2.AgentConfig(domain="eu-west")
    wanted.trust.key_files.extend(str(keys / name) for name in listed)
    return reload_trust(agent, wanted), agent, calls


def test_reload_applies_the_listed_set(tmp_path: Path) -> None:
    changed, agent, calls = _agent_with(tmp_path, ["partner.pub"])
    assert changed == (["partner"], ["us-east"])
    assert agent.trust.domains() == ["eu-west", "partner"] and calls == ["changed"]
    assert [Path(p).name for p in agent.config.trust.key_files] == ["partner.pub"]


def test_reload_of_a_bad_list_keeps_the_running_trust(tmp_path: Path) -> None:
    changed, agent, calls = _agent_with(tmp_path, ["partner.pub", "missing.pub"])
    assert changed == ([], [])
    assert agent.trust.domains() == ["eu-west", "us-east"] and calls == []
    assert [Path(p).name for p in agent.config.trust.key_files] == ["us-east.pub"]
