"""A scenario as a docker-compose project: `fedorch scenario compose FILE --out DIR`.

DIR gets docker-compose.yml, config/<domain>.yaml (each agent's config, as the agent
loads it inside its container), workflows/<id>.yaml and submit.sh (for the one-shot
`submitter` service), steps/ (the step scripts the capabilities name), keys/ (made by the
user with `fedorch keys init`, never committed) and a README. Each agent listens on 7100
in its container, advertises <domain>:7100, and is published on 7101, 7102, ... of the
host in the scenario's order (metrics on 9101, ...).

Faults are not applied by compose; partitions get a network per side so that one can be
applied by hand (the README lists the commands). Expectations are checked by
`fedorch scenario run`, not here.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml
from fedorch.scenario.configs import DOMAIN_ENV, RUNS_ENV, agent_config, scripts_used
from fedorch.scenario.model import LoadedScenario

AGENT_PORT = 7100
METRICS_PORT = 9100
HOST_PORT_BASE = 7100
HOST_METRICS_BASE = 9100
CONFIG_TARGET = "/etc/fedorch/agent.yaml"
KEYS_TARGET = "/etc/fedorch/keys"
STEPS_TARGET = "/etc/fedorch/steps"
WORKFLOWS_TARGET = "/etc/fedorch/workflows"
DATA_TARGET = "/var/lib/fedorch"
SHARED_NETWORK = "federation"

# The agents listen on 0.0.0.0 in their containers, so they speak mutual TLS and take
# only signed client calls: the health check presents a certificate from the agent's own
# key, and the submitter signs as this client, whose key the agents are told to accept.
HEALTH_CHECK = ["CMD", "fedorch", "agent", "health", "--config", CONFIG_TARGET]
SUBMITTER = "submitter"


class _Dumper(yaml.SafeDumper):
    """Block style, no aliases, long strings folded as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # Port pairs are quoted: YAML 1.1 readers take some N:M forms for base-60 numbers.
    style = "|" if "\n" in value else '"' if re.fullmatch(r"[0-9:]+", value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100,
                     default_flow_style=False)


