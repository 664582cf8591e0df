"""A cut both ways that heals in the negotiation simulator (simulation.py, with
`Config.partition_dead`: the others' views of the cut-off group go DEAD, as a cut long
enough for a verdict makes them; the group's views of the others go SUSPECT). d1 is
cut off from 2 s to 5.5 s. d0 coordinates d0.w0: s1
on d2, then s2 on d1 (not idempotent). s1's result is slow to d0 and to d1 (there at
8 s and 6 s), so d0, seeing d1 DEAD at 3.5 s, judges s2 not started and places it
again; the new domain runs it, and d0's news of that to d1 is lost. A copy of a
message d0 sent d1 before the cut comes again at 5.9 s (a resend, a duplicate): without
the start rule's lapse (core/node/start_asks.py, "A cut that heals") d1, its view of
d0 ALIVE again since 5.5 s, took it as contact at 6 s and ran s2 too: the checker's
"started twice". With it, d1's view of d0 left ALIVE during the cut, so d1 asks d0
first, and s2 never starts on d1."""

from __future__ import annotations

from fedorch.core.node.records import PlacedMsg, PrepareMsg, ResultMsg
from fedorch.core.node.start_asks import HELD
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation import simulation
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import SIM_STEP_LEASE_S
from fedorch.sim.negotiation.simulation import Simulation

WF = "d0.w0"


def scenario() -> tuple[Simulation, list[object]]:
    names = [f"d{i}" for i in range(4)]
    chain = [spec_pb2.StepSpec(id="s1", capability="a"),
             spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])]
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 4} for n in names},
        workflows=[Workflow(WF, "d0", 0.5, spec_pb2.WorkflowSpec(name="w0", steps=chain),
                            {"s1": "d2", "s2": "d1"})],
        timing=Timing(max_rounds=1, takeover_after_s=30.0, step_lease_s=SIM_STEP_LEASE_S),
        partition=(2.0, 5.5, frozenset({"d1"})),
        partition_dead=True,
    )
    sim = Simulation(1, config)
    resent: list[object] = []

    def intercept(src: str, dst: str, msg: object, now: float) -> object:
        if isinstance(msg, ResultMsg) and msg.workflow_id == WF and msg.step_id == "s1" \
                and src == "d2" and dst in ("d0", "d1"):
            return (8.0 if dst == "d0" else 6.0) - now  # slow: there at 8 s, at 6 s
        if isinstance(msg, PlacedMsg) and dst == "d1":
            return "drop"  # lost
        if src == "d0" and dst == "d1" and not resent and now < 2.0 \
                and not isinstance(msg, PrepareMsg) and WF in repr(msg):
            resent.append(msg)  # arrives now, and a copy again after the cut
            sim._push(5.9, simulation._DELIVER, sim.agents["d1"], (src, msg))
        return None
    sim.intercept = intercept
    return sim, resent


def test_a_domain_cut_off_both_ways_never_runs_a_step_placed_elsewhere_after_the_heal(
) -> None:
    sim, resent = scenario()
    report = sim.run()
    assert resent
    assert report.violations == [], report.violations
    epoch, domain, lost = sim.agents["d0"].disk.placements[WF]["s2"]
    assert lost == "d1" and domain not in ("d1", "") and epoch > 0
    assert sim.agents["d1"].node.stats[HELD] >= 1
    assert all(run[:2] != (WF, "s2") for run in sim.checker.runs
               if sim.checker.runs[run] == "d1")
