"""The agent's log output: readable text lines (default) or one JSON object per line.

``log_format: json`` makes every record one line of JSON: time, level, logger, message,
domain and, where the record concerns one, the workflow, its trace id (the same on every
domain: telemetry.trace_id_of) and the step. A traceback goes inside the object, as a
string, so no record spans lines; uncaught exceptions, warnings and the daemon's last
words go through the same formatter.

Where a record's workflow comes from, first found wins: ``extra={"workflow": ...}``; the
step attempt the record is logged in (a context variable set around it); a workflow id
in the message itself (ids look like ``DOMAIN.<20 hex digits>``).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator

from fedorch.runtime.telemetry import trace_id_hex

LOG_FORMATS = ("text", "json")
WORKFLOW_ID_RE = re.compile(r"\b[a-z0-9][a-z0-9.-]{0,62}\.[0-9a-f]{20}\b")

_workflow: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar(
    "fedorch_log_workflow", default=("", ""))


@contextlib.contextmanager
def about(workflow_id: str, step_id: str = "") -> Iterator[None]:
    """Records logged inside (this task and the tasks it starts) name this workflow/step."""
    token = _workflow.set((workflow_id, step_id))
    try:
        yield
    finally:
        _workflow.reset(token)


class JsonFormatter(logging.Formatter):
    def __init__(self, domain: str) -> None:
        super().__init__()
        self.domain = domain

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, object] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
            "domain": self.domain,
        }
        workflow, step = getattr(record, "workflow", ""), getattr(record, "step", "")
        if not workflow:
            workflow, step = _workflow.get()
        if not workflow:
            found = WORKFLOW_ID_RE.search(message)
            workflow = found.group(0) if found else ""
        if workflow:
            out["workflow"] = workflow
            out["trace_id"] = trace_id_hex(workflow)
        if step:
            out["step"] = step
        if record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def setup(domain: str, level: str, log_format: str) -> None:
    """Configure the root logger for the daemon (stderr, the config's level and format)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(domain))
        _route_stray_output()
    else:
        handler.setFormatter(logging.Formatter(
            f"%(asctime)s %(levelname)s {domain} %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """The root logger's level (the config's `log_level`; SIGHUP applies a new one)."""
    logging.getLogger().setLevel(getattr(logging, level.upper(), logging.INFO))


def _route_stray_output() -> None:
    """What Python would print on its own (an uncaught exception's traceback, a warning)
    goes through logging instead, so it is one JSON line like any record."""
    crash = logging.getLogger("fedorch.crash")

    def excepthook(kind, value, tb) -> None:
        crash.critical("uncaught %s: %s", kind.__name__, value, exc_info=(kind, value, tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is not SystemExit:
            crash.critical("uncaught %s in thread %s: %s", args.exc_type.__name__,
                           args.thread.name if args.thread else "?", args.exc_value,
                           exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    logging.captureWarnings(True)


def last_words(message: str) -> None:
    """The daemon's final line on stderr (why it stopped), in the configured format."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        logging.getLogger("fedorch.daemon").error("%s", message)
    else:
        print(message, file=sys.stderr)
