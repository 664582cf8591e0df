"""A trusted member that lies about others (SWIM): signed DEAD and SUSPECT claims at
the top of the incarnation range, ALIVE and LEFT claims in others' names. Nobody
believes them and every honest member stays ALIVE everywhere."""

from __future__ import annotations

from fedorch.core.membership.swim_types import MemberState
from fedorch.sim.membership import FORGED_RECORD, Simulation

ALIVE = MemberState.ALIVE


def test_a_lying_member_cannot_take_others_down_or_exhaust_their_incarnations():
    sim = Simulation(8, seed=5)
    sim.bootstrap()
    sim.run_for(3.0)
    assert sim.all_see(ALIVE)
    liar, victims = "m0007", ["m0001", "m0002"]
    before = {v: sim.nodes[sim.index[v]].incarnation for v in victims}
    sim.lie(liar, victims, every=0.5, until=sim.now + 30.0)
    seen_down = []
    for _ in range(60):
        sim.run_for(0.5)
        seen_down += [(o, v) for o in sim.live_names() for v in victims
                      if o != v and sim.state_of(o, v) is not ALIVE]
    assert seen_down == []
    # Nobody holds the record forged in a victim's name.
    for node in sim.nodes:
        assert all(view.record != FORGED_RECORD for view in node.members())
    # The victims never had to refute above what they published themselves.
    for v in victims:
        assert sim.nodes[sim.index[v]].incarnation < before[v] + 1024
    refused = sum(n.stats["unauthorised_claims"] for n in sim.nodes)
    assert refused > 0
    assert sum(n.stats["invalid_claims"] for n in sim.nodes) > refused  # ALIVE/LEFT in others' names
