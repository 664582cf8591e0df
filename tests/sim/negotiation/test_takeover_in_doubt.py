"""The negotiation simulator: a participant in doubt when the successor claims.

d0 coordinates a workflow of three steps on d1, d2 and d3 (Paxos Commit; the acceptors
are all four). Nothing d0 sends d2 after the PREPARE arrives: d2 votes YES and holds it
in doubt, while d0, d1 and d3 choose the COMMIT. d0 then dies for good. d1, the lowest
live participant, claims coordinator epoch 1 and needs d2's grant (three of four). d2
is in doubt until its recovery ballot learns the COMMIT from the acceptors.

A claim timeout (`prepare_timeout_s`) of 20 s, as in tests/integration/test_nonblocking.py:
before, d2 answered d1's claims as an acceptor holding no step (refused, no proof) and
was asked again only at the claim timeout; its own takeover watch, seeing d0 DEAD and
no claim from d1 within `takeover_after_s`, claimed epoch 1 itself, and the two duelled
until d1 won epoch 2, about 43 s in, past the checker's takeover deadline (a violation:
`takeover: d1 ended d0.w0 at 43.28, deadline 22.05`). Now d2 answers "in doubt"
(ClaimAnswerMsg.in_doubt, the runtime's TakeoverAnswer.in_doubt), d1 asks again a
second later (takeover_claims.CLAIM_AGAIN_S), and d2 grants once it has the COMMIT: one
takeover, epoch 1.

d2's membership never gets past SUSPECT about d0 here: told d0 is DEAD, d2 would start
its recovery at once (core/node/member_loss.py) and, in some seeds, learn the COMMIT
before d1's claim reaches it, and there would be no participant in doubt to ask again.
"""

from __future__ import annotations

import pytest
from fedorch.core.node.records import PrepareMsg
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import Simulation

from tests.sim.negotiation.test_takeover import WF
from tests.sim.negotiation.test_takeover import scenario as takeover_scenario

SLOW_CLAIMS = Timing(max_rounds=1, takeover_after_s=3.0, prepare_timeout_s=20.0)


def scenario(seed: int) -> tuple[Simulation, list[tuple[float, str]]]:
    sim = takeover_scenario(seed, SLOW_CLAIMS)
    d2_points: list[tuple[float, str]] = []
    d0_dead: list[float] = []

    def intercept(src, dst, msg, now):
        # d2 hears the PREPARE, and nothing of d0 after it.
        return "drop" if (src, dst) == ("d0", "d2") and not isinstance(msg, PrepareMsg) \
            else None

    def crash_hook(agent, now, label):
        if agent.name == "d2":
            d2_points.append((now, label))
        if agent.name == "d0" and label == "step result" and not d0_dead:
            d0_dead.append(now)  # a result came: committed; gone for good
            return "forever"
        return None

    seen_by = sim.member_state

    def member_state(observer, name):
        state = seen_by(observer, name)
        return "SUSPECT" if (observer, name, state) == ("d2", "d0", "DEAD") else state

    sim.intercept, sim.crash_hook, sim.member_state = intercept, crash_hook, member_state
    return sim, d2_points


@pytest.mark.parametrize("seed", range(1, 6))
def test_a_participant_in_doubt_is_asked_again_and_one_takeover_finishes(seed) -> None:
    sim, d2_points = scenario(seed)
    report = sim.run()
    assert report.violations == [], report.violations  # the takeover deadline included
    assert sim.dead_forever == {"d0"}
    assert sim.checker.acting_in == {(WF, 1): "d1"}  # one takeover: no duel, no epoch 2
    assert report.stats["takeover claim answered in doubt"] >= 1
    assert report.stats["takeover claim sent again to a participant in doubt"] >= 1
    d2 = sim.agents["d2"]
    assert d2.disk.granted[WF] == d2.disk.epochs[WF] == (1, "d1")
    # d2 followed d1 within two looks (a second each) of learning the COMMIT, not at a
    # claim timeout (20 s) nor after its own takeover_after_s.
    learned = next(t for t, label in d2_points if label == "hold committed")
    followed = next(t for t, label in d2_points if label == "takeover epoch")
    assert learned <= followed <= learned + 2.0, (learned, followed)
    finals = {n: sim.agents[n].disk.final.get(WF) for n in ("d1", "d2", "d3")}
    assert finals["d1"] in TERMINAL and set(finals.values()) == {finals["d1"]}
