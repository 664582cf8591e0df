"""An abort's reason, as one line a person reads (CLI, console, scenario report).

On a 50-domain fan-out the reason named every refusing domain and every step in full
(kilobytes). Steps with the same reason, and domains refused in one round for one
reason, are grouped; a long group is summarised as placement's reasons are
(summarise_domains). The status's `refusals[]` keeps every refusal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fedorch.core.negotiation.rounds import Refusal
from fedorch.core.workflow.placement import NAMED_FIRST, NAMED_IN_FULL, summarise_domains


def unplaceable_text(unplaceable: Mapping[str, str]) -> str:
    groups: dict[str, list[str]] = {}
    for step, why in sorted(unplaceable.items()):
        groups.setdefault(why, []).append(step)
    parts = [f"{', '.join(steps)}: {why}" if len(steps) <= NAMED_IN_FULL
             else f"{summarise_domains(steps).replace(' domains)', ' steps)')}: {why}"
             for why, steps in groups.items()]
    if len(parts) > NAMED_IN_FULL:
        more = sum(len(steps) for steps in list(groups.values())[NAMED_FIRST:])
        parts = [*parts[:NAMED_FIRST], f"… and {more} more steps"]
    return "; ".join(parts)


def refusals_text(refusals: Sequence[Refusal]) -> str:
    groups: dict[tuple[int, str], list[str]] = {}
    for r in refusals:
        groups.setdefault((r.round, r.reason), []).append(f"{r.domain} ({', '.join(r.steps)})")
    return "; ".join(f"round {number} {summarise_domains(who)}: {why}"
                     for (number, why), who in groups.items())
