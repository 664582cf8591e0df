"""The agent config's semantic checks, section by section: what the schema walk
(runtime/yaml_proto.py) cannot say. Number ranges are `BOUNDS`, given to the walk;
`check` runs on the parsed config before defaults are filled in, `check_relations`
after (runtime/config.py runs them in that order).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fedorch.core.policy import rules as policy_rules
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.host_port import is_unspecified, parse_host_port
from fedorch.runtime.yaml_proto import (
    Bound,
    ConfigError,
    at_least,
    between,
    describe,
    enum_short_name,
    join_path,
    positive,
)

DOMAIN_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
CAPABILITY_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
BUILTIN_EXECUTORS = ("echo", "sleep", "fail")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")

BOUNDS: dict[str, Bound] = {
    "fedorch.v1.CapabilityConfig.capacity": positive("a positive integer"),
    "fedorch.v1.CapabilityConfig.cost": at_least(0, "a non-negative number"),
    "fedorch.v1.GossipConfig.publish_interval_s": positive("a positive number of seconds"),
    "fedorch.v1.NegotiationConfig.prepare_timeout_s": positive("a positive number of seconds"),
    "fedorch.v1.NegotiationConfig.max_rounds": between(1, 20, "an integer from 1 to 20"),
    "fedorch.v1.NegotiationConfig.lease_s": positive("a positive number of seconds"),
    "fedorch.v1.NegotiationConfig.replay_window_s": positive("a positive number of seconds"),
    "fedorch.v1.NegotiationConfig.signed_spec_window_s": positive("a positive number of seconds"),
    "fedorch.v1.NegotiationConfig.certificate_sweep_s": positive("a positive number of seconds"),
    "fedorch.v1.NegotiationConfig.takeover_after_s": positive("a positive number of seconds"),
    "fedorch.v1.NegotiationConfig.max_acceptors": (
        lambda v: 3 <= v <= 99 and v % 2 == 1,
        "an odd integer from 3 to 99 (Paxos Commit needs 2F+1 acceptors to survive F"
        " failures)"),
    "fedorch.v1.NegotiationConfig.step_lease_s": at_least(
        0, "a non-negative number of seconds (0: three times the time to a DEAD verdict)"),
    "fedorch.v1.RetentionConfig.keep_ended_s": positive("a positive number of seconds"),
    "fedorch.v1.RetentionConfig.max_ended_workflows": positive("a positive integer"),
    "fedorch.v1.RetentionConfig.keep_end_records_s": positive("a positive number of seconds"),
    "fedorch.v1.RetentionConfig.max_end_records": positive("a positive integer"),
}


def check_explicit_empty(data: Mapping[str, Any], source: str) -> None:
    """``accept_from: []`` would read as 'accept nobody' but the proto cannot tell it from
    unset, which defaults to everyone; refuse it rather than silently invert its meaning."""
    policy = data.get("policy")
    if isinstance(policy, dict) and policy.get("accept_from") == []:
        raise ConfigError(
            source,
            "policy.accept_from",
            "must not be empty; omit it to accept any trusted domain, "
            "or list this domain's own name to take only its own work",
        )


# `engine: shells` named the older engine, removed since; a config naming it (or anything
# but node) gets this one line, checked on the YAML before the schema walk, which would
# otherwise offer `shells` among the choices.
ENGINE_REMOVED = ("must be node (the only engine), got {got}: the older engine `shells` was"
                  " removed; an agent.db with its unfinished work must first be drained by"
                  " the previous release")


def check_engine(data: Mapping[str, Any], source: str) -> None:
    """ConfigError unless `engine` is absent or `node`."""
    if "engine" not in data:
        return
    value = data["engine"]
    if not (isinstance(value, str) and value.lower() == "node"):
        got = repr(value) if isinstance(value, str) else describe(value)
        raise ConfigError(source, "engine", ENGINE_REMOVED.format(got=got))


def _require(value: str, source: str, path: str, hint: str) -> None:
    if not value:
        raise ConfigError(source, path, f"required: {hint}")


def _not_empty(value: str, source: str, path: str) -> None:
    if not value:
        raise ConfigError(source, path, "must not be empty")


def _check_address(value: str, source: str, path: str) -> None:
    try:
        parse_host_port(value)
    except ValueError as exc:
        raise ConfigError(source, path, f"must be HOST:PORT: {exc}") from None


def check(config: config_pb2.AgentConfig, source: str) -> None:
    """Field-by-field checks on the parsed config, before defaults are filled in."""
    _require(config.domain, source, "domain", "this domain's unique name, e.g. eu-west")
    if not DOMAIN_RE.fullmatch(config.domain):
        raise ConfigError(
            source, "domain", f"must match [a-z0-9][a-z0-9.-]{{0,62}}, got {config.domain!r}"
        )
    _require(config.listen, source, "listen", "the gRPC address, e.g. 127.0.0.1:7101")
    _check_address(config.listen, source, "listen")
    if config.advertise:
        _check_address(config.advertise, source, "advertise")
        if is_unspecified(parse_host_port(config.advertise)[0]):
            raise ConfigError(source, "advertise", "must be an address peers can reach")
    elif is_unspecified(parse_host_port(config.listen)[0]):
        raise ConfigError(
            source,
            "advertise",
            "required when listen binds all interfaces; give the "
            "address peers reach this agent at, e.g. eu-west:7100",
        )
    for index, seed in enumerate(config.seeds):
        _check_address(seed, source, f"seeds[{index}]")
    if config.metrics_listen:
        _check_address(config.metrics_listen, source, "metrics_listen")
    if config.console_listen:
        _check_address(config.console_listen, source, "console_listen")
    _require(config.data_dir, source, "data_dir", "the directory for this agent's state")
    _require(config.key_file, source, "key_file", "the private key from `fedorch keys init`")
    for index, key_file in enumerate(config.trust.key_files):
        _not_empty(key_file, source, f"trust.key_files[{index}]")
    overlap = config.trust.rotation_overlap_s
    if config.trust.HasField("rotation_overlap_s") and not 0 < overlap <= 86400:
        raise ConfigError(source, "trust.rotation_overlap_s",
                          "must be a number of seconds above 0, at most 86400")
    _check_capabilities(config, source)
    _check_policy(config.policy, source)
    if config.log_level and config.log_level not in LOG_LEVELS:
        raise ConfigError(
            source,
            "log_level",
            f"must be one of: {', '.join(LOG_LEVELS)}, got {config.log_level!r}",
        )
    if config.log_format and config.log_format not in LOG_FORMATS:
        raise ConfigError(source, "log_format",
                          f"must be one of: {', '.join(LOG_FORMATS)}, got {config.log_format!r}")
    if config.HasField("telemetry"):
        _check_telemetry(config.telemetry, source)


def _check_telemetry(telemetry: config_pb2.TelemetryConfig, source: str) -> None:
    if not telemetry.otlp_endpoint and not telemetry.file:
        raise ConfigError(source, "telemetry",
                          "set otlp_endpoint (a collector, e.g. 127.0.0.1:4317) and/or file; "
                          "omit telemetry to turn tracing off")
    if telemetry.otlp_endpoint:
        address = re.sub(r"^https?://", "", telemetry.otlp_endpoint)
        _check_address(address, source, "telemetry.otlp_endpoint")


def _check_capabilities(config: config_pb2.AgentConfig, source: str) -> None:
    first: dict[str, int] = {}
    for index, cap in enumerate(config.capabilities):
        path = f"capabilities[{index}]"
        _require(cap.name, source, f"{path}.name", "the capability name, e.g. ml.train")
        if not CAPABILITY_RE.fullmatch(cap.name):
            raise ConfigError(
                source, f"{path}.name", f"must match [A-Za-z0-9._-]{{1,128}}, got {cap.name!r}"
            )
        if cap.name in first:
            raise ConfigError(
                source,
                f"{path}.name",
                f"duplicate capability {cap.name!r} (first at capabilities[{first[cap.name]}])",
            )
        first[cap.name] = index
        if cap.capacity < 1:
            raise ConfigError(source, f"{path}.capacity", "required: a positive integer")
        if not cap.HasField("executor"):
            raise ConfigError(
                source, f"{path}.executor", "required, e.g. {type: builtin, name: echo}"
            )
        _check_executor(cap.executor, source, f"{path}.executor")
        for key, value in cap.produces.items():
            _not_empty(value, source, join_path(f"{path}.produces", key))


def _check_executor(executor: config_pb2.ExecutorConfig, source: str, path: str) -> None:
    """Build the executor once, without running anything: its type must be installed and
    its factory must accept the settings (each type checks its own fields and options)."""
    from fedorch.runtime.executors import ExecutorConfigError, build_from_config, installed_types

    for key in executor.env:
        if not key or "=" in key:
            raise ConfigError(
                source, join_path(f"{path}.env", key), "must be a non-empty name without '='"
            )
    for index, arg in enumerate(executor.argv):
        _not_empty(arg, source, f"{path}.argv[{index}]")
    if not executor.type:
        installed = ", ".join(sorted(installed_types())) or "none"
        raise ConfigError(source, f"{path}.type", f"must be one of: {installed}")
    if executor.type == "command":
        if not executor.argv:
            raise ConfigError(
                source, f"{path}.argv", "required for type command, e.g. [python3, step.py]"
            )
        if executor.name:
            raise ConfigError(source, f"{path}.name", "only for type builtin; remove it")
    elif executor.type == "builtin":
        if executor.name not in BUILTIN_EXECUTORS:
            got = f", got {executor.name!r}" if executor.name else ""
            raise ConfigError(
                source, f"{path}.name", f"must be one of: {', '.join(BUILTIN_EXECUTORS)}{got}"
            )
        if executor.argv:
            raise ConfigError(source, f"{path}.argv", "only for type command; remove it")
    try:
        build_from_config(executor)
    except ExecutorConfigError as e:
        where = f"{path}.{e.field}" if e.field else path
        # The factory's message starts with the field it names; the path says it already.
        problem = str(e)
        prefix = f"executor.{e.field}:" if e.field else ""
        if prefix and problem.startswith(prefix):
            problem = problem[len(prefix):]
        raise ConfigError(source, where, problem) from None


def _check_policy(policy: config_pb2.Policy, source: str) -> None:
    for index, name in enumerate(policy.accept_from):
        if name != "*" and not DOMAIN_RE.fullmatch(name):
            raise ConfigError(
                source,
                f"policy.accept_from[{index}]",
                f"must be '*' or a domain name, got {name!r}",
            )
    _check_accept_principals(policy, source)
    for index, jurisdiction in enumerate(policy.residency.accept):
        _not_empty(jurisdiction, source, f"policy.residency.accept[{index}]")
    for key, allowed in policy.egress.to_labels.items():
        for index, value in enumerate(allowed.values):
            _not_empty(value, source, f"{join_path('policy.egress.to_labels', key)}[{index}]")
    for index, name in enumerate(policy.egress.to_domains):
        if not DOMAIN_RE.fullmatch(name):
            raise ConfigError(source, f"policy.egress.to_domains[{index}]",
                              f"must be a domain name, got {name!r}")
    _check_rules(policy, source)


def _check_accept_principals(policy: config_pb2.Policy, source: str) -> None:
    """Each ``{domain, principals}`` entry names one domain, once, and principals that
    domain may vouch for: ``alice``, ``alice@DOMAIN``, ``domain:DOMAIN`` or ``*``."""
    from fedorch.core.identity.clients import home_domain, is_valid_principal

    seen: dict[str, int] = {}
    for index, entry in enumerate(policy.accept_from_principals):
        path = f"policy.accept_from_principals[{index}]"
        if not DOMAIN_RE.fullmatch(entry.domain):
            raise ConfigError(source, f"{path}.domain",
                              f"must be a domain name, got {entry.domain!r}")
        if entry.domain in seen:
            raise ConfigError(source, f"{path}.domain", f"{entry.domain} is listed twice"
                              f" (first at policy.accept_from_principals[{seen[entry.domain]}])")
        seen[entry.domain] = index
        if not entry.principals:
            raise ConfigError(source, f"{path}.principals",
                              "must not be empty: list the principals, or name the domain "
                              "in accept_from to take all its work")
        for p_index, name in enumerate(entry.principals):
            own = name in ("*", f"domain:{entry.domain}") or (
                is_valid_principal(name) and home_domain(name) in ("", entry.domain))
            if not own:
                raise ConfigError(
                    source, f"{path}.principals[{p_index}]",
                    f"must be a client name that {entry.domain} vouches for (alice or "
                    f"alice@{entry.domain}), domain:{entry.domain} or '*', got {name!r}")


def _check_rules(policy: config_pb2.Policy, source: str) -> None:
    """Each CEL rule compiles and can be evaluated (a bad rule names itself)."""
    if len(policy.rules) > policy_rules.MAX_RULES:
        raise ConfigError(source, "policy.rules",
                          f"{len(policy.rules)} rules, at most {policy_rules.MAX_RULES}")
    first: dict[str, int] = {}
    for index, rule in enumerate(policy.rules):
        path = f"policy.rules[{index}]"
        if not policy_rules.RULE_NAME_RE.fullmatch(rule.name):
            raise ConfigError(source, f"{path}.name",
                              f"required: 1 to 64 of [A-Za-z0-9._-], got {rule.name!r}")
        if rule.name in first:
            raise ConfigError(source, f"{path}.name", f"duplicate rule {rule.name!r} "
                              f"(first at policy.rules[{first[rule.name]}])")
        first[rule.name] = index
        if len(rule.message) > policy_rules.MAX_MESSAGE_CHARS:
            raise ConfigError(source, f"{path}.message",
                              f"at most {policy_rules.MAX_MESSAGE_CHARS} characters")
        try:
            policy_rules.check_rule(rule)
        except policy_rules.RuleError as exc:
            raise ConfigError(source, f"{path}.expression", f"rule {rule.name}: {exc}") from None


def check_clients(config: config_pb2.AgentConfig, source: str) -> None:
    """`clients.key_files` and the `access` rules (who may do what through this agent)."""
    from fedorch.core.identity.clients import (
        ANY_PRINCIPAL,
        DOMAIN_PRINCIPAL_PREFIX,
        PERMISSIONS,
        is_valid_principal,
    )

    for index, key_file in enumerate(config.clients.key_files):
        _not_empty(key_file, source, f"clients.key_files[{index}]")
    for index, rule in enumerate(config.access):
        path = f"access[{index}]"
        if not rule.principals:
            raise ConfigError(source, f"{path}.principals",
                              "required: who this rule is for, e.g. [alice@eu-west]")
        for p_index, name in enumerate(rule.principals):
            domain = name.removeprefix(DOMAIN_PRINCIPAL_PREFIX)
            if name == ANY_PRINCIPAL or is_valid_principal(name) or (
                    name.startswith(DOMAIN_PRINCIPAL_PREFIX) and DOMAIN_RE.fullmatch(domain)):
                continue
            raise ConfigError(
                source, f"{path}.principals[{p_index}]",
                f"must be a client name (alice or alice@eu-west), domain:NAME or '*', "
                f"got {name!r}")
        if not rule.allow:
            raise ConfigError(source, f"{path}.allow",
                              f"required: a list of permissions from {', '.join(PERMISSIONS)}")
        for a_index, permission in enumerate(rule.allow):
            if permission not in PERMISSIONS:
                raise ConfigError(source, f"{path}.allow[{a_index}]",
                                  f"must be one of: {', '.join(PERMISSIONS)}, got {permission!r}")


def check_relations(config: config_pb2.AgentConfig, source: str) -> None:
    """Checks between fields, once defaults have made every value explicit."""
    _check_membership_profile(config.gossip, source)
    if config.metrics_listen and config.metrics_listen == config.listen:
        raise ConfigError(source, "metrics_listen", "must differ from listen")
    if config.console_listen and config.console_listen in (config.listen, config.metrics_listen):
        raise ConfigError(source, "console_listen", "must differ from listen and metrics_listen")


def gossip_profile_name(profile: int) -> str:
    """The swim_profiles name of a GossipProfile value (unset: lan)."""
    return enum_short_name(config_pb2.GossipProfile.DESCRIPTOR,
                           profile or config_pb2.GOSSIP_PROFILE_LAN)


def _check_membership_profile(gossip: config_pb2.GossipConfig, source: str) -> None:
    """The profile's overrides must make a valid SWIM profile."""
    import dataclasses

    from fedorch.core.membership.swim_profiles import (
        INTEGER_FIELDS,
        SwimProfile,
        make_profile,
        typed_overrides,
    )

    fields = {f.name for f in dataclasses.fields(SwimProfile)}
    for name, value in sorted(gossip.tuning.items()):
        if name not in fields:
            raise ConfigError(source, f"gossip.tuning.{name}",
                              f"unknown key (valid keys: {', '.join(sorted(fields))})")
        if name in INTEGER_FIELDS and value != int(value):
            raise ConfigError(source, f"gossip.tuning.{name}",
                              f"must be a whole number, got {value:g}")
    try:
        make_profile(gossip_profile_name(gossip.profile), **typed_overrides(dict(gossip.tuning)))
    except ValueError as e:
        raise ConfigError(source, "gossip.tuning", str(e)) from None
