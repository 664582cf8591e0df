"""What runs on a Dask worker for the dask executor, and the cancel check steps can call.

Kept apart from dask_job.py so that a worker imports only this small module (and the
step's own function), not the agent's executor machinery.
"""

from __future__ import annotations

import importlib
from typing import Any

from fedorch.core.workflow import values

# A task's states on the worker once its result is no longer wanted (see
# distributed.worker_state_machine): a cancelled task keeps running in its thread
# until the function returns, so a long step asks `step_cancelled()` now and then.
_ABANDONED_STATES = frozenset({"cancelled", "released", "forgotten"})


def run_step(function_path: str, document: dict[str, Any]) -> str:
    """Call the step's function with the invocation document; its outputs as exact JSON
    text (integers stay integers whatever the serializer between worker and agent)."""
    function = import_function(function_path)
    outputs = function(document)
    if not isinstance(outputs, dict):
        raise TypeError(
            f"{function_path} must return a dict of outputs, got {type(outputs).__name__}"
        )
    return values.dumps(outputs)


def import_function(path: str) -> Any:
    """``package.module:function`` (or ``package.module.function``) imported."""
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"{path!r} is not a function path like package.module:function")
    function = importlib.import_module(module_name)
    for part in attribute.split("."):
        function = getattr(function, part)
    if not callable(function):
        raise TypeError(f"{path} is not callable")
    return function


def step_cancelled() -> bool:
    """True once the agent gave this step up (timeout or cancel): the step should stop.

    Call it from inside the step's function on a Dask worker; outside a task it is False.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
        key = worker.get_current_task()
    except (ImportError, ValueError, KeyError, AttributeError):
        return False
    task = worker.state.tasks.get(key)
    return task is None or task.state in _ABANDONED_STATES
