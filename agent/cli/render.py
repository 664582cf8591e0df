"""Status and members as JSON-ready dicts (ARCHITECTURE §6) and as rich tables."""

from __future__ import annotations

import json
import time
from typing import Any

from fedorch.core.workflow import values
from fedorch.core.workflow.lifecycle import TERMINAL, TERMINAL_NAMES
from fedorch.gen.fedorch.v1 import client_pb2, status_pb2
from google.protobuf import json_format, struct_pb2
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

WorkflowState = status_pb2.WorkflowState

_STYLES = {
    "SUCCEEDED": "green",
    "RUNNING": "cyan",
    "NEGOTIATING": "magenta",
    "WAITING": "blue",
    "PENDING": "dim",
    "FAILED": "red",
    "ABORTED": "red",
    "CANCELLED": "yellow",
    "SKIPPED": "yellow",
    "COMPENSATED": "yellow",
    "COMPENSATION_FAILED": "red",
    "DONE": "green",
    "ALIVE": "green",
    "SUSPECT": "yellow",
    "DEAD": "red",
    "LEFT": "dim",
}


def _enum_name(enum: Any, value: int, prefix: str) -> str:
    try:
        name: str = enum.Name(value)
    except ValueError:
        return f"UNKNOWN_{value}"
    return name.removeprefix(prefix)


def workflow_state_name(value: int) -> str:
    """WORKFLOW_STATE_SUCCEEDED -> "SUCCEEDED"."""
    return _enum_name(status_pb2.WorkflowState, value, "WORKFLOW_STATE_")


def compensation_name(value: int) -> str:
    """COMPENSATION_SUMMARY_DONE -> "DONE"; unset (an agent without sagas) -> "NONE"."""
    if value == status_pb2.COMPENSATION_SUMMARY_UNSPECIFIED:
        return "NONE"
    return _enum_name(status_pb2.CompensationSummary, value, "COMPENSATION_SUMMARY_")


def step_state_name(value: int) -> str:
    """STEP_STATE_RUNNING -> "RUNNING"."""
    return _enum_name(status_pb2.StepState, value, "STEP_STATE_")


def member_state_name(value: int) -> str:
    """MEMBER_STATE_ALIVE -> "ALIVE"."""
    return _enum_name(client_pb2.MemberState, value, "MEMBER_STATE_")


def is_terminal(status: status_pb2.WorkflowStatus) -> bool:
    return status.state in TERMINAL


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a plain dict; an empty or unset Struct is {}."""
    return json_format.MessageToDict(struct)


def step_outputs(step: status_pb2.StepStatus) -> dict[str, Any]:
    """A step's outputs exactly as the step gave them (integers stay integers); from the
    legacy Struct only for an agent that predates exact values."""
    return values.read_object(step, "outputs")


# ---- JSON --------------------------------------------------------------------------


def step_to_dict(step: status_pb2.StepStatus) -> dict[str, Any]:
    out = {
        "id": step.id,
        "domain": step.domain,
        "state": step_state_name(step.state),
        "attempts": step.attempts,
        "outputs": step_outputs(step),
        "error": step.error,
    }
    if step.instance_of:  # an instance of a fan-out step (docs/workflow-spec.md)
        out["instance_of"], out["wave"] = step.instance_of, step.wave
    if step.replaced_from:  # placed again after losing these domains (docs/failures.md)
        out["replaced_from"] = list(step.replaced_from)
    return out


def refusal_to_dict(refusal: status_pb2.Refusal) -> dict[str, Any]:
    return {
        "round": refusal.round,
        "domain": refusal.domain,
        "steps": list(refusal.steps),
        "reason": refusal.reason,
    }


def compensation_to_dict(c: status_pb2.CompensationStatus) -> dict[str, Any]:
    return {"step": c.step, "domain": c.domain, "state": c.state,
            "attempts": c.attempts, "error": c.error}


def status_to_dict(status: status_pb2.WorkflowStatus) -> dict[str, Any]:
    """The status JSON of ARCHITECTURE §6, plus "refusals" and "rounds" (and
    "compensations", each one, when a saga compensates anything: docs/sagas.md)."""
    out = {
        "id": status.id,
        "name": status.name,
        "state": workflow_state_name(status.state),
        "coordinator": status.coordinator,
        "epoch": status.epoch,
        "reason": status.reason,
        "compensation": compensation_name(status.compensation),
        "steps": [step_to_dict(step) for step in status.steps],
        "refusals": [refusal_to_dict(r) for r in status.refusals],
        "rounds": status.rounds,
    }
    if status.compensations:
        out["compensations"] = [compensation_to_dict(c) for c in status.compensations]
    return out


def member_to_dict(member: client_pb2.MemberInfo) -> dict[str, Any]:
    """The members JSON of ARCHITECTURE §6, plus "incarnation", "version" (of the record),
    "last_heard_ms" and "self"."""
    return {
        "domain": member.domain,
        "address": member.address,
        "state": member_state_name(member.state),
        "labels": dict(sorted(member.labels.items())),
        "capabilities": [
            {"name": c.name, "capacity": c.capacity, "available": c.available}
            for c in member.capabilities
        ],
        "incarnation": member.incarnation,
        "version": member.version,
        "last_heard_ms": member.last_heard_ms,
        "self": member.self,
    }


def members_to_list(members: list[client_pb2.MemberInfo]) -> list[dict[str, Any]]:
    return [member_to_dict(m) for m in members]


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2)


# ---- text helpers --------------------------------------------------------------------


def _tidy_numbers(value: Any) -> Any:
    """Show 1.0 as 1 to people, as outputs from before exact values (a Struct's numbers
    are doubles) were meant; JSON output keeps every value as it is."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _tidy_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tidy_numbers(v) for v in value]
    return value


