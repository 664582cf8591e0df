"""The checks of a re-placement schedule (agent/sim/negotiation/replacement.py and
fencing.py): at most once where it must be, one placement at a time, everything
terminal, nothing held (`check_replacement`, raising ReplacementFailure)."""

from __future__ import annotations

from collections import Counter


class ReplacementFailure(AssertionError):
    """An invariant of a re-placement schedule failed; the message names the seed."""


# A fence falls exactly at its deadline (the attempt's start plus the lease, for one that
# started while cut off), so an overlap of exactly one lease, allowed, can come out a
# float rounding above it.
_ROUNDING_S = 1e-9


def check_replacement(world) -> None:
    """At the end of a re-placement schedule (ReplacementWorld): at most once where it
    must be, one placement at a time, everything terminal, nothing held."""
    def fail(what: str) -> None:
        raise ReplacementFailure(f"seed {world.seed}: {what}")

    attempts = Counter((r.workflow, r.step, r.domain, r.attempt) for r in world.runs)
    for key, n in attempts.items():
        if n > 1:
            fail(f"attempt run {n} times: {key}")
    by_step: dict[tuple[str, str], list] = {}
    for r in world.runs:
        by_step.setdefault((r.workflow, r.step), []).append(r)
    for (wf, step), runs in by_step.items():
        domains = sorted({r.domain for r in runs})
        if not runs[0].idempotent and len(domains) > 1:
            fail(f"{wf} {step} is not idempotent and ran on {domains}")
        for a in runs:  # never two placements at once beyond one lease
            for b in runs:
                if a.domain >= b.domain:
                    continue
                end_a = a.end if a.end is not None else float("inf")
                end_b = b.end if b.end is not None else float("inf")
                overlap = min(end_a, end_b) - max(a.start, b.start)
                if overlap > world.lease_s + _ROUNDING_S:
                    fail(f"{wf} {step} ran on {a.domain} and {b.domain} at once for"
                         f" {overlap:.2f}s")
    for wf, flow in world.flows.items():
        if not flow.ended:
            fail(f"{wf} not terminal at the coordinator")
        due = replacement_deadline(world, flow)
        if flow.ended_at is not None and flow.ended_at > due:
            fail(f"{wf} ended at the coordinator at {flow.ended_at:.2f}, deadline {due:.2f}")
    for name, worker in world.workers.items():
        if not worker.alive:
            continue
        for wf, progress in worker.progress.items():
            open_steps = [s.id for s in progress.steps.values()
                          if s.state.value not in _TERMINAL_STEPS]
            if open_steps:
                fail(f"{name}: {wf} steps {open_steps} not terminal")
        held = [h.key for h in worker.participant.holds()]
        if held:
            fail(f"{name}: reservations leaked: {held}")


# Re-placement rounds: max_rounds (2) PREPAREs each waiting up to prepare_timeout_s (1 s);
# messages: each delayed at most 0.08 s, a handful per step (vote, decision, result).
_ROUNDS_S = 2 * 1.0
_MESSAGES_S = 6 * 0.08


def replacement_deadline(world, flow) -> float:
    """When a workflow must be terminal at the coordinator: after the later of its
    submission and the last fault (a death, a cut, a heal), the DEAD verdict, then for
    each step in turn one negotiation and every attempt at its longest, and the
    messages between them (the steps are a chain; each may be re-placed once more)."""
    steps = flow.spec.steps
    per_step = _ROUNDS_S + _MESSAGES_S + max(1 + s.retries for s in steps) \
        * world.step_time_s[1]
    return max(world.last_fault, flow.submitted_at) + world.dead_after_s \
        + _ROUNDS_S + _MESSAGES_S + 2 * len(steps) * per_step


_TERMINAL_STEPS = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELLED", "COMPENSATED",
                             "COMPENSATION_FAILED"})
