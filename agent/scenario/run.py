"""Run a loaded scenario on a federation: start, converge, submit, apply faults, check.

The federation (a runner: process or netns) starts and signals agents; this module owns
the schedule. Times in the timeline are seconds since the agents were started; the
schedule's times (`at_s`) count from when the federation had converged. Workflows are submitted
and followed with the CLI's client (fedorch.cli.client.AgentClient).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from fedorch.cli.client import AgentClient
from fedorch.cli.demo import terminal_last
from fedorch.cli.render import TERMINAL_NAMES, change_lines, status_to_dict
from fedorch.core.identity.clients import ClientIdentity
from fedorch.gen.fedorch.v1 import client_pb2, scenario_pb2
from fedorch.runtime.supervisor import member_state
from fedorch.scenario.model import LoadedScenario, Workflow

POLL_S = 0.1
WATCH_ALL_UP_TO = 10  # member views are watched from every agent up to this many domains


class Federation(Protocol):
    name: str
    names: list[str]
    identity: ClientIdentity | None  # signs the runner's client calls where agents need it

    def prepare(self) -> None: ...
    def start(self, names: list[str]) -> Any: ...
    async def wait_serving(self, names: list[str], deadline_s: float) -> None: ...
    def address(self, name: str) -> str: ...
    def data_dir(self, name: str) -> Path: ...
    def awake(self) -> list[str]: ...
    def running(self) -> list[str]: ...
    async def apply(self, action: str, names: list[str], deadline_s: float,
                    others: list[str] | None = None, seconds: float = 0.0) -> str: ...


@dataclass
class Event:
    t: float
    kind: str  # start | fault | workflow | member | error
    text: str


@dataclass
class Copy:
    """One submitted copy of a Submission and what was seen of it."""

    workflow: Workflow
    index: int
    id: str = ""
    submitted_at: float | None = None
    ended_at: float | None = None
    admitted_at: float | None = None  # first seen RUNNING or past it: committed
    last: dict[str, Any] | None = None
    error: str = ""

    @property
    def label(self) -> str:
        return self.workflow.id if self.workflow.copies == 1 else f"{self.workflow.id}#{self.index}"

    @property
    def state(self) -> str:
        return self.last["state"] if self.last else "NOT SUBMITTED"

    @property
    def ended(self) -> bool:
        return self.last is not None and self.last["state"] in TERMINAL_NAMES


@dataclass
class Outcome:
    name: str
    ok: bool
    seen: str


@dataclass
class RunState:
    loaded: LoadedScenario
    fed: Federation
    rpc_timeout: float
    emit: Callable[[Event], None]
    t0: float = 0.0  # when the agents were started; timeline times count from here
    schedule_at: float = 0.0  # seconds after t0 when the federation had converged
    events: list[Event] = field(default_factory=list)
    copies: dict[str, list[Copy]] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)

    clients: dict[str, AgentClient] = field(default_factory=dict)
    retired: list[AgentClient] = field(default_factory=list)  # forgotten, not yet closed

    async def client(self, name: str) -> AgentClient:
        """One client (one channel) per agent for the whole schedule; a channel to a
        restarted agent reconnects by itself."""
        if name not in self.clients:
            self.clients[name] = await AgentClient(
                self.fed.address(name), self.rpc_timeout,
                self.fed.identity).__aenter__()
        return self.clients[name]

    async def forget(self, name: str) -> None:
        """Drop the agent's channel after it failed to connect: a fresh one connects at
        once when the agent is back, where the old one may still be backing off."""
        client = self.clients.pop(name, None)
        if client is not None:
            # Closed with the rest, not now: another copy's call may be in flight on it,
            # and closing a channel cancels the calls on it.
            self.retired.append(client)

    async def close_clients(self) -> None:
        for client in [*self.clients.values(), *self.retired]:
            await client.close()
        self.clients.clear()
        self.retired.clear()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, kind: str, text: str) -> None:
        event = Event(round(self.now(), 2), kind, text)
        self.events.append(event)
        self.emit(event)


class StartupError(Exception):
    """The federation did not come up (an agent exited, or views did not converge)."""


# ---- start-up -----------------------------------------------------------------------


async def views(state: RunState, names: list[str]) -> dict[str, list[client_pb2.MemberInfo]]:
    """Each agent's member list ([] from one that does not answer), asked at once over
    the run's one channel per agent: a fresh channel per call made every poll of a
    50-domain convergence cost 50 connection set-ups on a machine busy starting agents."""

    async def one(name: str) -> list[client_pb2.MemberInfo]:
        try:
            return await (await state.client(name)).list_members()
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                await state.forget(name)
            return []

    lists = await asyncio.gather(*(one(n) for n in names))
    return dict(zip(names, lists, strict=True))


def view_holds(members: list[client_pb2.MemberInfo], alive: list[str],
               with_capabilities: dict[str, bool]) -> bool:
    by_name = {m.domain: m for m in members}
    for name in alive:
        member = by_name.get(name)
        if member is None or member_state(member) != "ALIVE":
            return False
        if with_capabilities.get(name) and not member.capabilities:
            return False
    return True


async def converge(state: RunState, deadline_s: float) -> float:
    """Until every running agent sees every other ALIVE with its capabilities; seconds."""
    fed, loaded = state.fed, state.loaded
    names = fed.running()
    caps = {n: bool(loaded.domains[n].spec.capabilities) for n in names}
    start = time.monotonic()
    worst = ""
    while time.monotonic() - start < deadline_s:
        seen = await views(state, names)
        if all(view_holds(seen[n], names, caps) for n in names):
            return time.monotonic() - start
        counts = {n: sum(member_state(m) == "ALIVE" for m in seen[n]) for n in names}
        low = min(counts, key=lambda n: counts[n])
        worst = f"{low} sees {counts[low]} of {len(names)} ALIVE"
        # Asking every agent is N calls: a large federation is asked less often, so
        # that the asking does not slow down what it measures.
        await asyncio.sleep(0.25 if len(names) <= WATCH_ALL_UP_TO else 1.0)
    raise StartupError(f"views did not converge within {deadline_s:g}s ({worst})")


def host_load() -> float:
    """The host's 1-minute load average: what the timings were measured under."""
    return round(os.getloadavg()[0], 1)


