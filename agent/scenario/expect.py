"""The scenario's expectations, checked once the schedule is over: each gives an Outcome
(✓/✗ and what was seen), so a report can show every one, not only the first to fail."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sqlite3
import time
from collections import Counter
from pathlib import Path

import grpc
from fedorch.gen.fedorch.v1 import scenario_pb2
from fedorch.runtime.supervisor import member_state
from fedorch.scenario.run import Copy, Outcome, RunState, views

DEFAULT_MEMBERS_WITHIN_S = 10.0


def _count_ok(e, matched: int, copies: int) -> bool:
    if not (e.HasField("at_least") or e.HasField("at_most")):
        return matched == copies
    return (not e.HasField("at_least") or matched >= e.at_least) and (
        not e.HasField("at_most") or matched <= e.at_most)


def _copy_problem(e: scenario_pb2.WorkflowExpectation, copy: Copy) -> str:
    """Why this copy does not match, or '' when it does."""
    if e.refused_contains:
        if copy.id:
            return f"submitted as {copy.id} ({copy.state})"
        if e.refused_contains not in (copy.error or ""):
            return copy.error or "not submitted"
        return ""
    if copy.last is None:
        return copy.error or "not submitted"
    if e.state and copy.state != e.state:
        reason = f" ({copy.last['reason']})" if copy.last.get("reason") else ""
        return f"{copy.state}{reason}"
    if e.reason_contains and e.reason_contains not in copy.last.get("reason", ""):
        return f"reason {copy.last.get('reason', '')!r}"
    steps = {s["id"]: s for s in copy.last.get("steps", [])}
    for step, domain in sorted(e.steps_on.items()):
        got = steps.get(step, {}).get("domain", "") or "nowhere"
        if got != domain:
            return f"step {step} ran on {got}"
    if e.coordinator and copy.last.get("coordinator") != e.coordinator:
        return f"coordinator {copy.last.get('coordinator') or 'unknown'}"
    if e.HasField("epoch") and copy.last.get("epoch") != e.epoch:
        return f"epoch {copy.last.get('epoch')}"
    if e.compensation and copy.last.get("compensation") != e.compensation:
        return f"compensation {copy.last.get('compensation')}"
    if e.within_s:
        if copy.ended_at is None or copy.submitted_at is None:
            return f"not ended ({copy.state})"
        took = copy.ended_at - copy.submitted_at
        if took > e.within_s:
            return f"took {took:.1f}s"
    return ""


def _workflow_name(e: scenario_pb2.WorkflowExpectation) -> str:
    if e.refused_contains:
        return f"{e.id} refused at submission with {e.refused_contains!r}"
    parts = [e.id, e.state or "ends"]
    if e.reason_contains:
        parts.append(f"with reason containing {e.reason_contains!r}")
    if e.steps_on:
        parts.append("with " + ", ".join(f"{s} on {d}" for s, d in sorted(e.steps_on.items())))
    if e.within_s:
        parts.append(f"within {e.within_s:g}s")
    if e.coordinator or e.HasField("epoch"):
        parts.append(f"coordinated by {e.coordinator or 'its coordinator'}"
                     + (f" at epoch {e.epoch}" if e.HasField("epoch") else ""))
    if e.compensation:
        parts.append(f"with compensation {e.compensation}")
    if e.ask_every_agent:
        parts.append("(as every running agent tells)")
    if e.HasField("at_least") or e.HasField("at_most"):
        bounds = [f"at least {e.at_least}" if e.HasField("at_least") else "",
                  f"at most {e.at_most}" if e.HasField("at_most") else ""]
        parts.insert(0, " and ".join(b for b in bounds if b) + " of")
    return " ".join(parts)


def check_workflow(state: RunState, e: scenario_pb2.WorkflowExpectation) -> Outcome:
    copies = state.copies.get(e.id, [])
    problems = {c.label: _copy_problem(e, c) for c in copies}
    matched = sum(not p for p in problems.values())
    ok = _count_ok(e, matched, len(copies))
    if len(copies) == 1:
        copy = copies[0]
        seen = problems[copy.label] or copy.state
        if copy.last and copy.last.get("reason") and not problems[copy.label]:
            seen += f": {copy.last['reason']}"
    else:
        states = Counter(c.state for c in copies)
        seen = f"{matched} of {len(copies)} matched; states " + ", ".join(
            f"{s} x{n}" for s, n in sorted(states.items()))
        first = next((f"{label}: {p}" for label, p in problems.items() if p), "")
        if first and not ok:
            seen += f"; e.g. {first}"
    return Outcome(_workflow_name(e), ok, seen)


def read_runs(runs_dir: Path) -> list[dict]:
    runs = []
    for path in sorted(runs_dir.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                runs.append(json.loads(line))
    return runs


def check_step_runs(state: RunState, e: scenario_pb2.StepRunsExpectation,
                    runs: list[dict]) -> Outcome:
    copies = state.copies.get(e.workflow, [])
    counts = []
    for copy in copies:
        counts.append(sum(1 for r in runs if r["workflow"] == copy.id and r["step"] == e.step
                          and bool(r.get("compensation")) == e.compensation
                          and (not e.domain or r["domain"] == e.domain)))
    ok = bool(copies) and all(
        (not e.HasField("equals") or n == e.equals)
        and (not e.HasField("at_least") or n >= e.at_least)
        and (not e.HasField("at_most") or n <= e.at_most) for n in counts)
    bounds = [f"exactly {e.equals}" if e.HasField("equals") else "",
              f"at least {e.at_least}" if e.HasField("at_least") else "",
              f"at most {e.at_most}" if e.HasField("at_most") else ""]
    where = f" on {e.domain}" if e.domain else ""
    what = "compensation of step" if e.compensation else "step"
    name = (f"{what} {e.workflow}/{e.step} ran {' and '.join(b for b in bounds if b)} "
            f"time(s){where} per copy (side-effect records)")
    seen = "runs " + (", ".join(str(n) for n in counts) if len(counts) > 1 else
                      str(counts[0]) if counts else "none")
    return Outcome(name, ok, seen)


def check_run_order(state: RunState, e: scenario_pb2.RunOrderExpectation,
                    runs: list[dict]) -> Outcome:
    """Each copy's records of the listed steps, by when they were written (records from
    several domains' files are merged by their time), name the steps in that order."""
    wanted = list(e.steps)
    what = "compensations" if e.compensation else "runs"
    name = f"{e.workflow}: {what} in the order {' → '.join(wanted)} (side-effect records)"
    copies = state.copies.get(e.workflow, [])
    seen = []
    for copy in copies:
        mine = sorted((r for r in runs if r["workflow"] == copy.id and r["step"] in wanted
                       and bool(r.get("compensation")) == e.compensation),
                      key=lambda r: r.get("at", 0.0))
        seen.append([r["step"] for r in mine])
    ok = bool(copies) and all(order == wanted for order in seen)
    shown = "; ".join(" → ".join(order) or "none" for order in seen) or "not submitted"
    return Outcome(name, ok, shown)


