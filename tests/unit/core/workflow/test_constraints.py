"""A participant's own check of a step's constraints (core/workflow/constraints.py)."""

from __future__ import annotations

import pytest
from fedorch.core.workflow.constraints import constraint_refusal
from fedorch.core.workflow.spec import spec_from_mapping


def _step(constraints: dict):
    spec = spec_from_mapping({"name": "w", "steps": [
        {"id": "s", "capability": "c", "constraints": constraints}]})
    return spec.steps[0]


def test_no_constraints_any_domain_may_take_it():
    assert constraint_refusal(_step({}), "anywhere", {}) is None


def test_a_step_bound_to_domains_is_refused_elsewhere_naming_them():
    step = _step({"domains": ["eu-west", "eu-north"]})
    assert constraint_refusal(step, "eu-north", {}) is None
    why = constraint_refusal(step, "us-east", {})
    assert why == "constraints: step 's' may run only in eu-west, eu-north, not us-east"


@pytest.mark.parametrize(("labels", "shown"), [
    ({"rack": "r2"}, "us-east has rack=r2"),
    ({}, "us-east has no label rack"),
])
def test_a_label_the_domain_lacks_or_differs_is_refused(labels, shown):
    step = _step({"labels": {"rack": "r1"}})
    assert constraint_refusal(step, "us-east", {"rack": "r1", "zone": "a"}) is None
    assert constraint_refusal(step, "us-east", labels) == (
        f"constraints: step 's' wants rack=r1; {shown}")
