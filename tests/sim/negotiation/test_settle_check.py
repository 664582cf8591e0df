"""End notices settle between live domains that both ended the workflow
(agent/sim/negotiation/settle_check.py; not yet a Checker invariant: its header says
why), on the takeover soak seeds once failing so."""

from __future__ import annotations

import pytest
from fedorch.sim.negotiation.run import Simulation, seeded_config
from fedorch.sim.negotiation.settle_check import unsettled_ends

# 191000086 (`--takeover 3`): the original coordinator, back, took the proven SUCCEEDED of
# epoch 1 from an elector's answer to its loss verdict's FAILED, claimed epoch 2 past the
# holder gone in its view and told the end on in it, never won, without keeping the
# proof. It and the epoch's proven holder then refused each other's notice of that end
# for ever (stale_epoch; not_participant), and its FAILED stayed told to the elector,
# answered each time with the later end. The proof is kept with the end
# (takeover_claims.py), the holder's same end settles the notice told on to it
# (running_ends.py), and a verdict's end void against another made here is told no more
# (domain_loss.py).
# 194000193 (`--takeover 3`): the original coordinator granted epoch 2 and took its
# claimant's FAILED, told on with no proof; the proven holder of epoch 1 told it the
# same FAILED with its certificate, refused as stale_epoch for ever (retention kept the
# workflow). The same end from a proven holder of an older epoch is acknowledged
# (authority_ends.py, "The same end, proven").
ONCE_UNSETTLED = (191000086, 194000193)


@pytest.mark.parametrize("seed", ONCE_UNSETTLED)
def test_end_notices_between_domains_that_both_ended_settle(seed: int) -> None:
    sim = Simulation(seed, seeded_config(seed, 3.0), cancels=True)
    report = sim.run()
    assert report.violations == []
    assert unsettled_ends(sim) == []
