"""Exact JSON values: params and outputs keep their JSON types through every conversion.

The property test sends arbitrary JSON values (integers past 2**53, floats, nested lists
and objects, unicode) along the whole path a value takes between organisations: a spec
built from a mapping, its wire bytes, the workflow's progress, the command executor's
stdin document, a program's last stdout line, a signed-size step result on the wire, the
status message and the CLI's status JSON; and checks that what comes out is what went in,
type for type (1 stays 1, never 1.0).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fedorch.cli import render
from fedorch.core.workflow import values
from fedorch.core.workflow.progress import Progress
from fedorch.core.workflow.spec import (
    SpecError,
    parse_spec_text,
    spec_from_mapping,
    validate_spec,
)
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2, status_pb2
from fedorch.runtime.executors.base import StepInvocation
from fedorch.runtime.executors.command import (
    CommandExecutor,
    TailBuffer,
    _outcome_from,
    _stdin_document,
)
from google.protobuf import struct_pb2
from hypothesis import example, given, settings
from hypothesis import strategies as st

BIG = 2**60
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: Hypothesis draws far past 2**53 too
    | st.sampled_from([2**53 + 1, -(2**63), 2**64 + 7, BIG])
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)
OBJECTS = st.dictionaries(st.text(), JSON, max_size=6)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (1 == 1.0 in Python; not here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and str(a) == str(b)  # -0.0 stays -0.0
    return a == b


def test_same_tells_integers_from_floats() -> None:
    assert same({"n": 1}, {"n": 1})
    assert not same({"n": 1}, {"n": 1.0})
    assert not same([0.0], [-0.0])
    assert not same({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2.0}]})


@given(JSON)
def test_text_round_trip(value: Any) -> None:
    text = values.dumps(value)
    assert same(values.loads(text), value)
    assert values.dumps(values.loads(text)) == text  # canonical: one text per value


@given(params=OBJECTS, outputs=OBJECTS)
# Unicode line separators inside strings once split a program's last stdout line.
@example(params={"n": 1, "big": BIG}, outputs={"\x85": None, "s": "a\u2028b", "n": 1})
@settings(max_examples=150, deadline=None)
def test_params_and_outputs_keep_their_types_along_the_whole_path(params, outputs) -> None:
    # 1. A spec a program built (the Python client's dict form; YAML takes the same road).
    spec = spec_from_mapping({"name": "exact", "steps": [
        {"id": "up", "capability": "c", "params": params},
        {"id": "down", "capability": "c", "needs": ["up"], "params": {"k": params}},
    ]}, "prop")
    spec = spec_pb2.WorkflowSpec.FromString(spec.SerializeToString())  # the wire
    progress = Progress(spec, {"up": "me", "down": "me"}, "me")
    (first,) = progress.start_ready()
    assert same(first.params, params)

    # 2. The command executor's stdin document, as the program parses it.
    inv = StepInvocation("w.1", "up", first.attempt, first.params, first.inputs, None)
    received = json.loads(_stdin_document(inv))
    assert same(received["params"], params)

    # 3. The program's last stdout line back into outputs.
    stdout = TailBuffer(1 << 24)
    stdout.append(b"progress...\n" + values.dumps(outputs).encode() + b"\n")
    outcome = _outcome_from(0, stdout, TailBuffer(1024))
    assert outcome.ok and same(outcome.outputs, outputs)

    # 4. A step result between agents.
    result = peer_pb2.StepResult(workflow_id="w.1", step_id="up", attempt=1)
    values.write_object(result, "outputs", outcome.outputs)
    result = peer_pb2.StepResult.FromString(result.SerializeToString())
    carried = values.read_object(result, "outputs")
    assert same(carried, outputs)

    # 5. Downstream receives it as its input.
    progress.attempt_ended("up", 1, True, carried, "")
    (second,) = progress.start_ready()
    assert same(second.inputs, {"up": outputs}) and same(second.params, {"k": params})
    inv = StepInvocation("w.1", "down", 1, second.params, second.inputs, None)
    assert same(json.loads(_stdin_document(inv))["inputs"], {"up": outputs})

    # 6. The status a client reads (its outputs written as the status view writes them),
    # and the CLI's status JSON.
    status = status_pb2.WorkflowStatus(id="w.1", name="exact")
    for step_id, outputs_of in (("up", carried), ("down", {})):
        values.write_object(status.steps.add(id=step_id, capability="c", domain="me"),
                            "outputs", outputs_of)
    status = status_pb2.WorkflowStatus.FromString(status.SerializeToString())
    shown = json.loads(render.to_json(render.status_to_dict(status)))
    assert same(shown["steps"][0]["outputs"], outputs)
    assert shown["steps"][1]["outputs"] == {}


async def test_a_real_program_receives_and_returns_integers(tmp_path: Path) -> None:
    program = tmp_path / "types.py"
    program.write_text(
        "import json, sys\n"
        "doc = json.load(sys.stdin)\n"
        "p = doc['params']\n"
        "print(json.dumps({'types': {k: type(v).__name__ for k, v in p.items()},"
        " 'back': p, 'plus_one': p['big'] + 1}))\n")
    executor = CommandExecutor([sys.executable, str(program)])
    params = {"n": 1, "big": BIG, "f": 1.0}
    outcome = await executor.run(StepInvocation("w.1", "s", 1, params, {}, 30.0))
    assert outcome.ok, outcome.error
    assert outcome.outputs["types"] == {"n": "int", "big": "int", "f": "float"}
    assert same(outcome.outputs["back"], params)
    assert outcome.outputs["plus_one"] == BIG + 1


def test_yaml_spec_keeps_big_integers() -> None:
    spec = parse_spec_text(
        "name: w\nsteps:\n  - id: s\n    capability: c\n"
        f"    params: {{n: 1, big: {BIG}, f: 1.0, list: [1, 2.0]}}\n"
        "    compensate: {params: {undo: 3}}\n", "w.yaml")
    params = values.read_object(spec.steps[0], "params")
    assert same(params, {"n": 1, "big": BIG, "f": 1.0, "list": [1, 2.0]})
    assert same(values.read_object(spec.steps[0].compensate, "params"), {"undo": 3})
    assert not spec.steps[0].HasField("params")  # only the exact text speaks


def test_specs_written_before_exact_values_still_read() -> None:
    """A stored spec (or a peer's) with params in the legacy Struct reads as before."""
    old = spec_pb2.WorkflowSpec(name="old")
    step = old.steps.add(id="s", capability="c")
    step.params.update({"table": "sales", "n": 3})
    old = spec_pb2.WorkflowSpec.FromString(old.SerializeToString())
    assert values.read_object(old.steps[0], "params") == {"table": "sales", "n": 3.0}
    progress = Progress(old, {"s": "me"}, "me")
    assert progress.steps["s"].params == {"table": "sales", "n": 3.0}
    legacy = status_pb2.StepStatus(id="s", outputs=struct_pb2.Struct())
    legacy.outputs.update({"rows": 2})
    assert render.step_outputs(legacy) == {"rows": 2.0}


@pytest.mark.parametrize(("text", "problem"), [
    ('{"x": NaN}', "NaN"),
    ('{"x": Infinity}', "Infinity"),
    ("[1, 2]", "must be a JSON object"),
    ('{"x": 1', "not JSON"),
    ('{"x": "\\ud800"}', "surrogate"),
    ("[" * 70 + "]" * 70, "nested"),
])
def test_bad_text_is_refused_with_a_reason(text: str, problem: str) -> None:
    with pytest.raises(values.JsonValueError, match=problem):
        values.loads_object(text)


@pytest.mark.parametrize(("value", "problem"), [
    ({"x": float("nan")}, "not a JSON number"),
    ({"x": {1, 2}}, "set is not JSON data"),
    ({1: "a"}, "keys must be strings"),
    ({"x": b"raw"}, "bytes is not JSON data"),
])
def test_values_that_are_not_json_are_refused(value: Any, problem: str) -> None:
    with pytest.raises(values.JsonValueError, match=problem):
        values.dumps(value)


def test_a_program_printing_nan_fails_instead_of_poisoning_results() -> None:
    stdout = TailBuffer(4096)
    stdout.append(b'{"x": NaN}\n')
    outcome = _outcome_from(0, stdout, TailBuffer(1024))
    assert not outcome.ok and "not a JSON object" in outcome.error


def test_a_peer_spec_with_bad_params_text_is_refused() -> None:
    spec = spec_from_mapping({"name": "w", "steps": [{"id": "s", "capability": "c"}]})
    spec.steps[0].params_json = "[1]"
    with pytest.raises(SpecError, match=r"steps\[0\]\.params: must be a JSON object"):
        validate_spec(spec, "from-peer")


def test_the_wire_form_is_not_written_by_hand() -> None:
    with pytest.raises(SpecError, match=r"steps\[0\]\.params_json: write params:"):
        spec_from_mapping({"name": "w", "steps": [
            {"id": "s", "capability": "c", "params_json": "{}"}]}, "w.yaml")


MAX_NESTED = values.MAX_DEPTH


def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


NOT_JSON = st.recursive(
    SCALARS | st.sampled_from([float("nan"), float("inf"), "\ud800", b"raw", {1, 2}, 1j]),
    lambda inner: (st.lists(inner, max_size=4) | st.tuples(inner, inner)
                   | st.dictionaries(st.text() | st.integers() | st.none(), inner, max_size=4)),
    max_leaves=12,
)


@given(NOT_JSON)
@settings(max_examples=300)
@example(_nested(MAX_NESTED))  # as deep as allowed
@example(_nested(MAX_NESTED + 1))  # one level deeper
@example({"k": _nested(MAX_NESTED)})
@example({"k": float("inf")})
@example(["\ud800"])
@example({"\ud800": 1})
@example({"é": ["é", 1.5, True, None, -(2**70)]})
def test_the_quick_check_and_the_one_that_names_paths_agree(value: Any) -> None:
    # check() walks once without building paths, and again to name the path only when
    # something is wrong: both walks must give the same verdict on every value.
    try:
        values._check(value, "value", 0)
        named_ok = True
    except values.JsonValueError:
        named_ok = False
    assert values._is_json(value, 0) is named_ok
    if named_ok:
        values.check(value)
    else:
        with pytest.raises(values.JsonValueError):
            values.check(value)


def test_an_object_of_scalars_is_judged_in_one_call(monkeypatch) -> None:
    # Every result's outputs and every step's params are checked on the way in and
    # again where they are written: the scalars of a container are judged without a
    # call each (the check was the costliest function of its own in a coordinator's
    # profile, 60 calls per workflow for eight values).
    calls = []
    quick = values._is_json

    def counted(value: Any, depth: int) -> bool:
        calls.append(value)
        return quick(value, depth)

    monkeypatch.setattr(values, "_is_json", counted)
    values.check({"rows": 3, "ok": True, "none": None, "ratio": 0.5, "name": "x",
                  "list": ["a", 1, 2.5, False, None]})
    assert len(calls) == 2  # the object and its one container
    calls.clear()
    values.check({"name": "é", "deep": {"k": 1}})  # non-ASCII text and a container
    assert len(calls) == 3