def project_name(name: str) -> str:
    """A Compose project name: lower-case letters, digits, '-' and '_', a letter or
    digit first."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-_")
    return cleaned or "fedorch"


def partition_networks(loaded: LoadedScenario) -> dict[str, list[str]]:
    """Network name -> member domains: one per side of each partition fault."""
    networks: dict[str, list[str]] = {}
    for index, fault in enumerate(loaded.scenario.faults):
        if fault.action == "partition":
            networks[f"partition-{index}-a"] = list(fault.domains)
            networks[f"partition-{index}-b"] = list(fault.from_domains)
    return networks


def domain_config(loaded: LoadedScenario, name: str) -> dict[str, Any]:
    addresses = {d: f"{d}:{AGENT_PORT}" for d in loaded.domains}
    return agent_config(
        loaded, name, addresses=addresses, listen=f"0.0.0.0:{AGENT_PORT}",
        data_dir=DATA_TARGET, keys_dir=KEYS_TARGET,
        metrics_listen=f"0.0.0.0:{METRICS_PORT}", python="python",
        script=lambda arg: f"{STEPS_TARGET}/{Path(arg).name}",
        env=({RUNS_ENV: f"{DATA_TARGET}/runs.jsonl", DOMAIN_ENV: name}
             if scripts_used(loaded) else None))


def _agent_service(name: str, index: int, networks: list[str], context: str,
                   has_steps: bool) -> dict[str, Any]:
    volumes = [f"./config/{name}.yaml:{CONFIG_TARGET}:ro", f"./keys:{KEYS_TARGET}:ro",
               f"{name}-data:{DATA_TARGET}"]
    if has_steps:
        volumes.append(f"./steps:{STEPS_TARGET}:ro")
    return {
        "build": {"context": context, "dockerfile": "deploy/Dockerfile"},
        "image": "fedorch:latest",
        "hostname": name,
        "restart": "unless-stopped",
        # An init process reaps the grandchildren of command steps that a killed step
        # leaves behind (the agent reaps its own children).
        "init": True,
        "stop_signal": "SIGTERM",
        "stop_grace_period": "30s",
        "ports": [f"{HOST_PORT_BASE + index}:{AGENT_PORT}",
                  f"{HOST_METRICS_BASE + index}:{METRICS_PORT}"],
        "volumes": volumes,
        "networks": networks,
        # The agent serves the standard gRPC health service on its one port.
        "healthcheck": {
            "test": HEALTH_CHECK,
            "interval": "10s", "timeout": "5s", "start_period": "10s", "retries": 3,
        },
    }


def submit_script(loaded: LoadedScenario) -> str:
    """The submitter's script: each copy of each submission at its time, then wait for all;
    it fails when any workflow did not succeed."""
    lines = ["#!/bin/sh",
             f"# Submits the workflows of scenario {loaded.name}; run by the `submitter`",
             "# service once every agent is healthy. Exits 1 when any workflow did not",
             "# succeed (fedorch submit --wait exits 1 then).",
             "set -u", "pids=''"]
    for workflow in loaded.workflows.values():
        submission = workflow.submission
        spec = f"{WORKFLOWS_TARGET}/{workflow.id}.yaml"
        peer = f"{submission.to}:{AGENT_PORT}"
        for index in range(workflow.copies):
            at = submission.at_s + (index / submission.rate_per_s if submission.rate_per_s
                                    else 0.0)
            command = ["fedorch", "submit", spec, "--peer", peer, "--wait",
                       "--identity", f"{KEYS_TARGET}/{SUBMITTER}.key",
                       "--agent-key", f"{KEYS_TARGET}/{submission.to}.pub"]
            lines.append(f"(sleep {at:g}; {shlex.join(command)}) & pids=\"$pids $!\"")
    lines += ["status=0", "for pid in $pids; do wait \"$pid\" || status=1; done",
              "exit \"$status\""]
    return "\n".join(lines) + "\n"


def compose_file(loaded: LoadedScenario, context: str, header: str) -> str:
    names = list(loaded.domains)
    partitions = partition_networks(loaded)
    has_steps = bool(scripts_used(loaded))
    services: dict[str, Any] = {}
    for index, name in enumerate(names, start=1):
        networks = [SHARED_NETWORK] + [n for n, members in partitions.items()
                                       if name in members]
        services[name] = _agent_service(name, index, networks, context, has_steps)
    if loaded.workflows:
        services["submitter"] = {
            "image": "fedorch:latest",
            "entrypoint": ["sh", "/etc/fedorch/submit.sh"],
            "restart": "no",
            "volumes": ["./submit.sh:/etc/fedorch/submit.sh:ro",
                        f"./workflows:{WORKFLOWS_TARGET}:ro", f"./keys:{KEYS_TARGET}:ro"],
            "networks": [SHARED_NETWORK],
            "depends_on": {name: {"condition": "service_healthy"} for name in names},
        }
    document = {
        "name": project_name(loaded.name),
        "services": services,
        "networks": {SHARED_NETWORK: {}, **{n: {} for n in partitions}},
        "volumes": {f"{name}-data": {} for name in names},
    }
    return header + dump(document)


def _compose_header(loaded: LoadedScenario) -> str:
    names = list(loaded.domains)
    last = HOST_PORT_BASE + len(names)
    return (
        f"# Scenario {loaded.name} as a docker-compose project, written by\n"
        "# `fedorch scenario compose`; edit the scenario and write it again rather than\n"
        "# editing this file. Before `docker compose up`, make the keys (see README.md):\n"
        "#   for d in " + " ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        + "; do fedorch keys init --domain $d --dir keys; done\n"
        f"# Each agent listens on {AGENT_PORT} in its container, published on "
        f"{HOST_PORT_BASE + 1}..{last}\n"
        f"# (metrics: {METRICS_PORT} on {HOST_METRICS_BASE + 1}.."
        f"{HOST_METRICS_BASE + len(names)}).\n\n")


def _config_header(loaded: LoadedScenario, name: str) -> str:
    return (f"# Agent config for the {name} service (mounted at {CONFIG_TARGET}), written by\n"
            f"# `fedorch scenario compose` from scenario {loaded.name}. Keys come from\n"
            "# `fedorch keys init` into keys/.\n")


def _with_submitter(config: dict[str, Any]) -> dict[str, Any]:
    """A domain's config that also takes the submitter's signed calls."""
    clients = config.setdefault("clients", {}).setdefault("key_files", [])
    clients.append(f"{KEYS_TARGET}/{SUBMITTER}.pub")
    config.setdefault("access", []).append(
        {"principals": [SUBMITTER], "allow": ["submit", "read", "cancel"]})
    return config


def write_project(loaded: LoadedScenario, out: Path, context: str | None = None
                  ) -> list[Path]:
    """Write the project into `out`; the files written. `context`: the Docker build
    context as seen from `out` (default: this checkout)."""
    from fedorch.runtime.supervisor import repo_root

    out.mkdir(parents=True, exist_ok=True)
    context = context or os.path.relpath(repo_root(), out.resolve())
    written: list[Path] = []

    def put(relative: str, text: str) -> None:
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)

    put("docker-compose.yml", compose_file(loaded, context, _compose_header(loaded)))
    for name in loaded.domains:
        put(f"config/{name}.yaml", _config_header(loaded, name)
            + dump(_with_submitter(domain_config(loaded, name))))
    for workflow in loaded.workflows.values():
        # The spec as the scenario has it (a file's text, comments and all), so that the
        # submitter's `fedorch submit` reads exactly what `scenario run` read.
        as_written = workflow.written
        text = as_written if isinstance(as_written, str) else (
            f"# Workflow {workflow.id} of scenario {loaded.name}.\n" + dump(as_written))
        put(f"workflows/{workflow.id}.yaml", text)
    if loaded.workflows:
        put("submit.sh", submit_script(loaded))
    for arg, source in scripts_used(loaded).items():
        target = out / "steps" / Path(arg).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    keys_ignore = out / "keys" / ".gitignore"
    if not keys_ignore.exists():
        put("keys/.gitignore", "# Key pairs are made by `fedorch keys init`; never commit them.\n"
            "*\n!.gitignore\n")
    from fedorch.scenario.compose_readme import readme

    put("README.md", readme(loaded, partition_networks(loaded)))
    return written
