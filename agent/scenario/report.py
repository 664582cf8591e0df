"""A scenario run as people read it (timeline, ✓/✗ per expectation) and as JSON."""

from __future__ import annotations

from typing import Any

from fedorch.scenario.run import Event
from fedorch.scenario.runner import RunResult
from rich.console import Console
from rich.rule import Rule
from rich.text import Text

METRICS = {
    "serving_s": "every agent serving, seconds after start",
    "convergence_s": "every agent seeing every other ALIVE with its capabilities, "
                     "seconds after the last one served",
}
STYLES = {"fault": "yellow", "error": "bold red", "start": "cyan", "member": "magenta",
          "check": "blue"}


def event_text(event: Event) -> Text:
    style = STYLES.get(event.kind, "")
    if "SUCCEEDED" in event.text and event.kind == "workflow":
        style = "green"
    return Text.assemble((f"{event.t:7.2f}s  ", "dim"), (event.text, style))


def print_event(con: Console, event: Event) -> None:
    con.print(event_text(event), soft_wrap=True)


def print_summary(con: Console, result: RunResult) -> None:
    """Everything after the timeline (which was printed live)."""
    if result.metrics:
        con.print(Rule("measured"))
        for key, value in result.metrics.items():
            con.print(Text(f"{METRICS.get(key, key)}: {value:.2f}"), soft_wrap=True)
    con.print(Rule("expectations"))
    for outcome in result.outcomes:
        mark, style = ("✓", "green") if outcome.ok else ("✗", "bold red")
        con.print(Text.assemble((f"{mark} ", style), outcome.name, (f"  (seen: {outcome.seen})",
                                                                    "dim" if outcome.ok else "")),
                  soft_wrap=True)
    if result.error:
        con.print(Text(f"✗ the run did not complete: {result.error}", style="bold red"),
                  soft_wrap=True)
    for name, tail in result.logs.items():
        if tail:
            con.print(Rule(f"{name} log (last lines)"))
            con.print(Text(tail))
    held = sum(o.ok for o in result.outcomes)
    verdict = "PASSED" if result.passed else "FAILED"
    con.print(Text(f"scenario {result.scenario} {verdict}: {held} of {len(result.outcomes)} "
                   f"expectation(s) held", style="bold green" if result.passed else "bold red"),
              soft_wrap=True)


def to_json(result: RunResult) -> dict[str, Any]:
    return {
        "scenario": result.scenario,
        "runner": result.runner,
        "passed": result.passed,
        "error": result.error,
        "metrics": result.metrics,
        "timeline": [{"t": e.t, "kind": e.kind, "event": e.text} for e in result.events],
        "expectations": [{"name": o.name, "ok": o.ok, "seen": o.seen} for o in result.outcomes],
        "workflows": result.workflows,
        "workdir": str(result.workdir),
        "pids": result.pids,
    }
