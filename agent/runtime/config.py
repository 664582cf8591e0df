"""Agent configuration: a YAML file mapped onto ``config_pb2.AgentConfig``.

The daemon trusts what :func:`load_config` returns: every field is checked, defaults are
filled in and relative paths are made absolute against the config file's directory, so no
later code has to know where the file was or guess what an unset field means.

This module loads and completes a config: reading the file, the rewrites of YAML's
friendlier forms before the schema check, the defaults and the paths. It is composed of
runtime/yaml_proto.py (the YAML-onto-protobuf machinery, shared with the workflow spec
and scenario loaders), runtime/config_checks.py (the semantic checks, section by section)
and runtime/host_port.py (``HOST:PORT``); the names callers use from those are
re-exported here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.config_checks import (
    BOUNDS,
    BUILTIN_EXECUTORS,
    CAPABILITY_RE,
    DOMAIN_RE,
    LOG_FORMATS,
    LOG_LEVELS,
    check,
    check_clients,
    check_engine,
    check_explicit_empty,
    check_relations,
    gossip_profile_name,
)
from fedorch.runtime.host_port import parse_host_port
from fedorch.runtime.yaml_proto import (
    Bound,
    ConfigError,
    ErrorType,
    SourceError,
    at_least,
    between,
    check_fields,
    describe,
    enum_choices,
    enum_short_name,
    join_path,
    load_yaml_mapping,
    positive,
    read_source,
    to_message,
)

__all__ = [
    "BUILTIN_EXECUTORS", "CAPABILITY_RE", "DOMAIN_RE", "LOG_FORMATS", "LOG_LEVELS",
    "MAX_CONFIG_BYTES", "Bound", "ConfigError", "ErrorType", "SourceError", "at_least",
    "between", "check_fields", "describe", "enum_choices", "enum_short_name",
    "gossip_profile_name", "join_path", "load_config", "load_yaml_mapping",
    "parse_config_text", "parse_host_port", "positive", "read_source", "to_message",
    "trust_overlap_s", "without_effect",
]

MAX_CONFIG_BYTES = 1024 * 1024

GOSSIP_DEFAULTS = {"profile": config_pb2.GOSSIP_PROFILE_LAN, "publish_interval_s": 1.0}
NEGOTIATION_DEFAULTS = {
    "prepare_timeout_s": 3.0,
    "max_rounds": 3,
    "lease_s": 30.0,
    "replay_window_s": 60.0,
    "signed_spec_window_s": 3600.0,
    "takeover_after_s": 10.0,
    "max_acceptors": 5,
    "commit": config_pb2.COMMIT_PROTOCOL_PAXOS,
}
RETENTION_DEFAULTS = {"keep_ended_s": 604800.0, "max_ended_workflows": 100000,
                      "keep_end_records_s": 86400.0, "max_end_records": 100000}


def load_config(path: str | os.PathLike[str]) -> config_pb2.AgentConfig:
    """Read, check and complete an agent config file; relative paths are resolved against
    the file's directory, so the daemon behaves the same whatever its working directory."""
    text = read_source(path, MAX_CONFIG_BYTES, ConfigError)
    return parse_config_text(text, str(path), os.path.dirname(os.path.abspath(path)))


def parse_config_text(
    text: str, source: str, base_dir: str | os.PathLike[str]
) -> config_pb2.AgentConfig:
    """The testable core of :func:`load_config`: text in, complete AgentConfig out."""
    if len(text.encode("utf-8")) > MAX_CONFIG_BYTES:
        raise ConfigError(source, "", f"config is over {MAX_CONFIG_BYTES} bytes")
    data = load_yaml_mapping(text, source, ConfigError)
    _expand_egress_labels(data, source)
    check_explicit_empty(data, source)
    _split_accept_from(data, source)
    check_engine(data, source)
    check_fields(data, config_pb2.AgentConfig.DESCRIPTOR, source, ConfigError, BOUNDS)
    config = config_pb2.AgentConfig()
    to_message(data, config, source, ConfigError)
    check(config, source)
    check_clients(config, source)
    _apply_defaults(config)
    check_relations(config, source)
    _resolve_paths(config, os.path.abspath(base_dir))
    return config


def _expand_egress_labels(data: Mapping[str, Any], source: str) -> None:
    """``to_labels: {jurisdiction: [EU]}`` (or ``: EU``) is YAML's form of the proto's
    ``{jurisdiction: {values: [EU]}}``: rewrite it in place before the schema check."""
    policy = data.get("policy")
    egress = policy.get("egress") if isinstance(policy, dict) else None
    to_labels = egress.get("to_labels") if isinstance(egress, dict) else None
    if not isinstance(to_labels, dict):
        return  # absent, or the schema check names what is wrong
    for key, allowed in list(to_labels.items()):
        if isinstance(allowed, str):
            allowed = [allowed]
        if not isinstance(allowed, list) or not allowed:
            raise ConfigError(source, join_path("policy.egress.to_labels", str(key)),
                              f"must be a non-empty list of values, e.g. [EU], "
                              f"got {describe(allowed)}")
        to_labels[key] = {"values": allowed}


