"""The local policy a domain enforces when it votes at PREPARE.

Pure functions: no I/O, no clock, no randomness. The participant core calls
:func:`evaluate_prepare` with its configured policy, the request, and its current
reservation counts, and votes YES or NO with the verdict's reason. :func:`summarize`
builds the (optional) public summary a domain gossips in its record, which the
coordinator's placement uses to avoid asking domains that would refuse anyway.

Checks run in this order; the first that fails gives the reason:

1. ``accept_from``: is the coordinator a domain whose work this domain takes, and, when
   an entry names principals for it (``{domain, principals}``), is the submitter one of
   them? (The principal is the one whose signed spec the PREPARE carries, as its
   coordinator vouches for it: agent/core/identity/submission.py.)
2. ``residency``: is every jurisdiction a step would receive (the workflow's data and its
   upstream steps' outputs, along the DAG: agent/core/workflow/dataflow.py) one this
   domain accepts?
3. ``capability``: does this domain offer every capability asked of it?
4. ``egress``: may each asked step's outputs go to the domains of the steps that need
   them (``policy.egress``)?
5. ``rule``: does every CEL rule (``policy.rules``, agent/core/policy/rules.py) hold?
6. ``quota``: would the coordinator hold more than ``max_steps_per_coordinator`` steps here?
7. ``capacity``: are there enough free slots for every capability asked (several
   steps of the same capability count several times)?

Without a :class:`PolicyContext` (callers that know only the workflow's data labels),
residency looks at the workflow's ``data`` alone and egress is not checked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fedorch.core.policy.rules import RuleInput, first_refusal
from fedorch.core.workflow.dataflow import Labels, merge
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2

__all__ = [
    "JURISDICTION",
    "PolicyContext",
    "Verdict",
    "accept_from_allows",
    "accept_from_possible",
    "accept_from_refusal",
    "egress_refusal",
    "evaluate_prepare",
    "residency_allows",
    "summarize",
]

#: The data label that residency policies look at.
JURISDICTION = "jurisdiction"


@dataclass(frozen=True)
class Verdict:
    """A domain's answer to a PREPARE: ``reason`` is "" when ``yes``, else one sentence."""

    yes: bool
    reason: str = ""

    @classmethod
    def accept(cls) -> Verdict:
        return cls(True, "")

    @classmethod
    def refuse(cls, reason: str) -> Verdict:
        return cls(False, reason)


def residency_allows(accept: Sequence[str], data_labels: Mapping[str, str]) -> bool:
    """Whether data with these labels may enter a domain that accepts ``accept``.

    Data labelled ``jurisdiction: X`` is allowed iff ``accept`` is empty or contains X.
    Data without a jurisdiction label is allowed everywhere.
    """
    if JURISDICTION not in data_labels:
        return True
    return not accept or data_labels[JURISDICTION] in accept


def residency_refusal(accept: Sequence[str], labels: Labels) -> str | None:
    """The jurisdictions in multi-valued ``labels`` that ``accept`` refuses, as a phrase,
    or None when all are allowed (or ``accept`` is empty: any)."""
    if not accept:
        return None
    refused = sorted(set(labels.get(JURISDICTION, ())) - set(accept))
    return "|".join(refused) if refused else None


def egress_refusal(egress: config_pb2.Egress, own_domain: str, destination: str,
                   labels: Mapping[str, str] | None) -> str | None:
    """Why outputs may not go from ``own_domain`` to ``destination`` (a phrase), or None.

    ``labels`` are the destination's labels, None when its record is unknown. A domain
    may always send to itself; with neither ``to_domains`` nor ``to_labels`` set, to any.
    """
    if destination == own_domain or destination in egress.to_domains:
        return None
    if not egress.to_labels and not egress.to_domains:
        return None
    if not egress.to_labels:
        return f"{destination} is not in to_domains ({_listing(list(egress.to_domains))})"
    if labels is None:
        return f"{destination}'s labels are unknown"
    for key, allowed in sorted(egress.to_labels.items()):
        have = labels.get(key)
        if have not in allowed.values:
            shown = "none" if have is None else have
            return (f"{destination} has {key}={shown}, to_labels allows "
                    f"{key} in [{', '.join(allowed.values)}]")
    return None


