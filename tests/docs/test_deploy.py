"""The deployment files agree with each other: what compose mounts, the agent configs,
the published ports, the seeds, the trust lists, the image and the systemd unit."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.config import load_config, parse_host_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CONFIG_TARGET = "/etc/fedorch/agent.yaml"
KEYS_TARGET = "/etc/fedorch/keys"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _services() -> dict[str, dict[str, Any]]:
    """The agent services (each mounts an agent config); the one-shot submitter is
    checked with the rest of the generated project in tests/scenario/test_compose.py."""
    return {name: service for name, service in _compose()["services"].items()
            if any(str(v).split(":")[1:2] == [CONFIG_TARGET] for v in service.get("volumes", []))}


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to deploy/ for bind mounts)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def _host_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    """(host port, container port) pairs; every port must be published on a fixed one."""
    pairs = []
    for port in service.get("ports", []):
        parts = str(port).split(":")
        assert len(parts) >= 2, f"port {port} publishes no fixed host port"
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def _config_of(service: dict[str, Any]) -> config_pb2.AgentConfig:
    source = _mounts(service)[CONFIG_TARGET]
    assert source.startswith("./"), "configs are bind-mounted from deploy/"
    return load_config(DEPLOY / source)


def test_three_services() -> None:
    assert sorted(_services()) == ["eu-west", "partner", "us-east"]


@pytest.mark.parametrize("name", ["eu-west", "us-east", "partner"])
def test_service_config_matches_service(name: str) -> None:
    service = _services()[name]
    mounts = _mounts(service)
    assert mounts[CONFIG_TARGET] == f"./config/{name}.yaml"
    assert mounts[KEYS_TARGET] == "./keys"
    config = _config_of(service)
    assert config.domain == name
    host, port = parse_host_port(config.listen)
    assert host == "0.0.0.0"
    assert config.advertise == f"{name}:{port}"
    assert port in [container for _, container in _host_ports(service)]
    if config.metrics_listen:
        metrics_port = parse_host_port(config.metrics_listen)[1]
        assert metrics_port in [container for _, container in _host_ports(service)]
    # State lives on a volume of its own, writable by the agent.
    data_source = mounts[config.data_dir]
    assert not data_source.startswith(".")
    assert data_source in _compose()["volumes"]
    assert config.key_file == f"{KEYS_TARGET}/{name}.key"


def test_host_ports_unique() -> None:
    ports = [host for s in _services().values() for host, _ in _host_ports(s)]
    assert len(ports) == len(set(ports)) == 6
    assert sorted(ports) == [7101, 7102, 7103, 9101, 9102, 9103]


def test_data_volumes_per_service() -> None:
    volumes = [_mounts(s)["/var/lib/fedorch"] for s in _services().values()]
    assert len(set(volumes)) == len(volumes)


def test_seeds_name_other_services() -> None:
    services = _services()
    for name, service in services.items():
        config = _config_of(service)
        assert config.seeds, name
        hosts = {parse_host_port(seed)[0] for seed in config.seeds}
        assert hosts <= set(services) - {name}, (name, hosts)
        for seed in config.seeds:
            seed_host, seed_port = parse_host_port(seed)
            other = _config_of(services[seed_host])
            assert parse_host_port(other.listen)[1] == seed_port


def test_trust_lists_name_the_other_services_keys() -> None:
    services = _services()
    for name, service in services.items():
        config = _config_of(service)
        expected = {f"{KEYS_TARGET}/{other}.pub" for other in services if other != name}
        assert set(config.trust.key_files) == expected, name
        assert _mounts(service)[KEYS_TARGET] == "./keys"
        for path in config.trust.key_files:
            assert PurePosixPath(path).parent == PurePosixPath(KEYS_TARGET)


def test_dockerfile_runs_the_mounted_config() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install \.", text)
    entry = re.search(r"^ENTRYPOINT (.+)$", text, re.M)
    cmd = re.search(r"^CMD (.+)$", text, re.M)
    assert entry and json.loads(entry.group(1)) == ["fedorch"]
    assert cmd and json.loads(cmd.group(1)) == ["agent", "run", "--config", CONFIG_TARGET]
    for service in _services().values():
        assert CONFIG_TARGET in _mounts(service)


def test_systemd_unit() -> None:
    text = (DEPLOY / "systemd" / "fedorch-agent.service").read_text()
    settings: dict[str, str] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key.strip()] = value.strip()
    assert re.fullmatch(r"/\S+/fedorch agent run --config /\S+\.yaml", settings["ExecStart"])
    assert settings["Type"] == "simple"
    assert settings["Restart"] == "on-failure"
    assert settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict"
    assert settings["ReadWritePaths"] == "/var/lib/fedorch"
    assert settings["User"] == "fedorch"
    assert settings["KillSignal"] == "SIGTERM"
    assert settings["TimeoutStopSec"] == "30"


def test_private_keys_stay_out_of_git() -> None:
    ignore = (DEPLOY / "keys" / ".gitignore").read_text().split()
    assert "*" in ignore
