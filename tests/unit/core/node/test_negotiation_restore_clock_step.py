"""A coordinator restored with its wall clock stepped forward runs its recovery ballot.

The simulator's takeover soak seed 145002563 (`--takeover 3 --one-way`), by hand: d0
coordinates a workflow whose one step is its own, d1 and d2 its extra acceptors. Its
Accept of ballot 0 is cut off from them (d0 alone accepted COMMIT), and d0 goes down;
its wall clock is stepped forward an hour meanwhile. Back a few seconds later, the round
is young at d1 and d2: d1 and d2 hold no record of it and their horizons are below
it, so they promise and accept its ballots. Its restore settles the COMMIT proposal with
a recovery ballot, which chooses COMMIT, and the workflow runs and ends. Before, the restore took the round as past its
life by the wall clock alone and ran no ballot: d1 and d2 answered NOT_PREPARED for ever
and d0 stayed in doubt, NEGOTIATING, a cancel it had taken never carried out.
"""

from __future__ import annotations

import random

from fedorch.core.negotiation.coordinator import Phase
from fedorch.core.negotiation.messages import Accept
from fedorch.core.node import Node, Submit
from fedorch.core.node.retention import Retention
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.test_retention import NAMES, Federation

LIFE = Retention(keep_ended_s=20.0, max_ended_workflows=0, late_message_s=5.0)
HOUR_MS = 3_600_000


def test_a_coordinator_back_with_its_clock_stepped_forward_still_decides() -> None:
    f = Federation(LIFE)
    wf = "d0.w1"
    key = (wf, 1)
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])
    f.drop = lambda src, dst, msg: src == "d0" and dst != "d0" and isinstance(msg, Accept)
    f.step("d0", Submit(wf, spec, placement={"s0": "d0"}))
    f.run_until(0.5)
    assert f.disks["d0"].acceptor[key].accepted_value.commit
    assert all(key not in f.disks[a].acceptor for a in ("d1", "d2"))
    f.drop = lambda src, dst, msg: "d0" in (src, dst) and src != dst  # d0 is down
    f.run_until(5.0)
    f.drop = lambda src, dst, msg: False
    f.nodes["d0"] = Node("d0", policy=config_pb2.Policy(accept_from=["*"]),
                         capacities={"a": 100}, timing=f.timing, peers=NAMES,
                         rng=random.Random(0), disk=f.disks["d0"], now=f.now,
                         wall_ms=lambda now: int(now * 1000) + HOUR_MS)  # stepped +1 h
    core = f.nodes["d0"].coordinators[wf]
    assert core.phase is Phase.DECIDING and not core.in_doubt_past_life()
    f.flush("d0")
    f.run_until(10.0)
    for a in ("d1", "d2"):  # its recovery ballot chose COMMIT
        record = f.disks[a].acceptor[key]
        assert record.accepted_ballot.n >= 1 and record.accepted_value.commit, record
    # The workflow ran and ended (its stepped clock let retention forget it at once).
    assert f.nodes["d0"].stats["retention: workflow forgotten"] == 1
    assert wf not in f.disks["d0"].rows
