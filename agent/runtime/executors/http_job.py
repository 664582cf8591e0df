"""Runs a step on a domain's own HTTP service: POST the step, follow the job it starts.

The protocol (docs/executors.md#http):

- ``POST options.url`` with the step as a JSON object (``invocation_document``), and the
  attempt's run marker as ``Idempotency-Key`` so a service can recognise a repeat.
- ``200`` with a JSON object: done at once, the object is the step's outputs.
- ``202``: a job was started. Its status URL is the ``Location`` header or the body's
  ``status_url`` (relative to the request). ``GET`` on it answers a JSON object with
  ``state``: ``pending``/``running`` (poll again, with backoff), ``succeeded`` (its
  ``outputs`` object is the result) or ``failed`` (its ``error`` is the reason).
- Any other status is a failure whose reason is the body's ``error`` or its text.

On a timeout or a cancel the job is cancelled on the service: ``DELETE`` on the body's
``cancel_url`` or else the status URL. Step trouble (unreachable service, bad answers) is
a failed outcome, never an exception; only a bad ``options`` block raises, at build time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from fedorch.core.workflow import values
from fedorch.runtime.executors.base import (
    Executor,
    StepInvocation,
    StepOutcome,
    clip_error,
    invocation_document,
    timed_out_error,
)
from fedorch.runtime.executors.options import Options, refuse_unused
from fedorch.runtime.executors.plugins import ExecutorSettings

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
"""Largest answer read from the service; outputs must fit."""
CANCEL_TIMEOUT_S = 10.0
"""How long a cancel request may take once the step has already been given up."""
OPTIONS = (
    "url", "headers", "request_timeout_s", "poll_interval_s", "poll_max_interval_s",
    "max_poll_errors",
)
RUNNING_STATES = ("pending", "running", "queued")


def build(settings: ExecutorSettings) -> Executor:
    """The ``http`` entry point: checks ``executor.options`` and builds the executor."""
    refuse_unused("http", settings)
    opts = Options("http", settings.options, OPTIONS)
    url = opts.string("url", example="http://127.0.0.1:8080/steps")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        opts.fail("url", f"must be an http:// or https:// URL, got {url!r}")
    executor = HttpExecutor(
        url,
        headers=opts.string_map("headers"),
        request_timeout_s=opts.number("request_timeout_s", default=30.0),
        poll_interval_s=opts.number("poll_interval_s", default=0.5),
        poll_max_interval_s=opts.number("poll_max_interval_s", default=10.0),
        max_poll_errors=opts.integer("max_poll_errors", default=5),
    )
    if executor.poll_max_interval_s < executor.poll_interval_s:
        opts.fail("poll_max_interval_s", "must be at least poll_interval_s")
    return executor


class _StepFailed(Exception):
    """Ends an attempt with a failed outcome; the message is the reason."""


class HttpExecutor:
    def __init__(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        request_timeout_s: float = 30.0,
        poll_interval_s: float = 0.5,
        poll_max_interval_s: float = 10.0,
        max_poll_errors: int = 5,
    ) -> None:
        self.url = url
        self.headers = dict(headers or {})
        self.request_timeout_s = request_timeout_s
        self.poll_interval_s = poll_interval_s
        self.poll_max_interval_s = poll_max_interval_s
        self.max_poll_errors = max_poll_errors

    async def run(self, inv: StepInvocation) -> StepOutcome:
        try:
            body = values.dumps(invocation_document(inv)).encode()
        except values.JsonValueError as exc:
            return StepOutcome.failure(f"params or inputs are not JSON data: {exc}")
        timeout = aiohttp.ClientTimeout(total=self.request_timeout_s)
        # One session per attempt: nothing outlives the attempt, so the executor needs no
        # closing when the agent stops or reloads its config.
        async with aiohttp.ClientSession(timeout=timeout, headers=self.headers) as session:
            job = _Job()
            try:
                async with asyncio.timeout(inv.timeout_s):
                    return await self._run(session, inv, body, job)
            except TimeoutError:
                await self._cancel(session, job)
                return StepOutcome.failure(timed_out_error(inv.timeout_s or 0.0))
            except asyncio.CancelledError:
                # Shielded, so the service hears of the cancel even as this task unwinds.
                await asyncio.shield(self._cancel(session, job))
                raise
            except _StepFailed as exc:
                await self._cancel(session, job)  # a job in an unknown state may still run
                return StepOutcome.failure(str(exc))

    async def _run(
        self, session: aiohttp.ClientSession, inv: StepInvocation, body: bytes, job: _Job
    ) -> StepOutcome:
        headers = {"Content-Type": "application/json"}
        if inv.run_marker:
            headers["Idempotency-Key"] = inv.run_marker
        try:
            async with session.post(self.url, data=body, headers=headers) as resp:
                status, text, location = resp.status, await _read(resp), resp.headers.get(
                    "Location"
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _StepFailed(f"POST {self.url} failed: {_describe(exc)}") from None
        if status == 200:
            return StepOutcome.success(_json_object(text, f"POST {self.url}"))
        if status != 202:
            raise _StepFailed(_http_error("POST", self.url, status, text))
        answer = _json_object(text, f"POST {self.url}") if text.strip() else {}
        status_url = answer.get("status_url") or location
        if not isinstance(status_url, str) or not status_url:
            raise _StepFailed(
                f"POST {self.url} answered 202 without a status URL "
                "(a Location header or a status_url field)"
            )
        job.status_url = urljoin(self.url, status_url)
        cancel_url = answer.get("cancel_url")
        job.cancel_url = urljoin(self.url, cancel_url) if isinstance(cancel_url, str) else ""
        return await self._follow(session, job)

    async def _follow(self, session: aiohttp.ClientSession, job: _Job) -> StepOutcome:
        interval = self.poll_interval_s
        errors = 0
        while True:
            await asyncio.sleep(interval)
            interval = min(interval * 2, self.poll_max_interval_s)
            try:
                async with session.get(job.status_url) as resp:
                    status, text = resp.status, await _read(resp)
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, text = 0, _describe(exc)
            if status == 200:
                errors = 0
                state = _json_object(text, f"GET {job.status_url}")
                outcome = self._outcome(state, job)
                if outcome is not None:
                    return outcome
                continue
            if status in (404, 410):
                job.finished = True  # nothing left there to cancel
                raise _StepFailed(f"the job at {job.status_url} is gone (HTTP {status})")
            # A restarting service or a network blip: keep trying, a few times.
            errors += 1
            if errors >= self.max_poll_errors:
                detail = _http_error("GET", job.status_url, status, text) if status else text
                raise _StepFailed(f"gave up following the job after {errors} errors: {detail}")

    def _outcome(self, state: dict[str, Any], job: _Job) -> StepOutcome | None:
        name = state.get("state")
        if name in RUNNING_STATES:
            return None
        job.finished = True
        if name == "succeeded":
            outputs = state.get("outputs", {})
            if not isinstance(outputs, dict):
                raise _StepFailed(f"job outputs must be a JSON object, got {outputs!r:.200}")
            return StepOutcome.success(outputs)
        if name == "failed":
            return StepOutcome.failure(str(state.get("error") or "the job failed"))
        job.finished = False  # an unknown state: the job may still run, so cancel it
        raise _StepFailed(
            f"job state {name!r} is not one of: {', '.join(RUNNING_STATES)}, succeeded, failed"
        )

    async def _cancel(self, session: aiohttp.ClientSession, job: _Job) -> None:
        """Cancel the job on the service, if one was started and has not ended."""
        url = job.cancel_url or job.status_url
        if not url or job.finished:
            return
        job.finished = True
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                async with session.delete(url) as resp:
                    if resp.status >= 300 and resp.status not in (404, 410):
                        log.warning("cancelling the job at %s: HTTP %d", url, resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("cancelling the job at %s failed: %s", url, _describe(exc))


class _Job:
    """What is known of the service's job for one attempt."""

    def __init__(self) -> None:
        self.status_url = ""
        self.cancel_url = ""
        self.finished = False


async def _read(resp: aiohttp.ClientResponse) -> str:
    data = await resp.content.read(MAX_RESPONSE_BYTES + 1)
    if len(data) > MAX_RESPONSE_BYTES:
        raise _StepFailed(f"the answer from {resp.url} is larger than {MAX_RESPONSE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        # Exact JSON (core/workflow/values.py): integers stay integers, NaN is refused.
        return values.loads_object(text)
    except values.JsonValueError as exc:
        raise _StepFailed(f"{where}: the answer is not a JSON object: {exc}") from None


def _http_error(method: str, url: str, status: int, text: str) -> str:
    reason = text.strip()
    try:
        answer = values.loads(text)
    except values.JsonValueError:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        reason = answer["error"]
    return clip_error(f"{method} {url}: HTTP {status}" + (f": {reason}" if reason else ""))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
