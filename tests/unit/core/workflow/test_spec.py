"""Workflow spec loading and validation: good specs parse, every bad one is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from fedorch.core.workflow import values
from fedorch.core.workflow.dag import downstream, find_cycle, topological_order
from fedorch.core.workflow.spec import (
    MAX_SPEC_BYTES,
    SpecError,
    load_spec_file,
    parse_spec_text,
    validate_spec,
)
from fedorch.gen.fedorch.v1 import spec_pb2

ROOT = Path(__file__).resolve().parents[4]
DEMO = ROOT / "scenarios" / "demo" / "workflow.yaml"

GOOD = """\
name: eu-sales-model
data: {jurisdiction: EU}
steps:
  - id: extract
    capability: data.extract
    params: {table: sales, limit: 10, nested: {a: [1, 2.5, null, true]}}
    constraints: {labels: {cloud: aws}, domains: [eu-west]}
  - id: train
    capability: ml.train
    needs: [extract]
    retries: 2
    timeout_s: 600
    compensate: {params: {action: delete-model}}
  - id: report
    capability: report.publish
    needs: [train]
"""


def _error(text: str, source: str = "wf.yaml") -> str:
    with pytest.raises(SpecError) as info:
        parse_spec_text(text, source)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: ")
    return message


def test_demo_workflow_parses() -> None:
    spec = load_spec_file(DEMO)
    assert spec.name == "eu-sales-model"
    assert dict(spec.data) == {"jurisdiction": "EU"}
    assert [s.id for s in spec.steps] == ["extract", "train", "report"]
    assert [s.capability for s in spec.steps] == ["data.extract", "ml.train", "report.publish"]
    assert values.read_object(spec.steps[0], "params")["table"] == "sales"
    assert list(spec.steps[1].needs) == ["extract"]
    assert spec.steps[1].retries == 1
    assert spec.steps[1].timeout_s == 30
    assert list(spec.steps[2].needs) == ["train"]
    assert topological_order(spec) == ["extract", "train", "report"]


def test_full_spec_maps_every_field() -> None:
    spec = parse_spec_text(GOOD, "wf.yaml")
    extract, train, _ = spec.steps
    assert values.read_object(extract, "params")["nested"]["a"] == [1, 2.5, None, True]
    assert dict(extract.constraints.labels) == {"cloud": "aws"}
    assert list(extract.constraints.domains) == ["eu-west"]
    assert train.retries == 2 and train.timeout_s == 600
    assert values.read_object(train.compensate, "params") == {"action": "delete-model"}


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("name: x\nsteps: [\n", ["line", "invalid YAML"]),
        ("name: a\nname: b\nsteps: []\n", ["line 2", "duplicate key 'name'"]),
        ("- a\n- b\n", ["top level must be a mapping"]),
        ("", ["empty"]),
        (GOOD + "owner: me\n", ["owner: unknown key", "valid keys here: name, data, steps"]),
        (
            GOOD.replace("    retries: 2", "    retry: 2"),
            ["steps[1].retry: unknown key", "did you mean 'retries'", "capability"],
        ),
        (
            GOOD.replace("timeout_s: 600", "timeoutS: 600"),
            ["steps[1].timeoutS", "did you mean 'timeout_s'"],
        ),
        (
            GOOD.replace("domains: [eu-west]", "domain: [eu-west]"),
            ["steps[0].constraints.domain: unknown key", "labels, domains"],
        ),
        (
            GOOD.replace("needs: [train]", "needs: [trian]"),
            [
                "steps[2].needs[0]",
                "'trian' names no step",
                "extract, train, report",
                "did you mean 'train'",
            ],
        ),
        (
            GOOD.replace("needs: [train]", "needs: [report]"),
            ["steps[2].needs[0]", "needs itself"],
        ),
        (
            GOOD.replace("id: extract", "id: train"),
            ["steps[1].id", "duplicate step id 'train'", "steps[0]"],
        ),
        (
            GOOD.replace(
                "  - id: extract\n    capability: data.extract\n",
                "  - id: extract\n    needs: [report]\n    capability: data.extract\n",
            ),
            ["steps[0].needs", "cycle", "extract -> report -> train -> extract"],
        ),
        (
            GOOD.replace("needs: [extract]", "needs: [extract, extract]"),
            ["steps[1].needs[1]", "listed twice"],
        ),
        (GOOD.replace("    capability: ml.train\n", ""), ["steps[1].capability", "required"]),
        (
            GOOD.replace("capability: ml.train", "capability: ml train"),
            ["steps[1].capability", "[A-Za-z0-9._-]"],
        ),
        (GOOD.replace("retries: 2", "retries: two"), ["steps[1].retries", "integer"]),
        (GOOD.replace("retries: 2", "retries: -1"), ["steps[1].retries", "from 0 to 100"]),
        (GOOD.replace("retries: 2", "retries: 1000"), ["steps[1].retries", "from 0 to 100"]),
        (GOOD.replace("retries: 2", "retries: true"), ["steps[1].retries", "boolean"]),
        (GOOD.replace("timeout_s: 600", "timeout_s: -5"), ["steps[1].timeout_s", "non-negative"]),
        (GOOD.replace("timeout_s: 600", "timeout_s: .inf"), ["steps[1].timeout_s", "inf"]),
        (
            GOOD.replace("needs: [extract]", "needs: extract"),
            ["steps[1].needs", "must be a list", "[extract]"],
        ),
        (
            GOOD.replace(
                "params: {table: sales, limit: 10, nested: {a: [1, 2.5, null, true]}}",
                "params: [sales]",
            ),
            ["steps[0].params", "mapping"],
        ),
        (
            GOOD.replace("{jurisdiction: EU}", "{jurisdiction: 1}"),
            ["data.jurisdiction", "must be a string", "quote"],
        ),
        (GOOD.replace("{table: sales,", "{table: 2024-01-01,"), ["steps[0].params.table", "date"]),
        (
            GOOD.replace("domains: [eu-west]", "domains: ['']"),
            ["steps[0].constraints.domains[0]", "domain name"],
        ),
        (GOOD.replace("name: eu-sales-model\n", ""), ["name: required"]),
        (GOOD.replace("name: eu-sales-model", "name: 'eu sales'"), ["name: must be"]),
        (GOOD.replace("id: train", "id: 'train!'"), ["steps[1].id", "[A-Za-z0-9_-]"]),
        (GOOD.replace("  - id: train\n", "  - capability_x: 1\n"), ["steps[1].capability_x"]),
        ("name: x\nsteps: []\n", ["steps: required: at least one step"]),
        ("name: x\n", ["steps: required"]),
        ("name: x\nsteps: [{capability: c}]\n", ["steps[0].id: required"]),
        ("name: x\nsteps: {a: 1}\n", ["steps: must be a list"]),
        ("name: [x]\nsteps: [{id: a, capability: c}]\n", ["name: must be a string"]),
        ("name: x\nsteps: [a]\n", ["steps[0]: must be a mapping"]),
    ],
)
def test_bad_spec_names_file_and_field(text: str, fragments: list[str]) -> None:
    message = _error(text)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_too_many_steps() -> None:
    steps = "".join(f"  - {{id: s{i}, capability: c}}\n" for i in range(1001))
    assert "at most 1000" in _error(f"name: x\nsteps:\n{steps}")


def test_long_chain_is_fine() -> None:
    steps = ["  - {id: s0, capability: c}\n"]
    steps += [f"  - {{id: s{i}, capability: c, needs: [s{i - 1}]}}\n" for i in range(1, 1000)]
    spec = parse_spec_text("name: x\nsteps:\n" + "".join(steps), "wf.yaml")
    assert topological_order(spec) == [f"s{i}" for i in range(1000)]


def test_spec_file_over_one_mib_is_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(GOOD + "#" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert str(path) in str(info.value) and "bytes" in str(info.value)


def test_spec_text_over_one_mib_is_refused() -> None:
    assert "bytes" in _error(GOOD + "#" * MAX_SPEC_BYTES)


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    text = "name: x\nsteps:\n  - id: s\n    capability: c\n    params:\n"
    text += "".join(f"      {line}\n" for line in lines)
    assert "more than" in _error(text)


def test_missing_file() -> None:
    with pytest.raises(SpecError, match="nope.yaml: cannot read"):
        load_spec_file("nope.yaml")


def test_load_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "workflow.yaml"
    path.write_text(GOOD.replace("needs: [train]", "needs: [trian]"))
    with pytest.raises(SpecError) as info:
        load_spec_file(path)
    assert str(info.value).startswith(f"{path}: steps[2].needs[0]: 'trian' names no step")


def test_validate_spec_on_messages_from_the_wire() -> None:
    spec = parse_spec_text(GOOD, "wf.yaml")
    validate_spec(spec)
    spec.steps[1].timeout_s = -1
    with pytest.raises(SpecError, match=r"^<spec>: steps\[1\]\.timeout_s"):
        validate_spec(spec)
    spec.steps[1].timeout_s = 0
    spec.steps[1].retries = 101
    with pytest.raises(SpecError, match=r"steps\[1\]\.retries"):
        validate_spec(spec)
    spec.steps[1].retries = 0
    spec.steps[0].params["blob"] = "x" * MAX_SPEC_BYTES
    with pytest.raises(SpecError, match="from-peer: .*bytes"):
        validate_spec(spec, "from-peer")


def test_error_parts_are_attributes() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec_text(GOOD.replace("needs: [train]", "needs: [nope]"), "w.yaml")
    assert info.value.source == "w.yaml"
    assert info.value.path == "steps[2].needs[0]"
    assert isinstance(info.value, ValueError)


def _spec(*steps: tuple[str, list[str]]) -> spec_pb2.WorkflowSpec:
    spec = spec_pb2.WorkflowSpec(name="t")
    for step_id, needs in steps:
        spec.steps.add(id=step_id, capability="c", needs=needs)
    return spec


def test_topological_order_is_stable_in_spec_order() -> None:
    spec = _spec(("d", ["b", "c"]), ("c", ["a"]), ("b", []), ("a", []), ("e", []))
    assert topological_order(spec) == ["b", "a", "c", "d", "e"]


def test_topological_order_rejects_cycles() -> None:
    with pytest.raises(ValueError, match="a -> b -> a"):
        topological_order(_spec(("a", ["b"]), ("b", ["a"])))


def test_downstream() -> None:
    spec = _spec(("a", []), ("b", ["a"]), ("c", ["a", "b"]), ("d", []))
    assert downstream(spec) == {"a": ["b", "c"], "b": ["c"], "c": [], "d": []}


@pytest.mark.parametrize(
    ("needs", "cycle"),
    [
        ({"a": [], "b": ["a"]}, None),
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
        ({"x": ["a"], "a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"a": ["zzz"], "b": ["a"]}, None),
        ({"a": ["b", "c"], "b": ["c"], "c": []}, None),
    ],
)
def test_find_cycle(needs: dict[str, list[str]], cycle: list[str] | None) -> None:
    assert find_cycle(needs) == cycle