async def check_everywhere(state: RunState, e: scenario_pb2.WorkflowExpectation) -> Outcome:
    """Every running agent asked for each copy's status: those that know it must match
    (a copy's submission was only seen by its coordinator's answers so far)."""
    outcome = check_workflow(state, e)
    if not outcome.ok:
        return outcome
    try:
        return await _agents_agree(state, e, outcome)
    finally:
        await state.close_clients()


async def _agents_agree(state: RunState, e: scenario_pb2.WorkflowExpectation,
                        outcome: Outcome) -> Outcome:
    from fedorch.cli.render import status_to_dict

    answered = 0
    for copy in state.copies.get(e.id, []):
        for agent in state.fed.awake():
            try:
                client = await state.client(agent)
                status = status_to_dict(await client.get_workflow(copy.id))
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    continue  # not part of the workflow and cannot tell: nothing to match
                return Outcome(outcome.name, False, f"{agent} did not answer for "
                               f"{copy.label}: {exc.code().name}")
            answered += 1
            seen_there = dataclasses.replace(copy, last=status)
            problem = _copy_problem(e, seen_there)
            if problem:
                return Outcome(outcome.name, False, f"{agent} says {problem} for {copy.label}")
    return Outcome(outcome.name, True, f"{outcome.seen}; {answered} agent answer(s) agree")


def audit_domains(e: scenario_pb2.AuditExpectation, names: list[str]) -> list[str]:
    return list(names) if "*" in e.domains else list(e.domains)