@dataclass(frozen=True)
class PolicyContext:
    """What a vote needs beyond the steps: the labels along the DAG and the destinations.

    ``receives`` maps each asked step to the labels it would receive; ``sends_to`` maps it
    to the domains its outputs go to (downstream steps' domains) with their labels (None
    when unknown). ``unknown_sources`` maps it to the upstream domains whose records (and
    so the labels they add) the voter does not know. ``wall_time_s`` is the voting
    domain's wall clock (for rules).
    """

    receives: Mapping[str, Labels]
    unknown_sources: Mapping[str, Sequence[str]] = field(default_factory=dict)
    sends_to: Mapping[str, Mapping[str, Mapping[str, str] | None]] = field(default_factory=dict)
    domain: str = ""
    workflow: str = ""
    principal: str = ""
    wall_time_s: float | None = None


def accept_from_allows(accept_from: Sequence[str], coordinator: str) -> bool:
    """Whether work coordinated by ``coordinator`` is taken: "*" or its exact name.

    An empty list means "*" (any trusted coordinator).
    """
    return not accept_from or "*" in accept_from or coordinator in accept_from


def _principal_matches(listed: str, domain: str, principal: str) -> bool:
    """``listed`` (an accept_from entry's name for `domain`) names ``principal`` (qualified,
    as `domain` vouched for it): "*", ``alice`` or ``alice@domain``, or ``domain:NAME``."""
    if listed == "*":
        return True
    if listed.startswith("domain:") or "@" in listed:
        return listed == principal
    return f"{listed}@{domain}" == principal


def accept_from_refusal(accept_from: Sequence[str],
                        by_principal: Sequence[config_pb2.AcceptFrom],
                        coordinator: str, principal: str) -> str | None:
    """Why work that ``coordinator`` asks for on behalf of ``principal`` (qualified:
    ``alice@eu-west``, or ``domain:eu-west``; "" when unknown) is not taken, or None.

    Entries that name principals for the coordinator decide alone: the principal must
    be listed in one of them. Otherwise the plain list decides ("*" or the name; with
    both lists empty, any trusted coordinator).
    """
    entries = [e for e in by_principal if e.domain == coordinator]
    if entries:
        listed = [name for e in entries for name in e.principals]
        if principal and any(_principal_matches(n, coordinator, principal) for n in listed):
            return None
        return (f"accept_from: principal '{principal or 'unknown'}' is not accepted from "
                f"coordinator '{coordinator}' (accepts from it: {_listing(listed)})")
    if not by_principal and accept_from_allows(accept_from, coordinator):
        return None
    if by_principal and ("*" in accept_from or coordinator in accept_from):
        return None
    named = list(accept_from) + [f"{e.domain} (principals {_listing(list(e.principals))})"
                                 for e in by_principal]
    return f"accept_from: coordinator '{coordinator}' is not accepted (accepts: {_listing(named)})"


def accept_from_possible(accept_from: Sequence[str],
                         by_principal: Sequence[config_pb2.AcceptFrom], coordinator: str) -> bool:
    """Whether some principal's work from ``coordinator`` may be taken (for placement,
    which does not weigh the principal: the vote does)."""
    if any(e.domain == coordinator and e.principals for e in by_principal):
        return True
    return accept_from_refusal(accept_from, by_principal, coordinator, "") is None


