"""Per-step failure fields of a workflow spec: idempotent and on_domain_loss."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.spec import SpecError, on_domain_loss, parse_spec_text, validate_spec
from fedorch.gen.fedorch.v1 import spec_pb2

SPEC = """\
name: wf
steps:
  - id: a
    capability: c
{extra}
"""


def _parse(extra: str) -> spec_pb2.WorkflowSpec:
    return parse_spec_text(SPEC.format(extra=extra), "wf.yaml")


def test_defaults_are_not_idempotent_and_replace() -> None:
    step = _parse("").steps[0]
    assert step.idempotent is False
    assert on_domain_loss(step) == "replace"


@pytest.mark.parametrize("value", ["replace", "fail"])
def test_both_fields_parse(value: str) -> None:
    step = _parse(f"    idempotent: true\n    on_domain_loss: {value}").steps[0]
    assert step.idempotent is True
    assert on_domain_loss(step) == value


@pytest.mark.parametrize("extra, fragment", [
    ("    on_domain_loss: retry", "steps[0].on_domain_loss: must be one of replace, fail"),
    ("    idempotent: maybe", "steps[0].idempotent"),
    ("    idempotent: 1", "steps[0].idempotent"),
])
def test_bad_values_name_the_field(extra: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        _parse(extra)
    assert fragment in str(info.value)
    assert str(info.value).startswith("wf.yaml: ")


def test_wire_specs_are_checked_too() -> None:
    spec = _parse("")
    spec.steps[0].on_domain_loss = "REPLACE"
    with pytest.raises(SpecError, match="on_domain_loss"):
        validate_spec(spec, "<wire>")
