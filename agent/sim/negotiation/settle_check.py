"""Whether end notices settle: the notices still told, at the end of a run, between two
live domains that both ended their workflow.

Theory of operation
-------------------
A Node resends an end notice (`FinalMsg`, pending under `("final", workflow, to)`)
until its recipient acknowledges it, or answers it so that the teller follows a later
epoch and tells it no more (core/node/running_ends.py). A recipient that ended the
workflow alike takes the notice only to acknowledge it, or answers it with the later
end: so between two live domains that both ended the workflow, every notice settles
within a few resends once the network has healed. A run ends `Config.end - chaos_end`
(70 s by default) after healing, long past that; a notice still pending then, from a
live domain that ended the workflow to a live domain that ended it too, is one that
each side refuses or answers for ever, and its workflow is never forgotten (takeover
soak seed 191000086: the original coordinator, holding its own epoch it never won,
and the proven winner of the epoch before it each refused the other's notice of the
same end, both resending every 8 s until the run ended).

A domain dead for good, down at the end, or that has not ended the workflow (it may
be in doubt past its round's life, or be waiting for what the notice brings) is left
out: a notice to it may wait, by design. The bound: a notice is judged once it had
time to settle, that is once it was resent (its backoff grown past the first
`reliable_resend_s`, 1 s: a send of it went that long, many round trips,
unacknowledged), and while the network lets it through (its last send, the next
resend less the backoff, pending.py, and anything between the two about the
workflow's end at or after it, a notice or an acknowledgement, not lost:
`Checker.end_hits`). A notice that loops sits at the longest backoff (8 s), so the
first part leaves out only one first sent, or told again (a domain back ALIVE), in the
run's last second. Runs heal by `chaos_end`, so the second leaves out nothing in a
seeded run: it is the bound for scripted runs whose cut never heals
(test_takeover_claim_grants.py drops d0's notices to d3 to its end, by design of its
story: d3 must learn the end from d1).

Its soak loops mended: seed 194000193 of the takeover soak (a certified epoch-1
holder's FAILED refused as stale by the original, which followed a later epoch whose
holder told the same end with no proof: such an end is now acknowledged,
core/node/authority_ends.py, "The same end, proven"); 194000276 (the original's FAILED
of epoch 2 told for ever to the holder of epoch 3) settles already. Soaks of 300 seeds
each (`--takeover 3` from 199000000, `--one-way` from 199100000, `--keep-ended-s 5
--end 300` from 199200000; without takeover from 199300000, `classic` 200 from
199400000) find no other.

The Checker asks it of every run at `finish` (check.py). Wired in, it found two
loops in scripted simulation tests, both mended (core/node/authority_ends.py, "The
same end, unproven"): test_fence_check.py (d1, cut off past its lease, claimed epoch
1, never won, and, healed, told the original's FAILED on in it; it then answered the
original's own FAILED, every 8 s for 78 s, with epoch 1 held by itself, and the
original, d1 alive in its view, claimed nothing) and test_saga_check_twice_driver_crash.py
seed 5 (d3, following d1 in epoch 1, refused for 95 s the same FAILED of epoch 1 from
d2, a rival claimant it did not know as a member). The fifteen runs of
test_takeover_claim_grants.py were neither: their story cuts d0 from d3 to the end,
and the bound above leaves that notice out. Soaks of `--takeover 3` (300 seeds from
205600000) and `--takeover 3 --one-way` (200 from 205900000) find none.

Not built yet: the same of a saga's plan and end notices (pending under `("saga",
workflow, to)`), which a Node resends alike until acknowledged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedorch.sim.negotiation.world import World


def unsettled_ends(sim: World) -> list[str]:
    """Each end notice still pending in `sim` between two live domains that both ended
    its workflow (the header), said in a line."""
    live = {name: agent.node for name, agent in sim.agents.items()
            if agent.alive and agent.node is not None and name not in sim.dead_forever}
    found = []
    for name, node in sorted(live.items()):
        for msg_id, entry in list(node.pending.items()):
            if msg_id[0] != "final" or len(msg_id) < 3:
                continue
            wf, to = msg_id[1], entry[0]
            peer = live.get(to)
            if to == name or peer is None or wf not in node.state.final \
                    or wf not in peer.state.final:
                continue
            if entry[3] <= node.t.reliable_resend_s or _still_cut(sim, name, to, wf, entry):
                continue  # not resent yet, or the network still cuts it (the header)
            msg = entry[1]
            found.append(f"{name} still tells {to} the end of {wf} ({msg.state.name},"
                         f" epoch {msg.epoch}); both ended it ({node.state.final[wf].name}"
                         f" and {peer.state.final[wf].name})")
    return found


def _still_cut(sim: World, name: str, to: str, wf: str, entry: list) -> bool:
    """Did the network lose an end notice of `wf` or its acknowledgement between `name`
    and `to` at or after the last send of `entry` (its next resend less its backoff,
    pending.py)? A cut never healed (a scripted run's): the notice is not judged."""
    last = entry[2] - entry[3]
    return any(delay is None and at >= last and {src, dst} == {name, to}
               for at, src, dst, delay in sim.checker.end_hits.get(wf, ()))
