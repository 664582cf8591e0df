"""The federation of test_simulation_heal.py and test_simulation_one_way.py: d0
coordinates d0.w0, s1 on d2, then s2 on d1 (not idempotent); d1 is cut off, and s1's
result is slow on its way to d0 and to d1 while d0's news of s2's new placement never
reaches d1. Each test adds its own cut and the messages it delays or repeats."""

from __future__ import annotations

from fedorch.core.node.records import PlacedMsg, ResultMsg
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import SIM_STEP_LEASE_S
from fedorch.sim.negotiation.simulation import Simulation

WF = "d0.w0"


def chain_with_d1_cut(takeover_after_s: float, **cut: object) -> Simulation:
    """Four domains, the chain s1 (d2) then s2 (d1); `cut` is the Config's cut of d1
    (`partition=...`, `one_way=...`, ...)."""
    names = [f"d{i}" for i in range(4)]
    chain = [spec_pb2.StepSpec(id="s1", capability="a"),
             spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])]
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 4} for n in names},
        workflows=[Workflow(WF, "d0", 0.5, spec_pb2.WorkflowSpec(name="w0", steps=chain),
                            {"s1": "d2", "s2": "d1"})],
        timing=Timing(max_rounds=1, takeover_after_s=takeover_after_s,
                      step_lease_s=SIM_STEP_LEASE_S),
        **cut,
    )
    return Simulation(1, config)


def slow_result_lost_placement(src: str, dst: str, msg: object, now: float,
                               result_at_d1: float) -> object:
    """The interception both tests share: s1's result from d2 there at 8 s at d0 and at
    `result_at_d1` at d1; every placement news to d1 lost. None for any other message."""
    if isinstance(msg, ResultMsg) and msg.workflow_id == WF and msg.step_id == "s1" \
            and src == "d2" and dst in ("d0", "d1"):
        return (8.0 if dst == "d0" else result_at_d1) - now  # slow
    if isinstance(msg, PlacedMsg) and dst == "d1":
        return "drop"  # lost
    return None
