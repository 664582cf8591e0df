"""Each scenario domain's agent config, as a plain dict ready for YAML.

One builder for every runner and for compose: they differ only in addresses, where
data and keys live, and how a step script's path is written (a host path for the
process runner, a path in the container for compose).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fedorch.runtime.config import enum_short_name
from fedorch.scenario.model import LoadedScenario
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

SEEDS_PER_DOMAIN = 3
# The side-effect step (scenarios/steps/record.py) appends one line per run to the file
# this variable names; a runner sets it per domain.
RUNS_ENV = "FEDORCH_SCENARIO_RUNS"
DOMAIN_ENV = "FEDORCH_SCENARIO_DOMAIN"


def _plain(message: Message) -> dict[str, Any]:
    """A message as an agent config's YAML says it: enum values by their short names
    (`profile: local`, not GOSSIP_PROFILE_LOCAL), as users write them."""
    plain = json_format.MessageToDict(message, preserving_proto_field_name=True)
    _short_enums(message, plain)
    return plain


def _short_enums(message: Message, plain: dict[str, Any]) -> None:
    for field, value in message.ListFields():
        if field.name not in plain:
            continue
        if field.type == FieldDescriptor.TYPE_ENUM and not field.is_repeated:
            plain[field.name] = enum_short_name(field.enum_type, value)
        elif (field.type == FieldDescriptor.TYPE_MESSAGE and not field.is_repeated
              and isinstance(plain[field.name], dict)
              and not field.message_type.GetOptions().map_entry):
            _short_enums(value, plain[field.name])


def seeds_for(name: str, names: list[str]) -> list[str]:
    """A few fixed seeds: the first domains of the scenario other than this one. Every
    domain then joins through the same few, which is how a real federation bootstraps."""
    return [other for other in names if other != name][:SEEDS_PER_DOMAIN]


def trusted_domains(loaded: LoadedScenario, name: str) -> list[str]:
    listed = list(loaded.domains[name].spec.trust)
    return [d for d in (listed or loaded.domains) if d != name]


def host_script(loaded: LoadedScenario) -> Callable[[str], str | None]:
    """Executor arguments naming a file next to the scenario become absolute host paths."""
    def resolve(arg: str) -> str | None:
        candidate = loaded.base_dir / arg
        return str(candidate.resolve()) if candidate.is_file() else None
    return resolve


def is_script_arg(arg: str) -> bool:
    return bool(arg) and not arg.startswith("-") and not os.path.isabs(arg) and (
        "/" in arg or arg.endswith((".py", ".sh")))


def agent_config(
    loaded: LoadedScenario,
    name: str,
    *,
    addresses: Mapping[str, str],
    data_dir: str,
    keys_dir: str,
    metrics_listen: str | None,
    listen: str | None = None,
    python: str = sys.executable,
    script: Callable[[str], str | None] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> dict[str, Any]:
    """The agent config of domain `name`. `addresses` are what peers dial (advertise);
    `listen` defaults to this domain's address. `script` rewrites step-script paths."""
    domain = loaded.domains[name].spec
    defaults = loaded.scenario.defaults
    resolve = script or host_script(loaded)
    config: dict[str, Any] = {
        "domain": name,
        "listen": listen or addresses[name],
        "advertise": addresses[name],
        "data_dir": data_dir,
        "key_file": f"{keys_dir}/{name}.key",
        "seeds": [addresses[s] for s in seeds_for(name, list(loaded.domains))],
        "trust": {"key_files": [f"{keys_dir}/{d}.pub" for d in trusted_domains(loaded, name)]},
    }
    if metrics_listen:
        config["metrics_listen"] = metrics_listen
    if defaults.log_level:
        config["log_level"] = defaults.log_level
    if domain.labels:
        config["labels"] = dict(sorted(domain.labels.items()))  # proto maps have no order
    capabilities = [_plain(c) for c in domain.capabilities]
    for capability in capabilities:
        _rewrite_executor(capability.get("executor", {}), python, resolve, env, cwd)
    if capabilities:
        config["capabilities"] = capabilities
    if domain.HasField("policy"):
        config["policy"] = _plain(domain.policy)
        egress = config["policy"].get("egress", {})
        for key, allowed in egress.get("to_labels", {}).items():  # the YAML form: [EU]
            egress["to_labels"][key] = list(allowed.get("values", []))
    for key in ("gossip", "negotiation"):
        merged = {**_plain(getattr(defaults, key)), **_plain(getattr(domain, key))}
        if "tuning" in merged:
            merged["tuning"] = dict(sorted(merged["tuning"].items()))
        if merged:
            config[key] = merged
    return config


def _rewrite_executor(
    executor: dict[str, Any],
    python: str,
    resolve: Callable[[str], str | None],
    env: Mapping[str, str] | None,
    cwd: str | None,
) -> None:
    if executor.get("type") != "command":
        return
    argv = list(executor.get("argv") or [])
    if argv and argv[0] in ("python", "python3"):
        argv[0] = python
    executor["argv"] = [
        (resolve(arg) or arg) if index and is_script_arg(arg) else arg
        for index, arg in enumerate(argv)
    ]
    if env:
        executor["env"] = {**executor.get("env", {}), **env}
    if executor.get("env"):
        executor["env"] = dict(sorted(executor["env"].items()))
    if cwd and not executor.get("cwd"):
        executor["cwd"] = cwd


def scripts_used(loaded: LoadedScenario) -> dict[str, Path]:
    """Step scripts the scenario's command executors name: argument -> file on the host."""
    found: dict[str, Path] = {}
    for domain in loaded.domains.values():
        for capability in domain.spec.capabilities:
            if capability.executor.type != "command":
                continue
            for arg in list(capability.executor.argv)[1:]:
                path = loaded.base_dir / arg
                if is_script_arg(arg) and path.is_file():
                    found[arg] = path.resolve()
    return found
