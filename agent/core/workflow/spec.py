"""Workflow specs: YAML files mapped onto ``spec_pb2.WorkflowSpec``, and their checks.

A spec is checked twice: by the client that loads the YAML (so a typo is reported with the
file and the field before anything is sent) and by every agent that receives one over
gRPC (:func:`validate_spec`), because participants verify rather than trust. Each problem
is one line naming the source, the field path and the fix, e.g.
``workflow.yaml: steps[2].needs[0]: 'trian' names no step (known steps: extract, train)``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from fedorch.core.workflow import values
from fedorch.core.workflow.dag import find_cycle
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.runtime.config import (
    CAPABILITY_RE,
    DOMAIN_RE,
    SourceError,
    at_least,
    between,
    check_fields,
    describe,
    load_yaml_mapping,
    read_source,
    to_message,
)

MAX_SPEC_BYTES = 1024 * 1024
MAX_STEPS = 1000
MAX_RETRIES = 100
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
STEP_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# StepSpec.on_domain_loss: what failover does with a step whose domain is lost ("" is
# the default, replace).
ON_DOMAIN_LOSS = ("replace", "fail")


class SpecError(SourceError):
    """A workflow spec is unreadable or invalid; the message is one line."""


_BOUNDS = {
    "fedorch.v1.StepSpec.retries": between(0, MAX_RETRIES, f"an integer from 0 to {MAX_RETRIES}"),
    "fedorch.v1.StepSpec.timeout_s": at_least(
        0, "a non-negative number of seconds (0 means no limit)"
    ),
    "fedorch.v1.Waves.pause_s": at_least(0, "a non-negative number of seconds"),
}
# Fan-out (core/workflow/fanout.py): waves.on_failure values, "" meaning stop.
ON_FAILURE = ("stop", "continue")


def load_spec_file(path: str | os.PathLike[str]) -> spec_pb2.WorkflowSpec:
    """Read and check a YAML spec file; messages name the path as given."""
    return parse_spec_text(read_source(path, MAX_SPEC_BYTES, SpecError), str(path))


def parse_spec_text(text: str, source: str) -> spec_pb2.WorkflowSpec:
    """Parse YAML text into a checked WorkflowSpec; ``source`` names it in errors."""
    if len(text.encode("utf-8")) > MAX_SPEC_BYTES:
        raise SpecError(source, "", f"spec is over {MAX_SPEC_BYTES} bytes (1 MiB)")
    return spec_from_mapping(load_yaml_mapping(text, source, SpecError), source)


def spec_from_mapping(data: Mapping[str, Any], source: str = "<spec>") -> spec_pb2.WorkflowSpec:
    """A checked WorkflowSpec from a parsed spec (YAML's or JSON's shape, e.g. a dict a
    program built); ``source`` names it in errors."""
    if not isinstance(data, Mapping):
        raise SpecError(source, "", f"a spec must be a mapping of keys, got {describe(data)}")
    check_fields(data, spec_pb2.WorkflowSpec.DESCRIPTOR, source, SpecError, _BOUNDS)
    # Params go into the message as exact JSON text, not through json_format's Struct
    # (whose numbers are doubles); the rest maps onto the message field by field.
    steps = data.get("steps") or []
    for index, step in enumerate(steps):
        for path, holder in (("", step), ("compensate.", step.get("compensate") or {})):
            if "params_json" in holder:
                raise SpecError(source, f"steps[{index}].{path}params_json",
                                "write params: as a mapping (params_json is the wire form)")
    plain = {**data, "steps": [_without_params(step) for step in steps]}
    spec = spec_pb2.WorkflowSpec()
    to_message(plain, spec, source, SpecError)
    for index, (step, message) in enumerate(zip(steps, spec.steps, strict=True)):
        _set_params(message, step.get("params"), f"steps[{index}].params", source)
        compensate = step.get("compensate") or {}
        _set_params(message.compensate, compensate.get("params"),
                    f"steps[{index}].compensate.params", source)
    check_no_expansion_fields(spec, source)
    validate_spec(spec, source)
    return spec


def check_no_expansion_fields(spec: spec_pb2.WorkflowSpec, source: str = "<spec>") -> None:
    """A spec as a client submits it: the fields only a fan-out's expansion sets
    (instance_of, wave) are not its to set."""
    for index, step in enumerate(spec.steps):
        if step.instance_of or step.wave:
            field_name = "instance_of" if step.instance_of else "wave"
            raise SpecError(source, f"steps[{index}].{field_name}",
                            "set by the coordinator when it expands a fan-out step; write"
                            " each: and waves: instead")


def _without_params(step: Mapping[str, Any]) -> dict[str, Any]:
    plain = {key: value for key, value in step.items() if key != "params"}
    if isinstance(step.get("compensate"), Mapping):
        plain["compensate"] = {k: v for k, v in step["compensate"].items() if k != "params"}
    return plain


def _set_params(message: Any, params: Any, path: str, source: str) -> None:
    if params is None:
        return
    try:
        values.write_object(message, "params", params)
    except values.JsonValueError as exc:
        raise SpecError(source, path, str(exc)) from None


def validate_spec(spec: spec_pb2.WorkflowSpec, source: str = "<spec>") -> None:
    """Semantic checks on a parsed spec, wherever it came from; raises SpecError.

    Works on the message alone (no YAML), so the agent runs it on specs received over
    gRPC before it coordinates or votes on them.
    """
    size = spec.ByteSize()
    if size > MAX_SPEC_BYTES:
        raise SpecError(source, "", f"spec is {size} bytes, at most {MAX_SPEC_BYTES} (1 MiB)")
    if not spec.name:
        raise SpecError(source, "name", "required: the workflow's name, e.g. eu-sales-model")
    if not NAME_RE.fullmatch(spec.name):
        raise SpecError(source, "name", f"must be 1 to 128 of [A-Za-z0-9._-], got {spec.name!r}")
    for key in spec.data:
        if not key:
            raise SpecError(source, "data", "label names must not be empty")
    if not spec.steps:
        raise SpecError(source, "steps", "required: at least one step")
    if len(spec.steps) > MAX_STEPS:
        raise SpecError(source, "steps", f"{len(spec.steps)} steps, at most {MAX_STEPS} allowed")
    first: dict[str, int] = {}
    for index, step in enumerate(spec.steps):
        _check_step(step, f"steps[{index}]", source)
        if step.id in first:
            raise SpecError(
                source,
                f"steps[{index}].id",
                f"duplicate step id {step.id!r} (first at steps[{first[step.id]}])",
            )
        first[step.id] = index
    for index, step in enumerate(spec.steps):
        _check_needs(step, f"steps[{index}]", list(first), source)
    cycle = find_cycle({step.id: list(step.needs) for step in spec.steps})
    if cycle:
        raise SpecError(
            source,
            f"steps[{first[cycle[0]]}].needs",
            f"needs form a cycle: {' -> '.join(cycle)} (each step needs the next)",
        )


def _check_step(step: spec_pb2.StepSpec, path: str, source: str) -> None:
    if not step.id:
        raise SpecError(source, f"{path}.id", "required: a step id, e.g. train")
    if step.instance_of:
        _check_instance(step, path, source)
    elif not STEP_ID_RE.fullmatch(step.id):
        raise SpecError(source, f"{path}.id", f"must be 1 to 64 of [A-Za-z0-9_-], got {step.id!r}")
    _check_fanout(step, path, source)
    if not step.capability:
        raise SpecError(
            source,
            f"{path}.capability",
            "required: the capability that runs this step, e.g. ml.train",
        )
    if not CAPABILITY_RE.fullmatch(step.capability):
        raise SpecError(
            source,
            f"{path}.capability",
            f"must be 1 to 128 of [A-Za-z0-9._-], got {step.capability!r}",
        )
    if step.retries > MAX_RETRIES:
        raise SpecError(
            source,
            f"{path}.retries",
            f"must be an integer from 0 to {MAX_RETRIES}, got {step.retries}",
        )
    if not math.isfinite(step.timeout_s) or step.timeout_s < 0:
        raise SpecError(
            source,
            f"{path}.timeout_s",
            f"must be a non-negative number of seconds (0 means no limit), got {step.timeout_s}",
        )
    for name, holder in (("params", step), ("compensate.params", step.compensate)):
        try:
            values.read_object(holder, "params")
        except values.JsonValueError as exc:
            raise SpecError(source, f"{path}.{name}", str(exc)) from None
    _check_compensate(step.compensate, f"{path}.compensate", source)
    if step.on_domain_loss and step.on_domain_loss not in ON_DOMAIN_LOSS:
        raise SpecError(
            source,
            f"{path}.on_domain_loss",
            f"must be one of {', '.join(ON_DOMAIN_LOSS)} (default replace),"
            f" got {step.on_domain_loss!r}",
        )
    for key in step.data:  # labels this step adds to its outputs (core/workflow/dataflow.py)
        if not key:
            raise SpecError(source, f"{path}.data", "label names must not be empty")
    for key in step.constraints.labels:
        if not key:
            raise SpecError(source, f"{path}.constraints.labels", "label names must not be empty")
    for index, domain in enumerate(step.constraints.domains):
        if not DOMAIN_RE.fullmatch(domain):
            raise SpecError(
                source,
                f"{path}.constraints.domains[{index}]",
                f"must be a domain name ([a-z0-9][a-z0-9.-]{{0,62}}), got {domain!r}",
            )


def _check_instance(step: spec_pb2.StepSpec, path: str, source: str) -> None:
    """An instance of a fan-out step, as the coordinator's expansion writes it."""
    if not STEP_ID_RE.fullmatch(step.instance_of):
        raise SpecError(source, f"{path}.instance_of",
                        f"must be 1 to 64 of [A-Za-z0-9_-], got {step.instance_of!r}")
    if len(step.constraints.domains) != 1:
        raise SpecError(source, f"{path}.constraints.domains",
                        "an instance of a fan-out step is pinned to exactly one domain")
    want = f"{step.instance_of}@{step.constraints.domains[0]}"
    if step.id != want:
        raise SpecError(source, f"{path}.id", f"an instance's id is {want!r}, got {step.id!r}")
    if step.wave < 1:
        raise SpecError(source, f"{path}.wave", "an instance's wave is 1 or more")
    if step.HasField("each"):
        raise SpecError(source, f"{path}.each", "an instance of a fan-out step has no each")