async def start_federation(state: RunState) -> None:
    fed, loaded = state.fed, state.loaded
    names = fed.names
    state.t0 = time.monotonic()
    fed.start(names)
    state.say("start", f"started {len(names)} agent(s) with the {fed.name} runner")
    await fed.wait_serving(names, loaded.converge_timeout_s)
    serving = state.now()
    state.metrics["serving_s"] = round(serving, 3)
    state.metrics["load_1m_when_serving"] = host_load()
    state.say("start", f"all {len(names)} agents serving (host load average "
              f"{state.metrics['load_1m_when_serving']:g})")
    took = await converge(state, loaded.converge_timeout_s)
    state.metrics["convergence_s"] = round(took, 3)
    state.metrics["load_1m_when_converged"] = host_load()
    state.say("start", f"converged: every agent sees all {len(names)} ALIVE with their "
              f"capabilities, {took:.2f}s after the last one served")
    state.schedule_at = state.now()  # the schedule's times count from here


# ---- workflows ----------------------------------------------------------------------


async def _status(state: RunState, copy: Copy) -> dict[str, Any] | None:
    """The copy's status from its coordinator, or from any other agent that answers."""
    to = copy.workflow.submission.to
    candidates = [to] + [n for n in state.fed.awake() if n != to]
    for name in candidates:
        try:
            client = await state.client(name)
            return status_to_dict(await client.get_workflow(copy.id))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                await state.forget(name)
            continue
    return None


# States only a committed workflow reaches (CANCELLED and ABORTED may come before).
ADMITTED_STATES = frozenset({"RUNNING", "SUCCEEDED", "FAILED"})


# A submit that timed out or found the agent unavailable may still have been taken (or
# the agent was busy, starting or rejoining): sent again under the same request id, which
# the agent answers with the workflow it started the first time, never a second one.
RETRIED_SUBMIT_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED,
                                  grpc.StatusCode.UNAVAILABLE})
SUBMIT_BACKOFF_S = (0.5, 8.0)  # first wait, doubled up to the second


async def submit_copy(state: RunState, copy: Copy, limit_s: float) -> str | None:
    """Submit one copy, retrying as a client of a busy agent should, within `limit_s`;
    the workflow id, or None with `copy.error` set."""
    submission = copy.workflow.submission
    request_id = uuid.uuid4().hex
    started, wait = state.now(), SUBMIT_BACKOFF_S[0]
    while True:
        try:
            client = await state.client(submission.to)
            return await client.submit(copy.workflow.spec, request_id)
        except grpc.RpcError as exc:
            await state.forget(submission.to)
            failure = f"submit to {submission.to} failed: {exc.code().name}: {exc.details()}"
            if exc.code() not in RETRIED_SUBMIT_CODES \
                    or state.now() + wait - started >= limit_s:
                copy.error = failure
                state.say("error", f"{copy.label}: {copy.error}")
                return None
            state.say("workflow", f"{copy.label}: {failure}; sent again in {wait:g}s"
                                  " (same request id)")
            await asyncio.sleep(wait)
            wait = min(wait * 2, SUBMIT_BACKOFF_S[1])