def _listing(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "none"


def evaluate_prepare(
    policy: config_pb2.Policy,
    *,
    coordinator: str,
    data_labels: Mapping[str, str],
    steps: Sequence[tuple[str, str]],
    capacities: Mapping[str, int],
    in_use: Mapping[str, int],
    coordinator_in_use: int,
    context: PolicyContext | None = None,
    principal: str = "",
) -> Verdict:
    """Decide whether this domain takes ``steps`` (pairs of step id and capability).

    ``capacities`` maps each offered capability to its configured capacity, ``in_use``
    each capability to the slots reserved or running now, and ``coordinator_in_use`` is
    the number of steps ``coordinator`` already holds here (reserved or running).
    ``context`` (see :class:`PolicyContext`) enables the per-step data-flow checks.
    ``principal`` is the submitter as the coordinator vouched for it (qualified).
    """
    refusal = accept_from_refusal(policy.accept_from, policy.accept_from_principals,
                                  coordinator, principal)
    if refusal is not None:
        return Verdict.refuse(refusal)

    residency = list(policy.residency.accept)
    if context is None:
        if not residency_allows(residency, data_labels):
            return Verdict.refuse(
                f"residency: data jurisdiction {data_labels[JURISDICTION]} is not accepted "
                f"here (accepts: {_listing(residency)})"
            )
    else:
        for step_id, _ in steps:
            received = context.receives.get(step_id, merge(data_labels))
            refused = residency_refusal(residency, received)
            if refused is not None:
                return Verdict.refuse(
                    f"residency: step '{step_id}' would receive jurisdiction {refused}, "
                    f"not accepted here (accepts: {_listing(residency)})"
                )
            unknown = context.unknown_sources.get(step_id, ())
            if residency and unknown:  # fail closed: their labels cannot be told
                return Verdict.refuse(
                    f"residency: step '{step_id}' would receive data from "
                    f"{_listing(sorted(unknown))}, whose record is unknown here"
                )

    # Capabilities in the order the steps ask for them, so reasons are deterministic.
    needed: Counter[str] = Counter(capability for _, capability in steps)
    for capability in needed:
        if capability not in capacities:
            return Verdict.refuse(f"capability: this domain does not offer '{capability}'")

    if context is not None:
        for step_id, _ in steps:
            for destination, labels in sorted(context.sends_to.get(step_id, {}).items()):
                why = egress_refusal(policy.egress, context.domain, destination, labels)
                if why is not None:
                    return Verdict.refuse(
                        f"egress: step '{step_id}' outputs may not go to {destination}: {why}"
                    )

    if policy.rules:
        load = {cap: (in_use.get(cap, 0) / n if n else 1.0) for cap, n in capacities.items()}
        ctx = context or PolicyContext(receives={})
        refusal = first_refusal(policy.rules, [
            RuleInput(ctx.principal or principal, coordinator, ctx.workflow, step_id, capability,
                      ctx.receives.get(step_id, merge(data_labels)), load, ctx.wall_time_s)
            for step_id, capability in steps
        ])
        if refusal is not None:
            return Verdict.refuse(refusal)

    limit = policy.quotas.max_steps_per_coordinator
    if limit and coordinator_in_use + len(steps) > limit:
        return Verdict.refuse(
            f"quota: coordinator '{coordinator}' already holds {coordinator_in_use} of "
            f"{limit} steps here, {len(steps)} more asked"
        )

    for capability, count in needed.items():
        capacity = capacities[capability]
        free = max(0, capacity - in_use.get(capability, 0))
        if free < count:
            return Verdict.refuse(
                f"capacity: {capability} has {free} of {capacity} slots free, {count} needed"
            )

    return Verdict.accept()


def summarize(policy: config_pb2.Policy) -> peer_pb2.PolicySummary:
    """The public summary gossiped in the domain record.

    Published unless ``policy.publish`` is set to false; an unpublished policy yields
    only ``published=False`` (nothing about the policy leaks).
    """
    published = policy.publish if policy.HasField("publish") else True
    if not published:
        return peer_pb2.PolicySummary(published=False)
    summary = peer_pb2.PolicySummary(
        published=True,
        accept_from=list(policy.accept_from),
        accept_from_principals=list(policy.accept_from_principals),
        residency_accept=list(policy.residency.accept),
        private_rules=len(policy.rules),  # the rules themselves stay private
    )
    if policy.HasField("egress"):
        summary.egress.CopyFrom(policy.egress)
    return summary