def _check_fanout(step: spec_pb2.StepSpec, path: str, source: str) -> None:
    """each: and waves: (core/workflow/fanout.py)."""
    if step.HasField("waves") and not (step.HasField("each") or step.instance_of):
        raise SpecError(source, f"{path}.waves",
                        "waves apply to a fan-out step: add each: {labels: {...}} or"
                        " each: {domains: [...]}")
    if not step.instance_of and step.wave:
        raise SpecError(source, f"{path}.wave", "only an instance of a fan-out step has a wave")
    waves = step.waves
    if waves.on_failure and waves.on_failure not in ON_FAILURE:
        raise SpecError(source, f"{path}.waves.on_failure",
                        f"must be one of {', '.join(ON_FAILURE)} (default stop),"
                        f" got {waves.on_failure!r}")
    if not math.isfinite(waves.pause_s) or waves.pause_s < 0:
        raise SpecError(source, f"{path}.waves.pause_s",
                        f"must be a non-negative number of seconds, got {waves.pause_s}")
    if waves.min_success and waves.on_failure != "continue":
        raise SpecError(source, f"{path}.waves.min_success",
                        "applies with on_failure: continue (with stop, every instance must"
                        " succeed)")
    each = step.each
    for key in each.labels:
        if not key:
            raise SpecError(source, f"{path}.each.labels", "label names must not be empty")
    for index, domain in enumerate(each.domains):
        if not DOMAIN_RE.fullmatch(domain):
            raise SpecError(source, f"{path}.each.domains[{index}]",
                            f"must be a domain name ([a-z0-9][a-z0-9.-]{{0,62}}), got {domain!r}")
    if each.domains and waves.min_success > len(set(each.domains)):
        raise SpecError(source, f"{path}.waves.min_success",
                        f"{waves.min_success} is more than the {len(set(each.domains))}"
                        " domains in each.domains")