async def run_copy(state: RunState, copy: Copy, delay_s: float) -> None:
    submission = copy.workflow.submission
    await asyncio.sleep(max(0.0, state.schedule_at + delay_s - state.now()))
    limit = submission.timeout_s or state.loaded.timeout_s
    copy.id = await submit_copy(state, copy, limit)
    if copy.id is None:
        return
    copy.submitted_at = state.now()
    state.say("workflow", f"{copy.label} submitted to {submission.to} as {copy.id}")
    quiet = copy.workflow.copies > 1  # many copies: their state changes only
    while state.now() - copy.submitted_at < limit:
        current = await _status(state, copy)
        if current is not None and current != copy.last:
            lines = terminal_last(change_lines(copy.last, current), current)
            for line in lines:
                if not quiet or line.startswith("workflow "):
                    state.say("workflow", f"{copy.label}: {line}")
            copy.last = current
            # A quick workflow can pass RUNNING between two polls: seen SUCCEEDED or
            # FAILED first, it was admitted by then (the time is an upper bound).
            if copy.admitted_at is None and current["state"] in ADMITTED_STATES:
                copy.admitted_at = state.now()
            if copy.ended and copy.ended_at is None:
                copy.ended_at = state.now()
            # An ended workflow's compensations run on after its end: follow them too.
            if copy.ended and current.get("compensation") != "RUNNING":
                return
        await asyncio.sleep(POLL_S)
    if copy.ended:
        copy.error = f"compensations not ended within {limit:g}s"
    else:
        copy.error = f"not ended within {limit:g}s (last seen {copy.state})"
    state.say("error", f"{copy.label}: {copy.error}")


def make_copies(state: RunState) -> list[tuple[Copy, float]]:
    planned = []
    for workflow in state.loaded.workflows.values():
        submission = workflow.submission
        copies = state.copies.setdefault(workflow.id, [])
        for index in range(workflow.copies):
            copy = Copy(workflow, index + 1)
            copies.append(copy)
            gap = index / submission.rate_per_s if submission.rate_per_s else 0.0
            planned.append((copy, submission.at_s + gap))
    return planned


# ---- faults -------------------------------------------------------------------------


async def _trigger(state: RunState, after: scenario_pb2.StepTrigger) -> bool:
    """Wait until the first copy of the workflow has the step in the state."""
    wanted = after.state or "RUNNING"
    copy = state.copies[after.workflow][0]
    while True:
        steps = {s["id"]: s for s in (copy.last or {}).get("steps", [])}
        if steps.get(after.step, {}).get("state") == wanted:
            return True
        if copy.ended or copy.error:
            return False
        await asyncio.sleep(POLL_S / 2)


async def run_fault(state: RunState, index: int, fault: scenario_pb2.Fault) -> None:
    label = f"faults[{index}] {fault.action} {', '.join(fault.domains)}".rstrip()
    if fault.HasField("after"):
        after = fault.after
        if not await _trigger(state, after):
            state.outcomes.append(Outcome(
                f"{label} applied", False,
                f"{after.workflow} ended before step {after.step} was {after.state or 'RUNNING'}"))
            state.say("error", f"{label}: trigger never happened; not applied")
            return
        await asyncio.sleep(fault.at_s)
    else:
        await asyncio.sleep(max(0.0, state.schedule_at + fault.at_s - state.now()))
    if fault.action == "restart":
        state.say("fault", f"restarting {', '.join(fault.domains)}")
    try:
        note = await state.fed.apply(fault.action, list(fault.domains),
                                     state.loaded.converge_timeout_s, list(fault.from_domains),
                                     seconds=fault.seconds)
    except Exception as exc:  # noqa: BLE001 - any failure to apply is reported, not raised
        state.outcomes.append(Outcome(f"{label} applied", False, str(exc)))
        state.say("error", f"{label}: {exc}")
        return
    state.say("fault", note)


# ---- member views ---------------------------------------------------------------------


async def watch_members(state: RunState, interval_s: float = 0.5) -> None:
    """Report each change of a member's state in the agents' views, until cancelled. A
    small federation is watched from every agent; a large one from its first domain."""
    fed = state.fed
    seen: dict[tuple[str, str], str] = {}
    while True:
        awake = fed.awake()
        observers = awake if len(fed.names) <= WATCH_ALL_UP_TO else awake[:1]
        found = await views(state, observers)
        changes: dict[tuple[str, str], list[str]] = {}
        for observer, members in found.items():
            for member in members:
                key, now = (observer, member.domain), member_state(member)
                if member.domain != observer and seen.get(key, "ALIVE") != now:
                    changes.setdefault((member.domain, now), []).append(observer)
                seen[key] = now
        for (domain, now), by in sorted(changes.items()):
            state.say("member", f"{domain} {now} in the view of {', '.join(sorted(by))}")
        await asyncio.sleep(interval_s)


async def run_schedule(state: RunState, checks: Sequence[Coroutine[Any, Any, None]] = ()
                       ) -> None:
    """Every submission, fault and timed check, bounded by the scenario's timeout."""
    planned = make_copies(state)
    jobs = [run_copy(state, copy, at) for copy, at in planned] + list(checks)
    jobs += [run_fault(state, i, f) for i, f in enumerate(state.loaded.scenario.faults)]
    tasks = [asyncio.ensure_future(job) for job in jobs]
    watcher = asyncio.ensure_future(watch_members(state))
    try:
        async with asyncio.timeout(state.loaded.timeout_s):
            await asyncio.gather(*tasks)
    except TimeoutError:
        state.say("error", f"the schedule did not finish within {state.loaded.timeout_s:g}s")
    finally:
        for task in (*tasks, watcher):
            task.cancel()
        await asyncio.gather(*tasks, watcher, return_exceptions=True)
        await state.close_clients()
