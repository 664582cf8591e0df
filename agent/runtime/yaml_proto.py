"""YAML files mapped onto protobuf messages: the machinery the agent config
(runtime/config.py), the workflow spec loader (``fedorch.core.workflow.spec``) and the
scenario loader share.

Strict YAML loading (no duplicate keys), a walk of the parsed data against a message
descriptor (so an unknown key or a wrong type gets a one-line error that names the file
and the field, instead of json_format's terse message), and ``ParseDict``. An enum is
written by its short lower-case name (``commit: 2pc`` for COMMIT_PROTOCOL_2PC); the walk
turns it into the proto's name before ``ParseDict``, so code compares values. Errors are
one line, ``SOURCE: FIELD: PROBLEM`` (SourceError and its subclasses).
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

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
