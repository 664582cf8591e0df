"""Agent configuration: a YAML file mapped onto ``config_pb2.AgentConfig``.

The daemon trusts what :func:`load_config` returns: every field is checked, defaults are
filled in and relative paths are made absolute against the config file's directory, so no
later code has to know where the file was or guess what an unset field means.

The first half of this module is the YAML-onto-protobuf machinery that the workflow spec
loader (``fedorch.core.workflow.spec``) shares: strict YAML loading, a walk of the parsed data
against a message descriptor (so an unknown key or a wrong type gets a one-line error that
names the file and the field, instead of json_format's terse message), and ``ParseDict``.
An enum is written by its short lower-case name (``commit: 2pc`` for COMMIT_PROTOCOL_2PC);
the walk turns it into the proto's name before ``ParseDict``, so code compares values.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import yaml
from fedorch.core.policy import rules as policy_rules
from fedorch.gen.fedorch.v1 import config_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

MAX_CONFIG_BYTES = 1024 * 1024
DOMAIN_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,62}")
CAPABILITY_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
BUILTIN_EXECUTORS = ("echo", "sleep", "fail")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("text", "json")

# Aliases let a small YAML file describe a huge tree; the walk gives up past this many values.
_MAX_VALUES = 2_000_000
# Deeper than this is a mistake, and deep enough to trouble recursive code downstream.
_MAX_DEPTH = 32


# ---------------------------------------------------------------------------------------
# Errors


class SourceError(ValueError):
    """A problem in an input file, as one line: ``SOURCE: FIELD: PROBLEM``.

    One line because it ends up in CLI output, logs and gRPC status details alike; the
    parts stay available as attributes for callers that want to format them differently.
    """

    def __init__(self, source: str, path: str, problem: str) -> None:
        self.source = source
        self.path = path
        self.problem = " ".join(problem.split())
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {self.problem}")


class ConfigError(SourceError):
    """The agent config file is unreadable or invalid."""


ErrorType = type[SourceError]


# ---------------------------------------------------------------------------------------
# Shared YAML-onto-protobuf machinery


def read_source(path: str | os.PathLike[str], limit: int, error: ErrorType) -> str:
    """Read a UTF-8 text file of at most ``limit`` bytes.

    The size is checked before reading so a huge file costs nothing; the read is still
    bounded in case the file grows in between.
    """
    source = str(path)
    try:
        size = os.stat(path).st_size
        if size > limit:
            raise error(source, "", f"file is {size} bytes, at most {limit} allowed")
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as exc:
        raise error(source, "", f"cannot read file: {exc.strerror or exc}") from exc
    if len(raw) > limit:
        raise error(source, "", f"file is over {limit} bytes, at most {limit} allowed")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(source, "", f"not UTF-8 text (byte {exc.start})") from exc


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, which plain YAML silently resolves to the
    last one: a config with two ``policy:`` blocks would otherwise lose the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = self.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml_mapping(text: str, source: str, error: ErrorType) -> dict[Any, Any]:
    """Parse YAML text whose top level must be a mapping; syntax errors give line:column."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = exc.problem or exc.context or "syntax error"
        if exc.problem and exc.context and exc.context.startswith("expected"):
            what = f"{exc.context}, {exc.problem}"  # "expected a single document ..."
        raise error(source, where, f"invalid YAML: {what}") from exc
    except yaml.YAMLError as exc:
        raise error(source, "", f"invalid YAML: {exc}") from exc
    except RecursionError as exc:
        raise error(source, "", "invalid YAML: nested too deeply") from exc
    if data is None:
        raise error(source, "", "file is empty, expected a mapping of keys")
    if not isinstance(data, dict):
        raise error(source, "", f"top level must be a mapping of keys, got {describe(data)}")
    return data


