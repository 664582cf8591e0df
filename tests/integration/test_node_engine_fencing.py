"""Self-fencing on real `engine: node` agents: a participant cut off stops its own step.

Three node-engine agents: coord coordinates a workflow whose first step, a long nap
(tests/integration/steps/nap.py: `sleep SECONDS`, found by its command line), runs at
p1, and whose second runs at p2 after it. Once the nap runs, coord and p2 are paused
with SIGSTOP, the simplest real partition on 127.0.0.1: a paused process answers
nothing, so p1 hears nobody of the workflow. p1's membership declares both DEAD (its
view reaches the Node as `MemberViews`), and once the Node has heard none of them for
the step lease it stops the step itself: the nap's process is gone
and the step is FAILED at p1 with the rule's "fenced" reason. p1 cannot take the
workflow over meanwhile: it is one of three electors (once they are back, it may, and
the workflow's end then comes from it). After SIGCONT the workflow ends FAILED
everywhere, nothing left running. The scenario is the default engine's
(test_self_fencing.py), run on node-engine agents.
"""

from __future__ import annotations

import pytest

from tests.integration.federation import TEST_TIMINGS
from tests.integration.test_orphan_steps import NAPS
from tests.integration.test_self_fencing import LEASE_S, cut_off_then_settled
from tests.integration.test_takeover import WORK

pytestmark = pytest.mark.integration

NODE = {"engine": "node", "gossip": {"profile": "local"},
        "negotiation": {**TEST_TIMINGS["negotiation"],
                        "step_lease_s": LEASE_S}}
DOMAINS = {
    "coord": NODE,
    "p1": {**NODE, "capabilities": NAPS},
    "p2": {**NODE, "capabilities": WORK},
}


async def test_a_cut_off_node_engine_participant_stops_its_step(tmp_path):
    await cut_off_then_settled(tmp_path, DOMAINS,
                               'fedorch_node_steps_self_fenced_total{outcome="stopped"}')