def compact_json(value: Any) -> str:
    """One-line JSON for humans (tables, change lines)."""
    if not value:
        return ""
    return json.dumps(_tidy_numbers(value), separators=(",", ":"), sort_keys=True)


def state_text(name: str) -> Text:
    return Text(name, style=_STYLES.get(name, ""))


def _text(value: Any) -> Text:
    """User data as Text, so that brackets in it are never read as rich markup."""
    return Text("" if value is None else str(value))


def last_heard_seconds(last_heard_ms: int, now_ms: int | None = None) -> float | None:
    """Seconds since a member was last heard from, or None when unknown.

    Values that look like a wall-clock timestamp (after 2001) are read as epoch ms;
    smaller values as an age in ms.
    """
    if last_heard_ms <= 0:
        return None
    if last_heard_ms < 1_000_000_000_000:
        return last_heard_ms / 1000.0
    if now_ms is None:
        now_ms = int(time.time() * 1000)
    return max(0.0, (now_ms - last_heard_ms) / 1000.0)


# ---- tables --------------------------------------------------------------------------


def steps_table(status: status_pb2.WorkflowStatus, title: str | None = None) -> Table:
    table = Table(title=title, show_lines=False, expand=False)
    # A wave column only when the workflow has fan-out steps: "deploy 2" is the second
    # wave of fan-out step deploy.
    waves = any(step.instance_of for step in status.steps)
    for column in ("step", *(["wave"] if waves else []), "capability", "domain", "state",
                   "attempts"):
        table.add_column(column, no_wrap=True)
    table.add_column("outputs", overflow="fold")
    table.add_column("error", overflow="fold")
    for step in status.steps:
        state = step_state_name(step.state)
        wave = [_text(f"{step.instance_of} {step.wave}" if step.instance_of else "-")]
        table.add_row(
            _text(step.id),
            *(wave if waves else []),
            _text(step.capability),
            # A step placed again after a lost domain: "w2 (was w1)".
            _text((step.domain or "-") + (f" (was {', '.join(step.replaced_from)})"
                                          if step.replaced_from else "")),
            state_text(state),
            _text(step.attempts),
            _text(compact_json(step_outputs(step))),
            Text(step.error, style="red") if step.error else _text(""),
        )
    return table


def refusals_table(status: status_pb2.WorkflowStatus) -> Table:
    table = Table(title="refusals")
    for column in ("round", "domain", "steps", "reason"):
        table.add_column(column, overflow="fold")
    for refusal in status.refusals:
        table.add_row(
            _text(refusal.round),
            _text(refusal.domain),
            _text(", ".join(refusal.steps)),
            _text(refusal.reason),
        )
    return table


def status_header(status: status_pb2.WorkflowStatus) -> Text:
    state = workflow_state_name(status.state)
    header = Text()
    header.append("workflow ", style="bold")
    header.append(status.id, style="bold")
    if status.name:
        header.append(f"  ({status.name})")
    header.append("  ")
    header.append_text(state_text(state))
    if status.coordinator:
        header.append(f"  coordinator {status.coordinator}")
    if status.rounds:
        header.append(f"  rounds {status.rounds}")
    compensation = compensation_name(status.compensation)
    if compensation != "NONE":
        header.append("  compensation ")
        header.append_text(state_text(compensation))
    if status.reason:
        header.append("\nreason: ")
        header.append(status.reason)
    return header