def describe(value: Any) -> str:
    """A short, user-facing description of a parsed YAML value, for 'got ...' messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__} ({value})"


def enum_choices(enum: EnumDescriptor) -> dict[str, str]:
    """An enum's names as YAML gives them (COMMIT_PROTOCOL_2PC: 2pc), to the proto's
    names; its UNSPECIFIED value is not a choice (unset is)."""
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return {v.name.removeprefix(prefix).lower(): v.name for v in enum.values if v.number}


def enum_short_name(enum: EnumDescriptor, number: int) -> str:
    """The YAML name of an enum value (2 of CommitProtocol: 2pc)."""
    prefix = enum.values_by_number[0].name.removesuffix("UNSPECIFIED")
    return enum.values_by_number[number].name.removeprefix(prefix).lower()


def _key_problem(key: Any) -> str:
    if isinstance(key, bool):
        return (
            f"key {str(key).lower()} must be a string; YAML reads unquoted yes/no/on/off "
            "as booleans, so quote it"
        )
    if key == "":
        return "keys must not be empty"
    return f"key {key!r} must be a string; quote it"


def _plain(value: Any) -> str:
    """A scalar as it can be written in a YAML flow list, quoted only when it must be."""
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z0-9_./-][A-Za-z0-9_.:/-]*", text) else repr(text)


def join_path(path: str, key: str) -> str:
    """Extend a field path with a key; keys that are not plain words are bracketed."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", key):
        return f"{path}[{key!r}]"
    return f"{path}.{key}" if path else key


# A check on a number field: predicate and what the message says the value must be.
Bound = tuple[Callable[[float], bool], str]

_INT_RANGES: dict[int, tuple[int, int, str]] = {
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1, "a non-negative integer"),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1, "a non-negative integer"),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1, "an integer"),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1, "an integer"),
}
_FLOAT_TYPES = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


