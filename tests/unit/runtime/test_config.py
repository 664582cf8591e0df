"""Agent config loading: the shipped configs parse, defaults and paths are filled in, and
every invalid config is refused with the file and the field named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.config import (
    ConfigError,
    load_config,
    parse_config_text,
    parse_host_port,
    without_effect,
)

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "scenarios" / "demo"
DEPLOY = ROOT / "deploy" / "config"
DOMAINS = ["eu-west", "us-east", "partner"]

MINIMAL = """\
domain: eu-west
listen: 127.0.0.1:7101
data_dir: ./data/eu-west
key_file: keys/eu-west.key
"""

FULL = (
    MINIMAL
    + """\
seeds: [127.0.0.1:7102, "[::1]:7103", us-east.example.com:7100]
trust:
  key_files: [keys/us-east.pub, /etc/fedorch/keys/partner.pub]
labels: {jurisdiction: EU, cloud: aws}
capabilities:
  - name: data.extract
    capacity: 4
    executor: {type: command, argv: [python3, extract.py], env: {MODE: fast}}
  - name: ml.train
    capacity: 2
    cost: 5
    executor: {type: builtin, name: echo}
policy:
  accept_from: ["*"]
  residency: {accept: [EU]}
  quotas: {max_steps_per_coordinator: 3}
  publish: false
metrics_listen: 127.0.0.1:9101
gossip: {profile: wan, tuning: {probe_interval: 4, indirect_checks: 5}, publish_interval_s: 3}
negotiation: {prepare_timeout_s: 5, max_rounds: 5, lease_s: 60, replay_window_s: 120, commit: 2pc,
              batching: false}