def status_renderable(status: status_pb2.WorkflowStatus) -> RenderableType:
    parts: list[RenderableType] = [status_header(status)]
    if status.steps:
        parts.append(steps_table(status))
    if status.refusals:
        parts.append(refusals_table(status))
    return Group(*parts)


def steps_done(status: status_pb2.WorkflowStatus) -> int:
    return sum(1 for s in status.steps if s.state == status_pb2.STEP_STATE_SUCCEEDED)


def workflows_table(workflows: list[status_pb2.WorkflowStatus]) -> Table:
    table = Table(title="workflows")
    for column in ("id", "name", "state", "coordinator", "steps done/total"):
        table.add_column(column, overflow="fold")
    for status in workflows:
        table.add_row(
            _text(status.id),
            _text(status.name),
            state_text(workflow_state_name(status.state)),
            _text(status.coordinator),
            _text(f"{steps_done(status)}/{len(status.steps)}"),
        )
    return table


def members_table(members: list[client_pb2.MemberInfo], now_ms: int | None = None) -> Table:
    table = Table(title="members")
    for column in ("domain", "address", "state", "incarnation", "last heard"):
        table.add_column(column, no_wrap=True)
    table.add_column("labels", overflow="fold")
    table.add_column("capabilities avail/cap", overflow="fold")
    for member in members:
        age = last_heard_seconds(member.last_heard_ms, now_ms)
        if member.self:
            heard = "self"
        elif age is None:
            heard = "-"
        else:
            heard = f"{age:.1f}s ago"
        labels = "\n".join(f"{k}={v}" for k, v in sorted(member.labels.items()))
        caps = "\n".join(f"{c.name} {c.available}/{c.capacity}" for c in member.capabilities)
        domain = Text(member.domain, style="bold" if member.self else "")
        table.add_row(
            domain,
            _text(member.address),
            state_text(member_state_name(member.state)),
            _text(member.incarnation),
            _text(heard),
            _text(labels),
            _text(caps),
        )
    return table


# ---- change lines (non-TTY watch, demo) -------------------------------------------------


def change_lines(previous: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """Human lines describing what changed between two status dicts (status_to_dict)."""
    lines: list[str] = []
    prev = previous or {}
    if current["state"] != prev.get("state"):
        line = f"workflow {current['id']} {current['state']}"
        if current["state"] in TERMINAL_NAMES and current.get("reason"):
            line += f": {current['reason']}"
        lines.append(line)
    if current.get("rounds", 0) > prev.get("rounds", 0):
        lines.append(f"negotiation round {current['rounds']}")
    seen = {json.dumps(r, sort_keys=True) for r in prev.get("refusals", [])}
    for refusal in current.get("refusals", []):
        if json.dumps(refusal, sort_keys=True) not in seen:
            lines.append(refusal_line(refusal))
    prev_steps = {s["id"]: s for s in prev.get("steps", [])}
    for step in current.get("steps", []):
        before = prev_steps.get(step["id"], {})
        old_domain, new_domain = before.get("domain", ""), step["domain"]
        if new_domain and new_domain != old_domain:
            if old_domain:
                lines.append(f"step {step['id']} re-placed: {old_domain} -> {new_domain}")
            else:
                lines.append(f"step {step['id']} placed on {new_domain}")
        changed = step["state"] != before.get("state") or step["attempts"] != before.get("attempts")
        just_placed = bool(new_domain) and not before.get("domain")
        if changed and not (just_placed and step["state"] == "PENDING"):
            lines.append(step_line(step))
    return lines


def step_line(step: dict[str, Any]) -> str:
    line = f"step {step['id']} {step['state']}"
    if step["domain"]:
        line += f" on {step['domain']}"
    if step["attempts"]:
        line += f" (attempt {step['attempts']})"
    if step["state"] == "SUCCEEDED" and step["outputs"]:
        line += f" outputs {compact_json(step['outputs'])}"
    if step["error"]:
        line += f": {step['error']}"
    return line


def refusal_line(refusal: dict[str, Any]) -> str:
    steps = ", ".join(refusal["steps"]) or "its steps"
    return f"round {refusal['round']}: {refusal['domain']} refused {steps}: {refusal['reason']}"
