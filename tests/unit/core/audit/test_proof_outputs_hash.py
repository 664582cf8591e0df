"""A step's outputs hash the same from the outputs themselves as from a result message
that carries them: the final attestation and the result records must agree."""

from __future__ import annotations

import pytest
from fedorch.core.audit.proof import outputs_hash, outputs_value_hash
from fedorch.core.workflow import values
from fedorch.gen.fedorch.v1 import peer_pb2


@pytest.mark.parametrize("outputs", [
    {},
    {"n": 1, "x": 1.0, "big": 2**70, "neg": -0.5, "tiny": 1e-300},
    {"z": [1, "two", None, True, {"b": 2, "a": 1}], "a": {"nested": {"deep": []}}},
    {"text": "ünïcödé ☃ \u0000 \"quoted\"", "é": "key not ASCII"},
])
def test_value_hash_is_the_message_hash(outputs) -> None:
    result = peer_pb2.StepResult(workflow_id="w", step_id="s")
    values.write_object(result, "outputs", outputs)
    assert outputs_value_hash(outputs) == outputs_hash(result)


def test_other_outputs_hash_otherwise() -> None:
    assert outputs_value_hash({"a": 1}) != outputs_value_hash({"a": 1.0})
    assert outputs_value_hash({"a": 1}) != outputs_value_hash({})


def test_not_json_is_refused() -> None:
    with pytest.raises(values.JsonValueError):
        outputs_value_hash({"a": float("nan")})
