"""The Python client's pieces that need no agent: lazy import, models, errors, specs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from fedorch.cli import render
from fedorch.client import InvalidSpec, NotAllowed, NotFound, OperationFailed, Unreachable
from fedorch.client.async_client import AsyncClient, load_spec
from fedorch.client.errors import from_rpc_error
from fedorch.client.models import Member, WorkflowStatus
from fedorch.core.workflow import values
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2, spec_pb2, status_pb2

REPO = Path(__file__).resolve().parents[2]


def test_importing_fedorch_loads_no_client_until_asked() -> None:
    code = (
        "import sys, fedorch\n"
        "assert 'fedorch.client' not in sys.modules and 'grpc' not in sys.modules\n"
        "from fedorch import AsyncClient, Client\n"
        "assert Client.__module__ == 'fedorch.client.sync_client'\n"
        "assert AsyncClient.__module__ == 'fedorch.client.async_client'\n"
        "try:\n    fedorch.Nope\nexcept AttributeError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    assert "has no attribute 'Nope'" in out.stdout


def _status() -> status_pb2.WorkflowStatus:
    status = status_pb2.WorkflowStatus(id="eu-west.1", name="w", coordinator="eu-west",
                                       state=status_pb2.WORKFLOW_STATE_SUCCEEDED, rounds=2)
    step = status.steps.add(id="a", domain="eu-west", state=status_pb2.STEP_STATE_SUCCEEDED,
                            attempts=1, capability="c")
    values.write_object(step, "outputs", {"n": 1, "big": 2**60, "f": 1.0})
    status.steps.add(id="b", state=99)  # a state from a newer agent
    status.refusals.add(round=1, domain="us-east", steps=["a"], reason="residency")
    status.compensations.add(step="a", domain="eu-west", state="COMPENSATED", attempts=1)
    status.compensations.add(step="a", domain="us-east", state="COMPENSATION_FAILED",
                             attempts=2, error="cannot undo")
    return status


def test_status_model_matches_the_cli_json() -> None:
    message = _status()
    status = WorkflowStatus.from_proto(message)
    assert status.terminal and status.state == "SUCCEEDED"
    assert status.step("a").outputs == {"n": 1, "big": 2**60, "f": 1.0}
    assert type(status.step("a").outputs["n"]) is int
    assert status.step("b").state == "UNKNOWN_99"
    with pytest.raises(KeyError):
        status.step("zzz")
    assert status.to_dict() == render.status_to_dict(message)
    assert [(c.domain, c.state) for c in status.compensations] == [
        ("eu-west", "COMPENSATED"), ("us-east", "COMPENSATION_FAILED")]
    assert render.status_to_dict(message)["compensations"][1]["error"] == "cannot undo"


def test_member_model_matches_the_cli_json() -> None:
    info = client_pb2.MemberInfo(domain="eu-west", address="127.0.0.1:7101",
                                 state=client_pb2.MEMBER_STATE_SUSPECT, version=3,
                                 incarnation=2, last_heard_ms=10, self=True)
    info.labels["jurisdiction"] = "EU"
    info.capabilities.append(peer_pb2.CapabilityInfo(name="c", capacity=4, available=1))
    member = Member.from_proto(info)
    assert member.state == "SUSPECT" and member.is_self
    assert member.capabilities[0].available == 1
    assert member.to_dict() == render.member_to_dict(info)


class _Failed(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(("code", "kind", "text"), [
    (grpc.StatusCode.UNAVAILABLE, Unreachable, "agent unreachable at h:1: down"),
    (grpc.StatusCode.DEADLINE_EXCEEDED, Unreachable, "did not answer in time"),
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidSpec, "request: steps: bad (INVALID_ARGUMENT)"),
    (grpc.StatusCode.NOT_FOUND, NotFound, "no workflow 'x' (NOT_FOUND)"),
    (grpc.StatusCode.PERMISSION_DENIED, NotAllowed, "PERMISSION_DENIED"),
    (grpc.StatusCode.INTERNAL, OperationFailed, "INTERNAL"),
])
def test_rpc_errors_become_typed_one_line_errors(code, kind, text) -> None:
    details = {grpc.StatusCode.UNAVAILABLE: "down",
               grpc.StatusCode.INVALID_ARGUMENT: "request: steps:\n bad",
               grpc.StatusCode.NOT_FOUND: "no workflow 'x'"}.get(code, "")
    error = from_rpc_error(_Failed(code, details), "h:1")
    assert type(error) is kind and error.code is code
    assert text in str(error) and "\n" not in str(error)


def test_specs_load_from_a_path_a_mapping_or_a_message(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("name: w\nsteps:\n  - {id: a, capability: c, params: {n: 1}}\n")
    from_path = load_spec(path)
    assert load_spec(str(path)) == from_path
    from_mapping = load_spec({"name": "w", "steps": [
        {"id": "a", "capability": "c", "params": {"n": 1}}]})
    assert from_mapping == from_path
    assert load_spec(from_path) is from_path
    with pytest.raises(InvalidSpec, match="w.yaml: steps"):
        path.write_text("name: w\nsteps: 3\n")
        load_spec(path)
    with pytest.raises(InvalidSpec, match="<spec>: name: required"):
        load_spec(spec_pb2.WorkflowSpec(steps=[spec_pb2.StepSpec(id="a", capability="c")]))
    with pytest.raises(InvalidSpec, match="got int"):
        load_spec(3)  # type: ignore[arg-type]


def test_bad_client_arguments_are_refused_at_once(monkeypatch) -> None:
    with pytest.raises(InvalidSpec, match="HOST:PORT"):
        AsyncClient("no-port")
    with pytest.raises(InvalidSpec, match="rpc_timeout"):
        AsyncClient("127.0.0.1:7101", rpc_timeout=0)
    monkeypatch.setenv("FEDORCH_PEER", "127.0.0.1:7999")
    assert AsyncClient().peer == "127.0.0.1:7999"
