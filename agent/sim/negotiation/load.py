"""A fault-free load through the simulator: many three-domain workflows, what a Node
then holds, and the CPU a workflow costs.

Three agents, each workflow three steps, one on each agent (the placer's first choice),
submitted at `rate` a second by the agents in turn; no loss, no crash, no clock step.
The run is the seeded simulator's own (simulation.Simulation: the production driver and Node
through simulated ports, the invariant checker included), so the CPU per workflow is
that of the whole simulation divided by its workflows, and what each Node holds is read
from its tables and cores at the end.

    python -m fedorch.sim.negotiation.load --workflows 1000 3000 10000 [--no-retention]
        [--tracemalloc]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import tracemalloc
import types
from dataclasses import dataclass, field, replace
from typing import Any

from fedorch.core.node.records import Timing
from fedorch.core.node.retention import FORGOTTEN_ROUND_TABLES, WORKFLOW_TABLES, Retention
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation import simulation
from fedorch.sim.negotiation.config import Config, Workflow

NAMES = ["d0", "d1", "d2"]
# Forgotten for the count, once a second has passed since the last mark: the bound
# this load is to show, whatever keep_ended_s says.
LOAD_RETENTION = Retention(keep_ended_s=604_800.0, max_ended_workflows=100,
                           late_message_s=1.0)


@dataclass
class Held:
    """What one Node holds at the end of the load."""

    cores: int              # Coordinator cores
    workflows: int          # workflows with anything in its tables (admissions aside)
    rows: int               # rows of every table but the admissions
    admitted: int           # signed submissions (kept for their window, not per workflow)
    acceptor_in_memory: int
    tracked: int            # workflows retention tracks (0 without retention)
    node_bytes: int         # the Node's objects (node_bytes)


@dataclass
class LoadReport:
    workflows: int
    ended: int
    cpu_s: float
    held: dict[str, Held] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    traced_bytes: int | None = None

    @property
    def cpu_ms_per_workflow(self) -> float:
        return 1000 * self.cpu_s / self.workflows


def config(workflows: int, retention: Retention | None, rate: float = 100.0
           ) -> Config:
    policy = config_pb2.Policy(accept_from=["*"])
    steps = [spec_pb2.StepSpec(id=f"s{i}", capability="a") for i in range(len(NAMES))]
    spec = spec_pb2.WorkflowSpec(name="load", steps=steps)
    placement = {f"s{i}": name for i, name in enumerate(NAMES)}
    flows = [Workflow(f"{NAMES[i % 3]}.l{i}", NAMES[i % 3], i / rate, spec,
                              placement) for i in range(workflows)]
    last = workflows / rate
    return Config(
        list(NAMES), dict.fromkeys(NAMES, policy), {n: {"a": 10_000} for n in NAMES},
        flows, timing=Timing(retention=retention), chaos_end=0.0, end=last + 30.0)


def held(agent: Any) -> Held:
    node = agent.node
    d = node.state
    wfs: set[str] = set()
    rows = 0
    for name in (*WORKFLOW_TABLES, *FORGOTTEN_ROUND_TABLES, "runs", "settled"):
        table = getattr(d, name)
        rows += len(table)
        wfs.update(k[0] if isinstance(k, tuple) else k for k in table)
    retain = node.retain
    return Held(len(node.coordinators), len(wfs), rows, len(d.admitted),
                len(node.acceptor.records()), retain.tracked() if retain else 0,
                node_bytes(node))


# What a Node refers to but does not own: the simulation behind its ports, the
# counters and randomness it shares, its configuration (and, below, the evidence port
# its takeover part is handed).
_NOT_THE_NODES = ("stats", "rng", "policy", "votes", "wall_ms", "admit")
_CODE = (type, types.ModuleType, types.FunctionType, types.MethodType,
         types.BuiltinFunctionType)


def node_bytes(node: Any) -> int:
    """sys.getsizeof over every object reachable from the Node (its tables, cores,
    outbox, parts), each once; what it only refers to (see _NOT_THE_NODES) and code
    are left out. Protobuf specs count at their Python wrapper's size: a lower bound."""
    seen = {id(node)} | {id(getattr(node, k)) for k in _NOT_THE_NODES}
    if node.takeover is not None:
        seen.add(id(node.takeover.evidence))
    stack = [v for k, v in vars(node).items() if k not in _NOT_THE_NODES]
    total = 0
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _CODE):
            continue
        seen.add(id(o))
        total += sys.getsizeof(o)
        stack.extend(gc.get_referents(o))
    return total


def run_load(workflows: int, retention: Retention | None = LOAD_RETENTION, *,
             rate: float = 100.0, trace: bool = False) -> LoadReport:
    c = config(workflows, retention, rate)
    limit = simulation.MAX_EVENTS
    simulation.MAX_EVENTS = max(limit, 200 * workflows)  # a livelock guard sized for the load
    try:
        if trace:
            tracemalloc.start()
        started = time.process_time()
        sim = simulation.Simulation(0, c)
        report = sim.run()
        cpu = time.process_time() - started
        traced = tracemalloc.get_traced_memory()[0] if trace else None
    finally:
        if trace:
            tracemalloc.stop()
        simulation.MAX_EVENTS = limit
    ended = sum(1 for wf in sim.workflows if sim.checker.row(sim, wf) is not None
                and sim.checker.row(sim, wf).finished)
    return LoadReport(workflows, ended, cpu, {n: held(a) for n, a in sim.agents.items()},
                      list(report.violations), traced)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fedorch.sim.negotiation.load")
    parser.add_argument("--workflows", type=int, nargs="+", default=[1000, 3000, 10000])
    parser.add_argument("--no-retention", action="store_true")
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also the bytes Python holds at the end (slows the run)")
    parser.add_argument("--max-ended", type=int, default=LOAD_RETENTION.max_ended_workflows)
    args = parser.parse_args(argv)
    retention = None if args.no_retention else replace(
        LOAD_RETENTION, max_ended_workflows=args.max_ended)
    bad = 0
    for n in args.workflows:
        r = run_load(n, retention, trace=args.tracemalloc)
        bad += bool(r.violations)
        mem = f"  traced {r.traced_bytes / 1e6:.1f} MB" if r.traced_bytes is not None else ""
        print(f"{n} workflows ({r.ended} ended): {r.cpu_ms_per_workflow:.2f} ms CPU per"
              f" workflow{mem}{'  VIOLATIONS ' + str(r.violations[:3]) if r.violations else ''}")
        for name, h in r.held.items():
            print(f"  {name}: cores {h.cores}  workflows {h.workflows}  rows {h.rows}"
                  f"  admitted {h.admitted}  acceptor records in memory"
                  f" {h.acceptor_in_memory}  tracked {h.tracked}"
                  f"  node {h.node_bytes / 1e6:.2f} MB")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