class _Walk:
    """Checks parsed YAML against a message descriptor before ``ParseDict`` sees it.

    ``ParseDict`` would catch most of these too, but its messages name neither the file
    nor a usable path, and it accepts things we do not want (camelCase keys, numbers as
    strings). ``bounds`` maps a field's full name to a range check, so errors like
    'capacity: must be a positive integer, got -1' come out before the unsigned proto
    field could turn -1 into a parse failure.
    """

    def __init__(self, source: str, error: ErrorType, bounds: Mapping[str, Bound]) -> None:
        self.source = source
        self.error = error
        self.bounds = bounds
        self.values = 0

    def fail(self, path: str, problem: str) -> NoReturn:
        raise self.error(self.source, path, problem)

    def count(self, path: str) -> None:
        self.values += 1
        if self.values > _MAX_VALUES:
            self.fail(path, f"more than {_MAX_VALUES} values (do YAML aliases expand here?)")

    def message(self, value: Any, desc: Descriptor, path: str, depth: int) -> None:
        self.count(path)
        if desc.full_name == "google.protobuf.Struct":
            self.json_value(value, path, depth, top=True)
            return
        if depth > _MAX_DEPTH:
            self.fail(path, "nested too deeply")
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping of keys, got {describe(value)}")
        for key, item in value.items():
            if not isinstance(key, str):
                self.fail(path, _key_problem(key))
            field = desc.fields_by_name.get(key)
            if field is None:
                self.unknown_key(key, desc, path)
            if item is not None:  # `key:` with no value leaves the field unset
                self.field(item, field, join_path(path, key), depth + 1)
                if field.type == FieldDescriptor.TYPE_ENUM and not field.is_repeated:
                    # As ParseDict takes it (our schemas have no enums in lists or maps).
                    value[key] = enum_choices(field.enum_type)[item.lower()]

    def unknown_key(self, key: str, desc: Descriptor, path: str) -> NoReturn:
        names = [f.name for f in desc.fields]
        by_json = {f.json_name: f.name for f in desc.fields}
        guess = by_json.get(key) or next(iter(difflib.get_close_matches(key, names, 1)), None)
        hint = f", did you mean {guess!r}?" if guess else ""
        self.fail(join_path(path, key), f"unknown key{hint} (valid keys here: {', '.join(names)})")

    def field(self, value: Any, field: FieldDescriptor, path: str, depth: int) -> None:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            self.map(value, entry, path, depth)
        elif field.is_repeated:
            if not isinstance(value, list):
                hint = f"; write [{_plain(value)}]" if isinstance(value, str | int | float) else ""
                self.fail(path, f"must be a list, got {describe(value)}{hint}")
            for index, item in enumerate(value):
                self.single(item, field, f"{path}[{index}]", depth + 1)
        else:
            self.single(value, field, path, depth)

    def map(self, value: Any, entry: Descriptor, path: str, depth: int) -> None:
        if not isinstance(value, dict):
            self.fail(path, f"must be a mapping, got {describe(value)}")
        value_field = entry.fields_by_name["value"]
        for key, item in value.items():
            if not isinstance(key, str) or not key:
                self.fail(path, _key_problem(key))
            self.single(item, value_field, join_path(path, key), depth + 1)

    def single(self, value: Any, field: FieldDescriptor, path: str, depth: int) -> None:
        self.count(path)
        kind = field.type
        if kind == FieldDescriptor.TYPE_MESSAGE:
            self.message(value, field.message_type, path, depth)
        elif kind in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
            if not isinstance(value, str):
                hint = "" if isinstance(value, list | dict) else "; quote it"
                self.fail(path, f"must be a string, got {describe(value)}{hint}")
        elif kind == FieldDescriptor.TYPE_BOOL:
            if not isinstance(value, bool):
                self.fail(path, f"must be true or false, got {describe(value)}")
        elif kind in _INT_RANGES:
            lo, hi, what = _INT_RANGES[kind]
            check, what = self.bounds.get(field.full_name, (lambda v: lo <= v <= hi, what))
            if not isinstance(value, int) or isinstance(value, bool):
                self.fail(path, f"must be {what}, got {describe(value)}")
            if not (lo <= value <= hi and check(value)):
                self.fail(path, f"must be {what}, got {value}")
        elif kind in _FLOAT_TYPES:
            check, what = self.bounds.get(field.full_name, (lambda v: True, "a number"))
            if not isinstance(value, int | float) or isinstance(value, bool):
                self.fail(path, f"must be {what}, got {describe(value)}")
            if not math.isfinite(value) or not check(value):
                self.fail(path, f"must be {what}, got {value}")
        elif kind == FieldDescriptor.TYPE_ENUM:
            choices = enum_choices(field.enum_type)
            if not isinstance(value, str) or value.lower() not in choices:
                got = repr(value) if isinstance(value, str) else describe(value)
                self.fail(path, f"must be one of: {', '.join(choices)}, got {got}")
        # Other kinds do not occur in our schemas; ParseDict judges them.

    def json_value(self, value: Any, path: str, depth: int, top: bool = False) -> None:
        """Struct content must be JSON data: YAML dates, sets and the like cannot go in."""
        self.count(path)
        if depth > _MAX_DEPTH:
            self.fail(path, "nested too deeply")
        if top and not isinstance(value, dict):
            self.fail(path, f"must be a mapping of keys, got {describe(value)}")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    self.fail(path, _key_problem(key))
                self.json_value(item, join_path(path, key), depth + 1)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self.json_value(item, f"{path}[{index}]", depth + 1)
        elif isinstance(value, bool | int | str) or value is None:
            pass  # integers of any size: JSON values travel as text (core/workflow/values.py)
        elif isinstance(value, float):
            if not math.isfinite(value):
                self.fail(path, f"must be a finite number, got {value}")
        else:
            self.fail(path, f"must be JSON data, got {describe(value)}; quote it")


def check_fields(
    data: Mapping[str, Any],
    desc: Descriptor,
    source: str,
    error: ErrorType,
    bounds: Mapping[str, Bound] | None = None,
) -> None:
    """Check keys, types and number ranges of parsed YAML against a message descriptor."""
    _Walk(source, error, bounds or {}).message(data, desc, "", 0)


