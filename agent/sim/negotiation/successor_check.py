"""The checks of a successor's schedule (agent/sim/negotiation/successor.py, whose
header lists them): one domain acting per epoch, no step attempt run twice, every
decision the coordinator's, every YES to a PREPARE certified for the acting epoch, a
step placed again only on a fresh majority, and nothing held at the end
(`check_successor`, raising SuccessorFailure). Their own module because they judge the
finished world from what it recorded, apart from the schedule that made it; the world
is typed loosely (successor.py imports this module).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fedorch.core.workflow.progress import Outcome, StepState
from fedorch.sim.negotiation.epoch_pieces import acted_twice, yes_outside_acted

__all__ = ["SuccessorFailure", "check_successor"]


class SuccessorFailure(AssertionError):
    """An invariant broken; the message names the seed."""


def check_successor(world: Any, candidates: Sequence[str]) -> None:
    """At the end of a successor's schedule (SuccessorWorld), `candidates` the domains
    a step may be placed again on: every invariant of the header holds."""
    def fail(what: str) -> None:
        raise SuccessorFailure(f"seed {world.seed}: {what}")

    for what in acted_twice(world.acting):
        fail(what)
    for key, n in world.runs.items():
        if n > 1:
            fail(f"attempt ran {n} times: {key}")
    second = {d for (s, d, _) in world.runs if s == "second"}
    if len(second) > 1 or "b" in second:
        fail(f"second ran on {sorted(second)}")
    for name, round_, commit in world.learned:
        if world.decided.get(round_) != commit:
            fail(f"{name} learned {commit} for round {round_}, the coordinator"
                 f" decided {world.decided.get(round_)}")
    for what in yes_outside_acted(world.acting, world.yes_to):
        fail(what)
    if any(world.liar_answers) or (
            world.liar_answers and "minority_certificate" not in world.refused):
        fail("a PREPARE with a minority's certificate was not refused")
    if world.acting:
        # With b's grant, or with co's once co was back (b dead before it granted).
        if world.won_with not in ({"b"}, {"co"}) or (
                world.won_with == {"co"} and world.co_back_at is None):
            fail(f"acted with the grants of {sorted(world.won_with)}")
        fresh = world.mandate.fresh if world.mandate is not None else set()
        if world.replaced_on is not None:  # on a fresh majority only: co back
            if fresh != {"a", "co"}:
                fail(f"placed again with the fresh grants of {sorted(fresh)}")
            if world.ended is None or world.ended[0] is not Outcome.SUCCEEDED:
                fail(f"taken over and placed again, yet ended {world.ended}")
            if world.replaced_on not in candidates or second != {world.replaced_on}:
                fail(f"second placed again on {world.replaced_on}, ran on"
                     f" {sorted(second)}")
        else:  # co and b dead (or co back too late): nothing placed, second FAILED
            step = world.nodes["a"].progress.steps["second"]
            if world.ended is None or world.ended[0] is not Outcome.FAILED \
                    or step.state is not StepState.FAILED \
                    or not step.error.startswith("domain b was lost"):
                fail(f"not placed again, yet ended {world.ended}, second {step.state}"
                     f" ({step.error!r})")
            if second or world.yes_to:
                fail(f"not placed again, yet second ran on {sorted(second)}")
        for c in candidates:
            if world.nodes[c].participant.holds():
                fail(f"{c} still holds {world.nodes[c].participant.holds()}")
    elif world.replaced_on is not None or world.yes_to:
        fail("placed again with nobody acting")