log_level: debug
"""
)


def _parse(text: str, base: str = "/base") -> object:
    return parse_config_text(text, "eu.yaml", base)


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        _parse(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("eu.yaml: ")
    return message


@pytest.mark.parametrize("domain", DOMAINS)
def test_demo_configs_parse(domain: str) -> None:
    config = load_config(DEMO / f"{domain}.yaml")
    assert config.domain == domain
    assert config.data_dir == str(DEMO / "data" / domain)
    assert config.key_file == str(DEMO / "keys" / f"{domain}.key")
    others = [d for d in DOMAINS if d != domain]
    assert list(config.trust.key_files) == [str(DEMO / "keys" / f"{d}.pub") for d in others]
    assert all(c.executor.type == "builtin" for c in config.capabilities)


def test_demo_policies() -> None:
    eu, us, partner = (load_config(DEMO / f"{d}.yaml") for d in DOMAINS)
    assert {c.name: (c.capacity, c.cost) for c in eu.capabilities} == {
        "data.extract": (4, 0),
        "ml.train": (2, 5),
    }
    assert {c.name: (c.capacity, c.cost) for c in us.capabilities} == {"ml.train": (8, 1)}
    assert [c.name for c in partner.capabilities] == ["report.publish"]
    assert list(us.policy.residency.accept) == ["US"] and us.policy.publish is False
    assert list(eu.policy.residency.accept) == ["EU"] and eu.policy.publish is True
    assert list(partner.policy.accept_from) == ["eu-west", "us-east"]
    assert dict(partner.labels) == {"jurisdiction": "EU", "cloud": "onprem"}


@pytest.mark.parametrize("domain", DOMAINS)
def test_deploy_configs_parse(domain: str) -> None:
    config = load_config(DEPLOY / f"{domain}.yaml")
    assert config.domain == domain
    assert config.advertise == f"{domain}:7100"
    assert config.key_file == f"/etc/fedorch/keys/{domain}.key"


def test_defaults_applied() -> None:
    config = _parse(MINIMAL)
    assert config.advertise == "127.0.0.1:7101"
    assert list(config.policy.accept_from) == ["*"]
    assert config.policy.publish is True
    assert (config.gossip.profile, config.gossip.publish_interval_s) == (
        config_pb2.GOSSIP_PROFILE_LAN, 1.0)
    assert not config.gossip.tuning
    n = config.negotiation
    assert (n.prepare_timeout_s, n.max_rounds, n.lease_s, n.replay_window_s) == (3, 3, 30, 60)
    assert n.commit == config_pb2.COMMIT_PROTOCOL_PAXOS
    assert not n.HasField("batching") and n.certificate_sweep_s == 0  # no effect: unset
    assert n.max_acceptors == 5
    assert config.log_level == "info"
    assert not config.seeds and not config.capabilities and not config.metrics_listen


@pytest.mark.parametrize("value", ["true", "false"])
def test_batching_still_loads_with_one_warning(value: str) -> None:
    # The node engine sends one envelope per peer and turn: the old knob turns nothing,
    # but a config that sets it must keep loading, and the operator is told once.
    config = _parse(MINIMAL + f"negotiation: {{batching: {value}}}\n")
    warnings = without_effect(config)
    assert len(warnings) == 1 and "negotiation.batching has no effect" in warnings[0]


def test_certificate_sweep_still_loads_with_one_warning() -> None:
    # The node engine has no certificate sweep: the knob turns nothing.
    config = _parse(MINIMAL + "negotiation: {certificate_sweep_s: 30}\n")
    assert config.negotiation.certificate_sweep_s == 30
    warnings = without_effect(config)
    assert len(warnings) == 1 and "certificate_sweep_s has no effect" in warnings[0]


def test_no_warning_without_them() -> None:
    assert without_effect(_parse(MINIMAL)) == []


def test_max_acceptors_kept_when_valid() -> None:
    assert _parse(MINIMAL + "negotiation: {max_acceptors: 3}\n").negotiation.max_acceptors == 3
    assert _parse(MINIMAL + "negotiation: {max_acceptors: 7}\n").negotiation.max_acceptors == 7


def test_explicit_values_kept() -> None:
    config = _parse(FULL)
    assert list(config.seeds) == ["127.0.0.1:7102", "[::1]:7103", "us-east.example.com:7100"]
    assert config.gossip.profile == config_pb2.GOSSIP_PROFILE_WAN
    assert config.gossip.publish_interval_s == 3
    assert dict(config.gossip.tuning) == {"probe_interval": 4, "indirect_checks": 5}
    assert config.negotiation.max_rounds == 5
    assert config.negotiation.commit == config_pb2.COMMIT_PROTOCOL_2PC
    assert config.negotiation.HasField("batching")  # kept, though it has no effect
    assert config.policy.publish is False
    assert config.policy.quotas.max_steps_per_coordinator == 3
    assert config.log_level == "debug"
    assert dict(config.capabilities[0].executor.env) == {"MODE": "fast"}


def test_relative_paths_resolved_against_config_dir(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "eu.yaml"
    path.parent.mkdir()
    path.write_text(FULL)
    config = load_config(path)
    base = path.parent
    assert config.data_dir == str(base / "data" / "eu-west")
    assert config.key_file == str(base / "keys" / "eu-west.key")
    assert list(config.trust.key_files) == [
        str(base / "keys" / "us-east.pub"),
        "/etc/fedorch/keys/partner.pub",
    ]
    assert config.capabilities[0].executor.cwd == str(base)
    assert config.capabilities[1].executor.cwd == ""  # builtins run in-process
    assert all(os.path.isabs(p) for p in (config.data_dir, config.key_file))


def test_relative_base_dir_made_absolute() -> None:
    config = parse_config_text(MINIMAL, "eu.yaml", "rel")
    assert config.data_dir == os.path.join(os.getcwd(), "rel", "data", "eu-west")


def test_missing_key_file_is_not_checked_here(tmp_path: Path) -> None:
    path = tmp_path / "eu.yaml"
    path.write_text(MINIMAL)
    assert not Path(load_config(path).key_file).exists()


def test_load_config_names_path(tmp_path: Path) -> None:
    path = tmp_path / "eu.yaml"
    path.write_text(MINIMAL + "capabilities: [{name: x, capacity: -1}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: capabilities[0].capacity: must be a positive integer, got -1"
    )
    assert info.value.path == "capabilities[0].capacity"


def test_unreadable_and_oversized(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    big = tmp_path / "big.yaml"
    big.write_text(MINIMAL + "#" * (1024 * 1024))
    with pytest.raises(ConfigError, match="bytes"):
        load_config(big)


def _without(line: str) -> str:
    assert line in MINIMAL
    return MINIMAL.replace(line + "\n", "")


CAP = "capabilities:\n  - name: ml.train\n    capacity: 2\n"


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("domain: [x\n", ["line", "invalid YAML"]),
        ("- a\n", ["top level must be a mapping"]),
        (MINIMAL + "domain: eu\n", ["duplicate key 'domain'"]),
        (
            MINIMAL + "seed: [127.0.0.1:7102]\n",
            ["seed: unknown key", "did you mean 'seeds'", "valid keys here: domain, listen"],
        ),
        (
            MINIMAL + "policy: {residency: {allow: [EU]}}\n",
            ["policy.residency.allow: unknown key", "valid keys here: accept"],
        ),
        (MINIMAL + "gossip: {interval: 1}\n", ["gossip.interval: unknown key", "interval_s"]),
        (_without("domain: eu-west"), ["domain: required"]),
        (MINIMAL.replace("domain: eu-west", "domain: EU_West"), ["domain: must match"]),
        (MINIMAL.replace("domain: eu-west", "domain: -eu"), ["domain: must match"]),
        (_without("listen: 127.0.0.1:7101"), ["listen: required"]),
        (MINIMAL.replace("127.0.0.1:7101", "127.0.0.1"), ["listen: must be HOST:PORT"]),
        (MINIMAL.replace("127.0.0.1:7101", "127.0.0.1:0"), ["listen:", "1 to 65535"]),
        (MINIMAL.replace("127.0.0.1:7101", "127.0.0.1:70000"), ["listen:", "1 to 65535"]),
        (MINIMAL.replace("127.0.0.1:7101", "127.0.0.1:http"), ["listen:", "port"]),
        (MINIMAL.replace("127.0.0.1:7101", "300.1.1.1:7101"), ["listen:", "IPv4"]),
        (MINIMAL.replace("127.0.0.1:7101", "'::1:7101'"), ["listen:", "brackets"]),
        (MINIMAL.replace("127.0.0.1:7101", "'[::g]:7101'"), ["listen:", "IPv6"]),
        (MINIMAL.replace("127.0.0.1:7101", "bad_host!:7101"), ["listen:", "host name"]),
        (MINIMAL.replace("127.0.0.1:7101", "0.0.0.0:7100"), ["advertise: required"]),
        (MINIMAL + "advertise: 0.0.0.0:7101\n", ["advertise: must be an address"]),
        (MINIMAL + "seeds: [127.0.0.1:7102, nope]\n", ["seeds[1]: must be HOST:PORT"]),
        (MINIMAL + "seeds: 127.0.0.1:7102\n", ["seeds: must be a list"]),
        (MINIMAL + "metrics_listen: x\n", ["metrics_listen: must be HOST:PORT"]),
        (MINIMAL + "metrics_listen: 127.0.0.1:7101\n", ["metrics_listen: must differ"]),
        (_without("data_dir: ./data/eu-west"), ["data_dir: required"]),
        (_without("key_file: keys/eu-west.key"), ["key_file: required"]),
        (MINIMAL + "trust: {key_files: keys/a.pub}\n", ["trust.key_files: must be a list"]),
        (MINIMAL + "trust: {key_files: [1]}\n", ["trust.key_files[0]: must be a string"]),
        (MINIMAL + "trust: [a.pub]\n", ["trust: must be a mapping"]),
        (MINIMAL + "labels: {tier: 1}\n", ["labels.tier: must be a string", "quote"]),
        (MINIMAL + "labels: [a]\n", ["labels: must be a mapping"]),
        (
            MINIMAL + CAP + "    executor: {type: builtin, name: echo}\n"
            "  - name: ml.train\n    capacity: 1\n    executor: {type: builtin, name: echo}\n",
            ["capabilities[1].name: duplicate capability 'ml.train'"],
        ),
        (MINIMAL + "capabilities:\n  - capacity: 1\n", ["capabilities[0].name: required"]),
        (
            MINIMAL + "capabilities:\n  - {name: 'ml train', capacity: 1}\n",
            ["capabilities[0].name: must match"],
        ),
        (
            MINIMAL + "capabilities:\n  - {name: x, capacity: 0}\n",
            ["capabilities[0].capacity: must be a positive integer, got 0"],
        ),
        (
            MINIMAL + "capabilities:\n  - {name: x, capacity: 1.5}\n",
            ["capabilities[0].capacity: must be a positive integer"],
        ),
        (MINIMAL + "capabilities:\n  - {name: x}\n", ["capabilities[0].capacity: required"]),
        (
            MINIMAL + "capabilities:\n  - {name: x, capacity: 1, cost: -1}\n",
            ["capabilities[0].cost: must be a non-negative number"],
        ),
        (MINIMAL + CAP, ["capabilities[0].executor: required"]),
        (
            MINIMAL + CAP + "    executor: {type: docker}\n",
            ["capabilities[0].executor.type: must be one of the installed types: builtin, command", "got 'docker'"],
        ),
        (
            MINIMAL + CAP + "    executor: {name: echo}\n",
            ["capabilities[0].executor.type: must be one of"],
        ),
        (
            MINIMAL + CAP + "    executor: {type: command}\n",
            ["capabilities[0].executor.argv: required"],
        ),
        (
            MINIMAL + CAP + "    executor: {type: command, argv: []}\n",
            ["capabilities[0].executor.argv: required"],
        ),
        (
            MINIMAL + CAP + "    executor: {type: command, argv: [python3, '']}\n",
            ["capabilities[0].executor.argv[1]"],
        ),
        (
            MINIMAL + CAP + "    executor: {type: builtin, name: shell}\n",
            ["capabilities[0].executor.name: must be one of: echo, sleep, fail, got 'shell'"],
        ),
        (
            MINIMAL + CAP + "    executor: {type: builtin}\n",
            ["capabilities[0].executor.name: must be one of"],
        ),
        (
            MINIMAL + CAP + "    executor: {type: builtin, name: echo, argv: [x]}\n",
            ["capabilities[0].executor.argv: only for type command"],
        ),
        (
            MINIMAL + CAP + "    executor: {type: command, argv: [x], env: {A: 1}}\n",
            ["capabilities[0].executor.env.A: must be a string"],
        ),
        (MINIMAL + "capabilities: {name: x}\n", ["capabilities: must be a list"]),
        (MINIMAL + "policy: {accept_from: []}\n", ["policy.accept_from: must not be empty"]),
        (MINIMAL + "policy: {accept_from: '*'}\n", ["policy.accept_from: must be a list"]),
        (
            MINIMAL + "policy: {accept_from: [EU-West]}\n",
            ["policy.accept_from[0]: must be '*' or a domain name"],
        ),
        (
            MINIMAL + "policy: {residency: {accept: [1]}}\n",
            ["policy.residency.accept[0]: must be a string"],
        ),
        (
            MINIMAL + "policy: {residency: {accept: EU}}\n",
            ["policy.residency.accept: must be a list"],
        ),
        (MINIMAL + "policy: {publish: maybe}\n", ["policy.publish: must be true or false"]),
        (MINIMAL + "gossip: {profile: moon}\n", ["gossip.profile: must be one of: lan, wan, local, got 'moon'"]),
        (
            MINIMAL + "gossip: {tuning: {probe_intervall: 1}}\n",
            ["gossip.tuning.probe_intervall: unknown key", "probe_interval"],
        ),
        (
            MINIMAL + "gossip: {tuning: {indirect_checks: 1.5}}\n",
            ["gossip.tuning.indirect_checks: must be a whole number"],
        ),
        (
            MINIMAL + "gossip: {tuning: {probe_timeout: 5}}\n",
            ["gossip.tuning: probe_timeout must be shorter than probe_interval"],
        ),
        (
            MINIMAL + "gossip: {publish_interval_s: 0}\n",
            ["gossip.publish_interval_s: must be a positive"],
        ),
        (
            MINIMAL + "negotiation: {max_rounds: 21}\n",
            ["negotiation.max_rounds: must be an integer from 1 to 20, got 21"],
        ),
        (MINIMAL + "negotiation: {max_rounds: 0}\n", ["negotiation.max_rounds"]),
        (MINIMAL + "negotiation: {max_acceptors: 4}\n",
         ["negotiation.max_acceptors: must be an odd integer from 3 to 99", "got 4"]),
        (MINIMAL + "negotiation: {max_acceptors: 1}\n", ["negotiation.max_acceptors: must be an odd"]),
        (MINIMAL + "negotiation: {max_acceptors: 0}\n", ["negotiation.max_acceptors"]),
        (MINIMAL + "negotiation: {max_acceptors: 101}\n", ["negotiation.max_acceptors"]),
        (MINIMAL + "negotiation: {lease_s: -1}\n", ["negotiation.lease_s: must be a positive"]),
        (MINIMAL + "negotiation: {certificate_sweep_s: 0}\n",
         ["negotiation.certificate_sweep_s: must be a positive"]),
        (
            MINIMAL + "negotiation: {prepare_timeout_s: '3'}\n",
            ["negotiation.prepare_timeout_s: must be a positive number", "string"],
        ),
        (MINIMAL + "log_level: loud\n", ["log_level: must be one of: debug, info"]),
        (
            MINIMAL + "negotiation: {commit: 3pc}\n",
            ["negotiation.commit: must be one of: paxos, 2pc, got '3pc'"],
        ),
        (MINIMAL + "negotiation: {commit: [paxos]}\n", ["negotiation.commit"]),
        (
            MINIMAL + "negotiation: {commit: 2}\n",
            ["negotiation.commit: must be one of: paxos, 2pc, got an integer (2)"],
        ),
        (
            MINIMAL + "negotiation: {commit: COMMIT_PROTOCOL_2PC}\n",
            ["negotiation.commit: must be one of: paxos, 2pc, got 'COMMIT_PROTOCOL_2PC'"],
        ),
        (MINIMAL + "gossip: {profile: ''}\n", ["gossip.profile: must be one of: lan, wan"]),
        (MINIMAL + "negotiation: {batching: sometimes}\n", ["negotiation.batching"]),
    ],
)
def test_invalid_config_names_file_and_field(text: str, fragments: list[str]) -> None:
    message = _error(text)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7101", ("127.0.0.1", 7101)),
        ("[::1]:7101", ("::1", 7101)),
        ("eu-west:7100", ("eu-west", 7100)),
        ("node-1.example.com:65535", ("node-1.example.com", 65535)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(
    "text", ["", ":7101", "host", "host:", "host:0", "host:+1", "[::1]7101", "[::1:7101", "a b:1"]
)
def test_parse_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_host_port(text)


@pytest.mark.parametrize(
    ("commit", "profile", "expected"),
    [
        ("paxos", "lan", (config_pb2.COMMIT_PROTOCOL_PAXOS, config_pb2.GOSSIP_PROFILE_LAN)),
        ("2pc", "wan", (config_pb2.COMMIT_PROTOCOL_2PC, config_pb2.GOSSIP_PROFILE_WAN)),
        ("2PC", "Local", (config_pb2.COMMIT_PROTOCOL_2PC, config_pb2.GOSSIP_PROFILE_LOCAL)),
    ],
)
def test_enums_are_written_by_their_short_names(commit, profile, expected) -> None:
    config = _parse(MINIMAL + f"negotiation: {{commit: {commit}}}\ngossip: {{profile: {profile}}}\n")
    assert (config.negotiation.commit, config.gossip.profile) == expected


def test_every_gossip_profile_is_a_swim_profile() -> None:
    from fedorch.core.membership.swim_profiles import PROFILES
    from fedorch.runtime.config import enum_choices, gossip_profile_name

    assert set(enum_choices(config_pb2.GossipProfile.DESCRIPTOR)) == set(PROFILES)
    assert gossip_profile_name(config_pb2.GOSSIP_PROFILE_WAN) == "wan"
    assert gossip_profile_name(config_pb2.GOSSIP_PROFILE_UNSPECIFIED) == "lan"


def test_engine_node_is_the_only_engine() -> None:
    assert _parse(MINIMAL + "engine: node\n").engine == config_pb2.ENGINE_NODE
    assert _parse(MINIMAL).engine == config_pb2.ENGINE_UNSPECIFIED  # the node engine


@pytest.mark.parametrize("value", ["shells", "Shells", "raft", "1", "[node]"])
def test_engine_other_than_node_is_refused_in_one_line(value: str) -> None:
    message = _error(MINIMAL + f"engine: {value}\n")
    assert "eu.yaml: engine: must be node" in message
    assert "shells` was removed" in message
    assert "drained by the previous release" in message
    assert "got" in message
