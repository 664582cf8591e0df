"""The http executor against a real HTTP service on 127.0.0.1 (aiohttp's web server),
alone and inside real agents.

The service is the kind a domain would put in front of its own engine: it answers a step
at once, or starts a job and lets the executor poll it; a DELETE cancels the job, and the
test checks that the job's work really stopped on the service's side.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time

import pytest
from aiohttp import web
from fedorch.bench.realnet import RPC_TIMEOUT_S
from fedorch.core.workflow import values
from fedorch.gen.fedorch.v1 import client_pb2
from fedorch.runtime.executors import StepInvocation, build_executor

from tests.integration.federation import started_federation, state_name, step_states

BIG = 2**70  # past a double's 53 bits: arrives intact only if JSON stays exact


class StepService:
    """A small job service; what it was sent and asked is kept for the asserts."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.idempotency_keys: list[str | None] = []
        self.polls = 0
        self.cancelled: list[str] = []
        self.stopped_work: list[str] = []  # jobs whose work was interrupted by a cancel
        self.jobs: dict[str, dict] = {}
        self.job_tasks: dict[str, asyncio.Task] = {}
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/steps", self.post_step)
        app.router.add_get("/jobs/{id}", self.get_job)
        app.router.add_delete("/jobs/{id}", self.delete_job)
        return app

    async def post_step(self, request: web.Request) -> web.Response:
        document = await request.json()
        self.requests.append(document)
        self.idempotency_keys.append(request.headers.get("Idempotency-Key"))
        params = document["params"]
        mode = params.get("mode")
        if mode == "now":
            return web.json_response({"sum": params["a"] + params["b"], "big": params["big"]})
        if mode == "refuse":
            return web.json_response({"error": "model 'x' is not deployed here"}, status=422)
        if mode == "no-status-url":
            return web.json_response({}, status=202)
        job_id = str(next(self._ids))
        self.jobs[job_id] = {"state": "running"}
        self.job_tasks[job_id] = asyncio.create_task(self.work(job_id, params))
        return web.json_response({"id": job_id}, status=202,
                                 headers={"Location": f"/jobs/{job_id}"})

    async def work(self, job_id: str, params: dict) -> None:
        try:
            await asyncio.sleep(params.get("seconds", 0.2))
        except asyncio.CancelledError:
            self.stopped_work.append(job_id)
            raise
        if params.get("mode") == "job-fails":
            self.jobs[job_id] = {"state": "failed", "error": "out of GPU memory"}
        else:
            self.jobs[job_id] = {"state": "succeeded", "outputs": {"rows": 3, "big": BIG}}

    async def get_job(self, request: web.Request) -> web.Response:
        self.polls += 1
        job = self.jobs.get(request.match_info["id"])
        if job is None:
            return web.json_response({"error": "no such job"}, status=404)
        return web.json_response(job)

    async def delete_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["id"]
        task = self.job_tasks.get(job_id)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # Recorded once the work has stopped, so a test that sees the cancel sees its effect.
        self.cancelled.append(job_id)
        self.jobs[job_id] = {"state": "failed", "error": "cancelled"}
        return web.Response(status=204)