def to_message(data: Mapping[str, Any], message: Message, source: str, error: ErrorType) -> None:
    """``ParseDict`` into ``message``; after ``check_fields`` a failure here is our bug,
    but it still comes out as the caller's error type rather than a traceback."""
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as exc:
        raise error(source, "", f"does not fit the schema: {exc}") from exc


def positive(what: str = "a positive number") -> Bound:
    return (lambda v: v > 0), what


def at_least(lo: float, what: str) -> Bound:
    return (lambda v: v >= lo), what


def between(lo: float, hi: float, what: str) -> Bound:
    return (lambda v: lo <= v <= hi), what


# ---------------------------------------------------------------------------------------
# HOST:PORT


_HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)


def parse_host_port(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv4, ``[IPv6]:port`` or a hostname); ValueError says why not.

    The host comes back without brackets. Shared with the CLI's ``--peer`` so the config
    and the command line accept exactly the same addresses.
    """
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' after the IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
        if not rest.startswith(":"):
            raise ValueError("expected [IPv6]:PORT, e.g. [::1]:7101")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError("the port is missing, e.g. 127.0.0.1:7101")
        if ":" in host:
            raise ValueError("an IPv6 address needs brackets, e.g. [::1]:7101")
        if not host:
            raise ValueError("the host is missing, e.g. 127.0.0.1:7101")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError(f"{host!r} is not an IPv4 address") from None
        elif not _HOSTNAME_RE.fullmatch(host):
            raise ValueError(f"{host!r} is not a valid host name")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from 1 to 65535, got {port_text!r}")
    return host, int(port_text)


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------
# Agent config


_BOUNDS: dict[str, Bound] = {
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
}

GOSSIP_DEFAULTS = {"profile": config_pb2.GOSSIP_PROFILE_LAN, "publish_interval_s": 1.0}
NEGOTIATION_DEFAULTS = {
    "prepare_timeout_s": 3.0,
    "max_rounds": 3,
    "lease_s": 30.0,
    "replay_window_s": 60.0,
    "signed_spec_window_s": 3600.0,
    "certificate_sweep_s": 30.0,
    "takeover_after_s": 10.0,
    "max_acceptors": 5,
    "commit": config_pb2.COMMIT_PROTOCOL_PAXOS,
}
RETENTION_DEFAULTS = {"keep_ended_s": 604800.0, "max_ended_workflows": 100000}


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
    _check_explicit_empty(data, source)
    _split_accept_from(data, source)
    check_fields(data, config_pb2.AgentConfig.DESCRIPTOR, source, ConfigError, _BOUNDS)
    config = config_pb2.AgentConfig()
    to_message(data, config, source, ConfigError)
    _check(config, source)
    _check_clients(config, source)
    _apply_defaults(config)
    _check_relations(config, source)
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


def _check_explicit_empty(data: Mapping[str, Any], source: str) -> None:
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


def _check(config: config_pb2.AgentConfig, source: str) -> None:
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
        if _is_unspecified(parse_host_port(config.advertise)[0]):
            raise ConfigError(source, "advertise", "must be an address peers can reach")
    elif _is_unspecified(parse_host_port(config.listen)[0]):
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


def _check_clients(config: config_pb2.AgentConfig, source: str) -> None:
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


def _apply_defaults(config: config_pb2.AgentConfig) -> None:
    """Fill unset fields. Zero means unset here: explicit zeros were refused by the bounds."""
    if not config.advertise:
        config.advertise = config.listen
    if not config.policy.accept_from and not config.policy.accept_from_principals:
        config.policy.accept_from.append("*")  # with principal entries only: just those
    if not config.policy.HasField("publish"):
        config.policy.publish = True
    if not config.negotiation.HasField("batching"):
        config.negotiation.batching = True
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


def _check_relations(config: config_pb2.AgentConfig, source: str) -> None:
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
