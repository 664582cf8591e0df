"""Runs a step on a Dask distributed cluster the domain already runs.

The step is a Python function, named by ``options.function`` and imported on the
workers; it gets the invocation document (docs/executors.md) and returns a dict of
outputs. Each attempt is one task, keyed ``fedorch-<run marker>-<random>`` so it can be
found in the cluster's dashboard. On a timeout or a cancel the task is cancelled on the
scheduler (``Client.cancel(force=True)``); Dask cannot interrupt a function already
running in a worker thread, so a long step calls
``fedorch.runtime.executors.dask_task.step_cancelled()`` and returns when it is True.

A client connects per attempt and closes with it: nothing to close when the agent
stops, and a scheduler restart between steps needs no reconnect logic.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from typing import Any

from fedorch.core.workflow import values
from fedorch.runtime.executors.base import (
    Executor,
    ExecutorConfigError,
    StepInvocation,
    StepOutcome,
    invocation_document,
    timed_out_error,
)
from fedorch.runtime.executors.options import Options, refuse_unused
from fedorch.runtime.executors.plugins import ExecutorSettings

log = logging.getLogger(__name__)

OPTIONS = ("scheduler", "function", "connect_timeout_s", "resources")
CANCEL_TIMEOUT_S = 10.0
FUNCTION_RE = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?")


def build(settings: ExecutorSettings) -> Executor:
    """The ``dask`` entry point: checks ``executor.options`` and builds the executor."""
    refuse_unused("dask", settings)
    opts = Options("dask", settings.options, OPTIONS)
    scheduler = opts.string("scheduler", example="tcp://127.0.0.1:8786")
    if "://" not in scheduler:
        opts.fail("scheduler", f"must be a scheduler address like tcp://HOST:PORT, got {scheduler!r}")
    function = opts.string("function", example="mypackage.steps:train")
    if not FUNCTION_RE.fullmatch(function) or ("." not in function and ":" not in function):
        opts.fail("function", f"must be a path like package.module:function, got {function!r}")
    executor = DaskExecutor(
        scheduler,
        function,
        connect_timeout_s=opts.number("connect_timeout_s", default=10.0),
        resources=opts.number_map("resources"),
    )
    try:
        import distributed  # noqa: F401  (checked now: a missing engine is a config error)
    except ImportError:
        raise ExecutorConfigError(
            "executor.type: dask needs the distributed package: pip install 'fedorch[dask]'",
            field="type",
        ) from None
    return executor


class DaskExecutor:
    def __init__(
        self,
        scheduler: str,
        function: str,
        *,
        connect_timeout_s: float = 10.0,
        resources: dict[str, float] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.function = function
        self.connect_timeout_s = connect_timeout_s
        self.resources = dict(resources or {})

    async def run(self, inv: StepInvocation) -> StepOutcome:
        from distributed import Client
        from fedorch.runtime.executors.dask_task import run_step

        document = invocation_document(inv)
        try:
            values.check(document, "the step")
        except values.JsonValueError as exc:
            return StepOutcome.failure(f"params or inputs are not JSON data: {exc}")
        key = f"fedorch-{inv.run_marker or inv.step_id}-{uuid.uuid4().hex[:12]}"
        client = None
        future = None
        try:
            async with asyncio.timeout(inv.timeout_s):
                try:
                    client = await Client(
                        self.scheduler, asynchronous=True, timeout=self.connect_timeout_s,
                        set_as_default=False,
                    )
                except (OSError, TimeoutError) as exc:
                    return StepOutcome.failure(
                        f"cannot reach the Dask scheduler at {self.scheduler}: {exc}"
                    )
                future = client.submit(
                    run_step, self.function, document, key=key, pure=False,
                    resources=self.resources or None,
                )
                text = await future
            return StepOutcome.success(values.loads_object(text))
        except TimeoutError:
            await self._cancel(client, future)
            return StepOutcome.failure(timed_out_error(inv.timeout_s or 0.0))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                await asyncio.shield(self._cancel(client, future))
                raise
            # Not ours: the task was cancelled on the cluster (by an operator, say).
            return StepOutcome.failure(f"the Dask task {key} was cancelled on the cluster")
        except Exception as exc:  # the step's own exception, re-raised by the client
            return StepOutcome.failure(f"{type(exc).__name__}: {exc}")
        finally:
            if client is not None:
                await asyncio.shield(_close(client))

    async def _cancel(self, client: Any, future: Any) -> None:
        if client is None or future is None:
            return
        try:
            async with asyncio.timeout(CANCEL_TIMEOUT_S):
                await client.cancel([future], force=True, reason="fedorch: step given up")
        except Exception as exc:  # the scheduler may be gone; the step has failed already
            log.warning("cancelling Dask task %s failed: %s", future.key, exc)


async def _close(client: Any) -> None:
    try:
        await client.close(timeout=CANCEL_TIMEOUT_S)
    except Exception as exc:
        log.warning("closing the Dask client failed: %s", exc)
