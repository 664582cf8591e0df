"""The scenario runner submits as a client of a busy agent should: a submit that timed out
or found the agent unavailable is sent again under the same request id (the agent
answers a repeat with the workflow it started the first time), until the workflow's
time is up; any other refusal is final at once."""

from __future__ import annotations

import time
from types import SimpleNamespace

import grpc
import pytest
from fedorch.scenario import run as scenario_run


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                details=f"{code.name.lower()} here")


class Agent:
    """Fails the first submits with the given codes, then answers with one id per request
    id (as the agent's request-id table does)."""

    def __init__(self, failures: list[grpc.StatusCode]) -> None:
        self.failures = list(failures)
        self.request_ids: list[str] = []
        self.started: dict[str, str] = {}

    async def submit(self, spec, request_id: str) -> str:
        self.request_ids.append(request_id)
        if self.failures:
            raise rpc_error(self.failures.pop(0))
        return self.started.setdefault(request_id, f"a.wf{len(self.started) + 1}")


class State:
    def __init__(self, agent: Agent) -> None:
        self.agent, self.lines, self.forgotten = agent, [], 0

    async def client(self, name: str) -> Agent:
        return self.agent

    async def forget(self, name: str) -> None:
        self.forgotten += 1

    def now(self) -> float:
        return time.monotonic()

    def say(self, kind: str, text: str) -> None:
        self.lines.append((kind, text))


def a_copy() -> SimpleNamespace:
    submission = SimpleNamespace(to="a", timeout_s=30.0)
    return SimpleNamespace(workflow=SimpleNamespace(submission=submission, spec=object()),
                           label="w#1", error=None)


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch) -> None:
    monkeypatch.setattr(scenario_run, "SUBMIT_BACKOFF_S", (0.01, 0.02))


async def test_a_timed_out_submit_is_sent_again_under_the_same_request_id() -> None:
    agent = Agent([grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE])
    state, copy = State(agent), a_copy()
    assert await scenario_run.submit_copy(state, copy, 30.0) == "a.wf1"
    assert len(agent.request_ids) == 3 and len(set(agent.request_ids)) == 1
    assert copy.error is None and state.forgotten == 2
    assert sum("sent again" in text for _, text in state.lines) == 2


async def test_a_refusal_is_final_at_once() -> None:
    agent = Agent([grpc.StatusCode.INVALID_ARGUMENT])
    state, copy = State(agent), a_copy()
    assert await scenario_run.submit_copy(state, copy, 30.0) is None
    assert len(agent.request_ids) == 1
    assert copy.error.startswith("submit to a failed: INVALID_ARGUMENT")


async def test_retries_stop_when_the_workflow_s_time_is_up() -> None:
    agent = Agent([grpc.StatusCode.DEADLINE_EXCEEDED] * 1000)
    state, copy = State(agent), a_copy()
    assert await scenario_run.submit_copy(state, copy, 0.05) is None
    assert copy.error.startswith("submit to a failed: DEADLINE_EXCEEDED")
    assert 1 < len(agent.request_ids) < 1000
