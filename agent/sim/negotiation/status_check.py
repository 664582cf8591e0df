"""The simulation's check of what watchers are told: statuses never go back, and a
RUNNING told before its write is one whose COMMIT was chosen.

Theory of operation
-------------------
A driver tells a workflow's status changes to its watchers (runtime/driver.py's
`StatusSink`). Most come after the turn's write, but a Ready's `status_now`
(core/node/ready.py: a coordinator's RUNNING once Paxos Commit's acceptors chose its
COMMIT) may be told before it, since the COMMIT is durable at a majority of the
acceptors whatever the coordinator's own write does. The simulated agent's driver
(`ToldBeforeWrite`) tells `status_now` as the Ready is handed out, before any write
group's crash point, with the round its COMMIT stands on, besides the production
driver's own telling to the sink (`StatusTold`: `status_now` in `begin`, the rest after
the write), both to `StatusCheck`, which holds, outside the agents:

* chosen first: a status told before its write is a RUNNING whose round's COMMIT was
  chosen (a majority of its acceptors' records on disk accepted it in one ballot:
  the checker's `_chosen`, built from the acceptors' durable records);
* never back: the states one agent tells of one workflow, across its crashes and
  restarts, never go back (NEGOTIATING, then RUNNING, then an end): a crash between
  a RUNNING told and its write is settled by the restored coordinator's ballot or the
  participants' recovery, which find the chosen COMMIT and cannot choose ABORT; a
  restarted coordinator that has not learned it again tells nothing until it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.runtime.driver import NodeDriver

if TYPE_CHECKING:
    from fedorch.core.node.ready import Ready

# A state's place in a workflow's life: a told state never has a lower one after it.
_RANK = {WorkflowState.PENDING: 0, WorkflowState.NEGOTIATING: 1, WorkflowState.RUNNING: 2,
         **{s: 3 for s in TERMINAL}}


class StatusCheck:
    """What every agent told of every workflow (see the header)."""

    def __init__(self, checker: Any) -> None:
        self.checker = checker
        self.last: dict[tuple[str, str], object] = {}  # (agent, workflow) -> last told
        self.told_before_write = 0

    def told(self, agent: str, wf: str, state: object, key: object = None) -> None:
        """`agent` told `state` of `wf`; `key`: the round whose COMMIT a status told
        before its write stands on (None: told after the write)."""
        if key is not None:
            self.told_before_write += 1
            chosen = self.checker._chosen.get(key, ())
            if state is not WorkflowState.RUNNING or not any(v.commit for v in chosen):
                self.checker.fail(f"status: {agent} told {wf} {_name(state)} before its"
                                  f" write, {key}'s COMMIT not chosen")
        before = self.last.get((agent, wf))
        if before is not None and _RANK[state] < _RANK[before]:  # type: ignore[index]
            self.checker.fail(f"status: {agent} told {wf} {_name(state)} after"
                              f" {_name(before)}")
        self.last[(agent, wf)] = state


class StatusTold:
    """The simulated agent's status sink: each change told to the checker."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent

    def status_changed(self, workflow_id: str, state: object) -> None:
        self.agent.sim.checker.status.told(self.agent.name, workflow_id, state)


class ToldBeforeWrite(NodeDriver):
    """The production driver, telling a Ready's `status_now` to the checker as the Ready
    is handed out (before its writes and their crash points)."""

    def __init__(self, agent: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.agent = agent

    def begin(self) -> Ready:
        ready = super().begin()
        agent = self.agent
        for wf, state in ready.status_now:
            row = agent.node.state.rows.get(wf)
            key = (wf, row.round) if row is not None else (wf, -1)
            agent.sim.checker.status.told(agent.name, wf, state, key)
            agent.sim.stats["status RUNNING told before its write"] += 1
        return ready  # the sink heard them too, from `NodeDriver.begin`, without the key


def _name(state: object) -> str:
    return getattr(state, "name", str(state))
