"""End notices settle between live domains that both ended the workflow
(agent/sim/negotiation/settle_check.py, an invariant the Checker asks of every run at
its end), on the takeover soak seeds once failing so."""

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
# 210001702 (`--takeover 3`): the original, back, claimed epoch 2 past epoch 1's holder
# gone in its view, was denied by a participant with SUCCEEDED and no certificate, and
# told SUCCEEDED on in epoch 2 to both participants, which refused it (no certificate,
# no participant) for ever; the holder's proven notice of epoch 1, acknowledged,
# settled nothing (no proof kept). A member's denial that shows the end, or its notice
# of that very end in an older epoch, settles a notice told on in an epoch never won
# (running_ends.py, "An end told on in an epoch never won").
# 216000061 (`--takeover 3`): the original, back, told its SUCCEEDED again in epoch 0
# (held), claimed epoch 2 past epoch 1's holder gone in its view, and told the end on in
# it from a denial; the holder's notice of that end in epoch 1 came before the tick
# voided the hold, and the hold kept the notice to it unsettled, refused there for ever.
# A hold of an end made here is void at the acknowledgement (running_ends.py).
ONCE_UNSETTLED = (191000086, 194000193, 210001702, 216000061)


@pytest.mark.parametrize("seed", ONCE_UNSETTLED)
def test_end_notices_between_domains_that_both_ended_settle(seed: int) -> None:
    sim = Simulation(seed, seeded_config(seed, 3.0), cancels=True)
    report = sim.run()
    assert report.violations == []
    assert unsettled_ends(sim) == []


def test_a_notice_the_network_still_cuts_is_not_judged(monkeypatch) -> None:
    """test_takeover_claim_grants.py's story cuts d0's notices to d3 to the end of the
    run (d3 must learn the end from d1): d0's FAILED is still told to d3, which ended it
    FAILED too, and is left out (settle_check.py, the bound), not called unsettled."""
    from tests.sim.negotiation.test_takeover_claim_grants import WF, grant_never_taken

    sim, _, report = grant_never_taken(1, monkeypatch, "answer lost")
    d0, d3 = sim.agents["d0"].node, sim.agents["d3"].node
    assert ("final", WF, "d3") in d0.pending  # still told: every send lost
    assert d0.state.final[WF] is d3.state.final[WF]
    assert report.violations == []
    assert unsettled_ends(sim) == []