def _check_compensate(c: spec_pb2.Compensation, path: str, source: str) -> None:
    """Sagas (docs/sagas.md): the compensation's own capability, retries and timeout."""
    if c.capability and not CAPABILITY_RE.fullmatch(c.capability):
        raise SpecError(source, f"{path}.capability",
                        f"must be 1 to 128 of [A-Za-z0-9._-], got {c.capability!r}")
    if c.retries > MAX_RETRIES:
        raise SpecError(source, f"{path}.retries",
                        f"must be an integer from 0 to {MAX_RETRIES}, got {c.retries}")
    if not math.isfinite(c.timeout_s) or c.timeout_s < 0:
        raise SpecError(source, f"{path}.timeout_s", "must be a non-negative number of"
                        f" seconds (0 means no limit), got {c.timeout_s}")


def _check_needs(step: spec_pb2.StepSpec, path: str, known: list[str], source: str) -> None:
    seen: set[str] = set()
    known_set = set(known)
    for index, need in enumerate(step.needs):
        where = f"{path}.needs[{index}]"
        if need == step.id:
            raise SpecError(source, where, f"step {step.id!r} needs itself; remove it")
        if need not in known_set:
            guess = difflib.get_close_matches(need, known, 1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
            raise SpecError(source, where, f"{need!r} names no step (known steps: {shown}){hint}")
        if need in seen:
            raise SpecError(source, where, f"{need!r} is listed twice; remove one")
        seen.add(need)


def on_domain_loss(step: spec_pb2.StepSpec) -> str:
    """The step's on_domain_loss with its default filled in."""
    return step.on_domain_loss or "replace"


__all__ = [
    "MAX_SPEC_BYTES",
    "ON_DOMAIN_LOSS",
    "on_domain_loss",
    "ON_FAILURE",
    "SpecError",
    "check_no_expansion_fields",
    "load_spec_file",
    "parse_spec_text",
    "spec_from_mapping",
    "validate_spec",
]