def _counted(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def verify_audit_log(data_dir: Path) -> tuple[int | None, str]:
    """What `fedorch audit verify --data-dir DIR` finds in one data dir, with the same
    code (`verify_data_dir`, checkpoints checked with the keys the log's own start
    records name): (its record count, or None when it is not
    intact; what was seen). Records after the last checkpoint are chained but not yet
    signed, as there: counted, not refused."""
    from fedorch.core.audit.chain import Problem
    from fedorch.runtime.store.audit_table import NoLog, verify_data_dir

    try:
        outcome = verify_data_dir(data_dir)
    except NoLog as exc:
        return None, str(exc)
    except sqlite3.DatabaseError as exc:  # a file too damaged to be read back at all
        return None, f"unreadable: {exc}"
    if isinstance(outcome, Problem):
        return None, f"not intact: {outcome}"
    return outcome.records, (f"{_counted(outcome.records, 'record')}, "
                             f"{_counted(outcome.checkpoints, 'signed checkpoint')}, "
                             f"{outcome.unsigned_tail} after the last")


def check_audit(state: RunState, e: scenario_pb2.AuditExpectation) -> Outcome:
    """Each named domain's audit log verifies in its data dir (running, paused, killed
    or never restarted: the data dir is still there), with at least `at_least_records`."""
    names = audit_domains(e, list(state.loaded.domains))
    shown = "every domain" if "*" in e.domains else ", ".join(names)
    name = f"the audit log of {shown} verifies (hash chain and signed checkpoints)"
    if e.at_least_records:
        name += f", at least {e.at_least_records} records each"
    seen = []
    for domain in names:
        records, what = verify_audit_log(state.fed.data_dir(domain))
        if records is not None and records < e.at_least_records:
            records, what = None, f"only {what}"
        if records is None:
            # The first domain whose log fails, alone: the record it names is the news.
            return Outcome(name, False, f"{domain}: {what}")
        seen.append(f"{domain}: {what}")
    return Outcome(name, True, "; ".join(seen))


def check_members_name(e: scenario_pb2.MembersExpectation) -> str:
    want = ", ".join(e.alive)
    name = f"at +{e.at_s:g}s, " if e.at_s else ""
    name += f"{', '.join(e.seen_by) or 'every running agent'} sees"
    if e.alive:
        name += f" {'every running domain' if want == '*' else want} ALIVE"
        name += " with capabilities" if e.with_capabilities else ""
        name += ", every slot free" if e.all_free else ""
    if e.not_alive:
        name += f"{' and' if e.alive else ''} {', '.join(e.not_alive)} not ALIVE"
    return name + f" within {e.within_s or DEFAULT_MEMBERS_WITHIN_S:g}s"


async def check_members(state: RunState, e: scenario_pb2.MembersExpectation) -> Outcome:
    fed = state.fed
    within = e.within_s or DEFAULT_MEMBERS_WITHIN_S
    deadline = time.monotonic() + within
    observers = list(e.seen_by) or fed.awake()
    alive_names = fed.awake() if "*" in e.alive else list(e.alive)
    name = check_members_name(e)
    problem = first = ""
    while True:
        seen = await views(state, observers)
        problem = _members_problem(seen, alive_names, list(e.not_alive), e.with_capabilities,
                                   e.all_free)
        if not problem:
            held = f"held {within - (deadline - time.monotonic()):.1f}s in"
            # What kept it from holding at once, for a report that explains a slow pass.
            return Outcome(name, True, f"{held} (at first: {first})" if first else held)
        first = first or problem
        if time.monotonic() >= deadline:
            return Outcome(name, False, problem)
        await asyncio.sleep(0.25)


def _members_problem(seen: dict[str, list], alive: list[str], not_alive: list[str],
                     with_capabilities: bool, all_free: bool = False) -> str:
    for observer, members in seen.items():
        if not members:
            return f"{observer} did not answer"
        states = {m.domain: member_state(m) for m in members}
        caps = {m.domain: len(m.capabilities) for m in members}
        for name in alive:
            if states.get(name) != "ALIVE":
                return f"{observer} sees {name} {states.get(name, 'absent')}"
            if with_capabilities and not caps.get(name):
                return f"{observer} sees {name} without capabilities"
            held = [f"{c.name} {c.available}/{c.capacity}" for m in members if m.domain == name
                    for c in m.capabilities if c.available < c.capacity] if all_free else []
            if held:
                return f"{observer} sees {name} holding slots: {', '.join(held)} free"
        for name in not_alive:
            if states.get(name) == "ALIVE":
                return f"{observer} sees {name} ALIVE"
    return ""


def timed_checks(state: RunState, done: dict[int, Outcome]) -> list:
    """Coroutines for the member checks that happen during the schedule (`at_s`); each
    puts its outcome in `done` under its expectation's index."""
    async def check(index: int, e: scenario_pb2.MembersExpectation) -> None:
        await asyncio.sleep(max(0.0, state.schedule_at + e.at_s - state.now()))
        outcome = await check_members(state, e)
        done[index] = outcome
        state.say("check", f"{'✓' if outcome.ok else '✗'} {outcome.name}")

    return [check(i, x.members) for i, x in enumerate(state.loaded.scenario.expect)
            if x.HasField("members") and x.members.at_s]


async def check_all(state: RunState, runs_dir: Path,
                    timed: dict[int, Outcome] | None = None) -> list[Outcome]:
    runs = read_runs(runs_dir)
    timed = timed or {}
    outcomes = []
    for index, expectation in enumerate(state.loaded.scenario.expect):
        if expectation.HasField("members") and expectation.members.at_s:
            outcome = timed.get(index) or Outcome(
                check_members_name(expectation.members), False,
                "not checked: the schedule ended before its time")
        elif expectation.HasField("workflow") and expectation.workflow.ask_every_agent:
            outcome = await check_everywhere(state, expectation.workflow)
        elif expectation.HasField("workflow"):
            outcome = check_workflow(state, expectation.workflow)
        elif expectation.HasField("run_order"):
            outcome = check_run_order(state, expectation.run_order, runs)
        elif expectation.HasField("step_runs"):
            outcome = check_step_runs(state, expectation.step_runs, runs)
        elif expectation.HasField("audit"):
            outcome = check_audit(state, expectation.audit)
        else:
            outcome = await check_members(state, expectation.members)
        if expectation.name:
            outcome.name = expectation.name
        outcomes.append(outcome)
    return outcomes