@pytest.fixture
async def service():
    svc = StepService()
    runner = web.AppRunner(svc.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield svc, f"http://127.0.0.1:{port}/steps"
    finally:
        for task in svc.job_tasks.values():
            task.cancel()
        await asyncio.gather(*svc.job_tasks.values(), return_exceptions=True)
        await runner.cleanup()


def invocation(params: dict, timeout_s: float | None = 20.0) -> StepInvocation:
    return StepInvocation(
        workflow_id="wf-1", step_id="train", attempt=2, params=params,
        inputs={"extract": {"rows": [1, 2], "n": 1}}, timeout_s=timeout_s,
        run_marker="eu-west/wf-1/train/2",
    )


def http_executor(url: str, **options):
    return build_executor("http", options={"url": url, "poll_interval_s": 0.05,
                                           "poll_max_interval_s": 0.2, **options})


async def test_an_immediate_answer_is_the_outputs_and_json_stays_exact(service) -> None:
    svc, url = service
    outcome = await http_executor(url).run(
        invocation({"mode": "now", "a": 1, "b": 2, "big": BIG})
    )
    assert outcome.ok, outcome.error
    assert outcome.outputs == {"sum": 3, "big": BIG}
    assert type(outcome.outputs["sum"]) is int
    sent = svc.requests[0]
    assert sent["params"]["big"] == BIG and type(sent["params"]["a"]) is int
    assert sent["inputs"] == {"extract": {"rows": [1, 2], "n": 1}}
    assert (sent["workflow"], sent["step"], sent["attempt"]) == ("wf-1", "train", 2)
    assert svc.idempotency_keys == ["eu-west/wf-1/train/2"]


async def test_a_job_is_polled_until_it_succeeds(service) -> None:
    svc, url = service
    outcome = await http_executor(url).run(invocation({"mode": "job", "seconds": 0.3}))
    assert outcome.ok, outcome.error
    assert outcome.outputs == {"rows": 3, "big": BIG}
    assert svc.polls >= 1
    assert svc.cancelled == []


async def test_a_failed_job_is_a_failed_step_with_its_reason(service) -> None:
    svc, url = service
    outcome = await http_executor(url).run(invocation({"mode": "job-fails", "seconds": 0.05}))
    assert not outcome.ok
    assert outcome.error == "out of GPU memory"
    assert svc.cancelled == []  # a job that ended needs no cancel


async def test_a_refusal_carries_the_services_error(service) -> None:
    _, url = service
    outcome = await http_executor(url).run(invocation({"mode": "refuse"}))
    assert not outcome.ok
    assert "HTTP 422" in outcome.error and "model 'x' is not deployed here" in outcome.error


async def test_a_job_without_a_status_url_fails_clearly(service) -> None:
    _, url = service
    outcome = await http_executor(url).run(invocation({"mode": "no-status-url"}))
    assert not outcome.ok
    assert "without a status URL" in outcome.error


async def test_timeout_cancels_the_job_on_the_service(service) -> None:
    svc, url = service
    outcome = await http_executor(url).run(
        invocation({"mode": "job", "seconds": 60}, timeout_s=0.5)
    )
    assert not outcome.ok
    assert outcome.error == "timed out after 0.5s"
    # The DELETE is sent before the outcome comes back, and the service stopped the work.
    assert svc.cancelled == ["1"]
    assert svc.stopped_work == ["1"]
    assert svc.jobs["1"]["state"] == "failed"


async def test_cancelling_the_attempt_cancels_the_job_on_the_service(service) -> None:
    svc, url = service
    run = asyncio.create_task(
        http_executor(url).run(invocation({"mode": "job", "seconds": 60}, timeout_s=None))
    )
    deadline = time.monotonic() + 10
    while svc.polls == 0:  # the job exists and is being followed
        assert time.monotonic() < deadline, "the executor never polled the job"
        await asyncio.sleep(0.01)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert svc.cancelled == ["1"]
    assert svc.stopped_work == ["1"]


async def test_an_unreachable_service_is_a_failed_step() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcome = await http_executor(f"http://127.0.0.1:{port}/steps").run(
        invocation({"mode": "now"})
    )
    assert not outcome.ok
    assert f"POST http://127.0.0.1:{port}/steps failed" in outcome.error


# --- on real agents -----------------------------------------------------------------------
# Two agents: partner extracts (builtin echo), eu-west scores through its own HTTP service.


def federation_domains(url: str) -> dict[str, dict]:
    return {
        "partner": {"capabilities": [
            {"name": "data.extract", "capacity": 2,
             "executor": {"type": "builtin", "name": "echo"}},
        ]},
        "eu-west": {"capabilities": [
            {"name": "ml.score", "capacity": 2,
             "executor": {"type": "http", "options": {
                 "url": url, "poll_interval_s": 0.05, "poll_max_interval_s": 0.2}}},
        ]},
    }


def scoring_spec(score_params: str) -> str:
    return f"""
name: scoring
steps:
  - id: extract
    capability: data.extract
    params: {{n: 1, big: {BIG}}}
    constraints: {{domains: [partner]}}
  - id: score
    capability: ml.score
    needs: [extract]
    params: {score_params}
    constraints: {{domains: [eu-west]}}
"""


@pytest.mark.integration
async def test_agents_run_a_step_through_a_domains_http_service(service, tmp_path) -> None:
    svc, url = service
    async with started_federation(tmp_path, federation_domains(url)) as fed:
        wid = await fed.submit("partner", scoring_spec("{mode: job, seconds: 0.2}"))
        status = await fed.wait_state("partner", wid)
        assert state_name(status) == "SUCCEEDED", status
        assert step_states(status)["score"][:2] == ("SUCCEEDED", "eu-west")
        score = next(s for s in status.steps if s.id == "score")
        assert values.loads_object(score.outputs_json) == {"rows": 3, "big": BIG}
    # What the service was sent: the upstream step's outputs, exactly.
    upstream = svc.requests[0]["inputs"]["extract"]["echo"]
    assert upstream == {"n": 1, "big": BIG} and type(upstream["n"]) is int
    assert svc.idempotency_keys[0].startswith("eu-west/")


@pytest.mark.integration
async def test_cancelling_a_workflow_cancels_the_job_on_the_service(service, tmp_path) -> None:
    svc, url = service
    async with started_federation(tmp_path, federation_domains(url)) as fed:
        wid = await fed.submit("partner", scoring_spec("{mode: job, seconds: 600}"))
        deadline = time.monotonic() + 60
        while svc.polls == 0:  # the job runs on the service and eu-west follows it
            assert time.monotonic() < deadline, "the score step never reached the service"
            await asyncio.sleep(0.05)
        await fed.client("partner").Cancel(client_pb2.CancelRequest(id=wid, reason="test"),
                                           timeout=RPC_TIMEOUT_S)
        status = await fed.wait_state("partner", wid)
        assert state_name(status) == "CANCELLED", status
        while not svc.cancelled:
            assert time.monotonic() < deadline, "the service never received the cancel"
            await asyncio.sleep(0.05)
    assert svc.cancelled == ["1"] and svc.stopped_work == ["1"]