def _split_accept_from(data: Mapping[str, Any], source: str) -> None:
    """``accept_from`` mixes names and ``{domain, principals}`` entries in YAML; the proto
    keeps the latter in ``accept_from_principals``: move them there, in place, before the
    schema check (which then names any unknown key of an entry)."""
    policy = data.get("policy")
    accept_from = policy.get("accept_from") if isinstance(policy, dict) else None
    if not isinstance(accept_from, list):
        return  # absent, or the schema check names what is wrong
    names = [entry for entry in accept_from if not isinstance(entry, dict)]
    entries = [entry for entry in accept_from if isinstance(entry, dict)]
    if not entries:
        return
    for index, entry in enumerate(accept_from):
        if isinstance(entry, dict) and not isinstance(entry.get("principals"), list):
            raise ConfigError(source, f"policy.accept_from[{index}].principals",
                              "required: a list of principals this domain takes work for "
                              "from that coordinator, e.g. [alice]")
    policy["accept_from_principals"] = [*policy.get("accept_from_principals", []), *entries]
    if names:
        policy["accept_from"] = names
    else:
        del policy["accept_from"]


def _apply_defaults(config: config_pb2.AgentConfig) -> None:
    """Fill unset fields. Zero means unset here: explicit zeros were refused by the bounds."""
    if not config.advertise:
        config.advertise = config.listen
    if not config.policy.accept_from and not config.policy.accept_from_principals:
        config.policy.accept_from.append("*")  # with principal entries only: just those
    if not config.policy.HasField("publish"):
        config.policy.publish = True
    for name, value in GOSSIP_DEFAULTS.items():
        if not getattr(config.gossip, name):
            setattr(config.gossip, name, value)
    for name, value in NEGOTIATION_DEFAULTS.items():
        if not getattr(config.negotiation, name):
            setattr(config.negotiation, name, value)
    for name, value in RETENTION_DEFAULTS.items():
        if not getattr(config.retention, name):
            setattr(config.retention, name, value)
    if not config.log_level:
        config.log_level = "info"
    if not config.log_format:
        config.log_format = "text"


def _absolute(path: str, base_dir: str) -> str:
    return os.path.normpath(os.path.join(base_dir, os.path.expanduser(path)))


def _resolve_paths(config: config_pb2.AgentConfig, base_dir: str) -> None:
    """Make file paths absolute against the config's directory. A command executor with
    no cwd runs there too, so ``argv: [python3, extract.py]`` finds a script kept next to
    the config whatever directory the daemon was started from."""
    config.data_dir = _absolute(config.data_dir, base_dir)
    config.key_file = _absolute(config.key_file, base_dir)
    if config.telemetry.file:
        config.telemetry.file = _absolute(config.telemetry.file, base_dir)
    key_files = [_absolute(p, base_dir) for p in config.trust.key_files]
    del config.trust.key_files[:]
    config.trust.key_files.extend(key_files)
    client_files = [_absolute(p, base_dir) for p in config.clients.key_files]
    del config.clients.key_files[:]
    config.clients.key_files.extend(client_files)
    for cap in config.capabilities:
        if cap.executor.type == "command":
            cap.executor.cwd = _absolute(cap.executor.cwd or ".", base_dir)


def trust_overlap_s(config: config_pb2.AgentConfig) -> float:
    """How long a rotated-away key still verifies live messages (trust.rotation_overlap_s;
    60 s when unset)."""
    t = config.trust
    return t.rotation_overlap_s if t.HasField("rotation_overlap_s") else 60.0


def without_effect(config: config_pb2.AgentConfig) -> list[str]:
    """What the config sets that this version no longer acts on, one warning each. Such
    a field still loads (an operator's config from before keeps working) and the daemon
    logs these once at start, so that nobody tunes a knob that turns nothing."""
    warnings = []
    if config.negotiation.HasField("batching"):
        warnings.append(
            "negotiation.batching has no effect: the node engine sends one signed "
            "envelope per peer and turn, carrying every message of that turn for the "
            "peer, so there is nothing left to batch; remove the field")
    if config.negotiation.certificate_sweep_s:  # unset is 0 (an explicit 0 is refused)
        warnings.append(
            "negotiation.certificate_sweep_s has no effect: the node engine has no "
            "certificate sweep (the Node resends a COMMIT until each participant "
            "acknowledges it, on its own timer) and its retention runs on its own "
            "ticks; remove the field")
    return warnings
