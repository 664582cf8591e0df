"""Placement: the coordinator's choice of a domain for each step, from gossiped records.

A pure function of the workflow spec, the members as the coordinator sees them, and the
domains that refused (or timed out on) each step in earlier negotiation rounds. No I/O,
no clock, no randomness: the same inputs always give the same placement.

Steps are placed one at a time in topological order (a step after the steps it
``needs``; among ready steps, spec order). For each step a domain is a *candidate* when:

- its key is not revoked (a member whose current key is revoked is refused with
  ``key revoked``, whatever its liveness: every agent refuses its messages);
- it is not DEAD or LEFT, and its record does not say ``leaving``. A SUSPECT member *is*
  a candidate: suspicion is a question SWIM is still asking, not an answer (Lifeguard
  refutes most suspicions of a slow but live member within a probe period or two, and
  on a busy host many live members are SUSPECT for a moment). Refusing them aborted
  workflows at once ("no eligible domain ... not alive") on a 50-domain federation
  that was whole; asking one that did die costs a PREPARE timeout, after which the
  step is placed again without it (or the workflow is aborted with that reason);
- it has not refused this step in an earlier round (``excluded``);
- when ``constraints.domains`` is non-empty, it is one of them;
- it offers the step's capability;
- every label in ``constraints.labels`` equals the domain's label;
- when its record publishes its policy summary: its ``accept_from`` takes the coordinator
  and its ``residency_accept`` allows every jurisdiction the step would receive there:
  the workflow's ``data`` and the labels of the upstream steps' outputs as placed so far
  (agent/core/workflow/dataflow.py); a private policy is not guessed at, the domain's
  PREPARE vote enforces it;
- for every upstream step placed on another domain that publishes its policy: that
  domain's ``egress`` lets the upstream outputs come here.

Avoiding what residency and egress would refuse at the vote is what lets a workflow be
placed on a compliant domain at once rather than aborted after refusals.

Free capacity is a preference, not a rule. A capability gossiped with ``available = N``
takes N steps of this workflow, counting the steps this placement already put there, as
a *free* candidate; past that the domain is a *full* candidate, used for a step only
when the step has no free candidate as sure to be alive. Gossip is late by design: a domain
republishes freed slots at most once per ``gossip.publish_interval_s``. Refusing a step
because a record said "full" a moment ago would abort a workflow the domain would have
taken. The domain's PREPARE vote checks its real free slots. A NO vote there excludes the
domain from that step in the next round, and the final refusal carries the domain's own
reason.

A SUSPECT candidate is chosen only when the step has no ALIVE candidate (free or
full): when there is a choice, the member nobody doubts goes first.

Candidates are ranked by a score; the lowest wins, ties go to the smaller domain name::

    score = cost                                  # the capability's declared cost
          - 2.0 * (upstream steps on this domain) # co-location: data stays local
          + 1.0 * (1 - available / capacity)      # load, 0 (idle) .. 1 (full)

``available`` in the load term is what is left after this placement's own earlier
assignments, so the steps of one workflow spread over equally cheap domains. Because the
load term lies in [0, 1], one co-located upstream step outweighs any cost difference
below 1.0 (cost 1 vs 2: the co-located domain wins) but not a large one (cost 1 vs 5: the
cheaper domain wins and the data moves).

A step with no candidate is *unplaceable*; its reason lists, compactly, why each member
failed, e.g. ``no eligible domain for 'ml.train' (us-east: refused earlier; eu-west:
residency EU not accepted)``; a group of more than NAMED_IN_FULL domains is named by its
first few, its last and its count (``org-02, org-03, org-04 … org-50 (49 domains): not in
the step's domains``). Steps after it are still placed so that every problem is
reported at once, but the placement is not ``ok``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import MappingProxyType

from fedorch.core.policy.engine import accept_from_possible, egress_refusal, residency_refusal
from fedorch.core.workflow.dataflow import Labels, merge
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2

__all__ = [
    "COLOCATION_BONUS",
    "LOAD_WEIGHT",
    "Candidate",
    "Placement",
    "eligible_domains",
    "place",
    "topological_order",
]

#: Subtracted from the score for each upstream step already placed on the same domain.
COLOCATION_BONUS = 2.0
#: Weight of the load term ``1 - available / capacity``.
LOAD_WEIGHT = 1.0
# A reason names a group of domains in full up to this many; past it, the first
# NAMED_FIRST, the last and the count (a 50-domain fan-out's refusal used to name 49
# domains per step, for each of its 50 steps: tens of kilobytes in one ABORT reason).
NAMED_IN_FULL = 5
NAMED_FIRST = 3

_NO_EXCLUSIONS: Mapping[str, AbstractSet[str]] = MappingProxyType({})


@dataclass(frozen=True)
class Candidate:
    """One member as the coordinator sees it: its latest record and liveness.

    ``alive``: not DEAD or LEFT as far as the coordinator knows (ALIVE or SUSPECT);
    ``suspect``: alive but SUSPECT (a candidate ranked after the ALIVE ones);
    ``revoked``: its current key is revoked here (never a candidate).
    """

    record: peer_pb2.DomainRecord
    alive: bool
    suspect: bool = False
    revoked: bool = False

    @classmethod
    def of(cls, record: peer_pb2.DomainRecord, state: str, *,
           revoked: bool = False) -> Candidate:
        """From a member's SWIM state (ALIVE | SUSPECT | DEAD | LEFT)."""
        return cls(record, alive=state in ("ALIVE", "SUSPECT"), suspect=state == "SUSPECT",
                   revoked=revoked)


@dataclass(frozen=True)
class Placement:
    """The result of :func:`place`.

    ``assignment`` maps step id to domain; when ``ok`` it holds every step, otherwise the
    steps that could be placed. ``unplaceable`` maps each other step to its reason.
    """

    assignment: dict[str, str] = field(default_factory=dict)
    unplaceable: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.unplaceable


def topological_order(steps: Sequence[spec_pb2.StepSpec]) -> list[spec_pb2.StepSpec]:
    """Steps ordered so each comes after the steps it needs; spec order among ready ones.

    Raises ValueError on a duplicate id, an unknown ``needs`` entry or a cycle (a
    validated spec has none of them).
    """
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        if step.id in index:
            raise ValueError(f"duplicate step id '{step.id}'")
        index[step.id] = i
    for step in steps:
        for need in step.needs:
            if need not in index:
                raise ValueError(f"step '{step.id}' needs unknown step '{need}'")

    done: set[str] = set()
    order: list[spec_pb2.StepSpec] = []
    remaining = list(steps)
    while remaining:
        ready = [s for s in remaining if all(n in done for n in s.needs)]
        if not ready:
            cycle = ", ".join(sorted(s.id for s in remaining))
            raise ValueError(f"steps form a dependency cycle: {cycle}")
        for step in ready:
            done.add(step.id)
            order.append(step)
        remaining = [s for s in remaining if s.id not in done]
    return order


def _capability(record: peer_pb2.DomainRecord, name: str) -> peer_pb2.CapabilityInfo | None:
    for info in record.capabilities:
        if info.name == name:
            return info
    return None


def _rejection(
    cand: Candidate,
    step: spec_pb2.StepSpec,
    received: Labels,
    coordinator: str,
    excluded: AbstractSet[str],
    upstream: Sequence[peer_pb2.DomainRecord] = (),
) -> str | None:
    """Why ``cand`` cannot take ``step`` (a short phrase), or None when it can."""
    record = cand.record
    if record.leaving:
        return "leaving"
    if cand.revoked:
        return "key revoked"
    if not cand.alive:
        return "not alive"
    if record.domain in excluded:
        return "refused earlier"
    if step.constraints.domains and record.domain not in step.constraints.domains:
        return "not in the step's domains"
    info = _capability(record, step.capability)
    if info is None:
        return f"does not offer '{step.capability}'"
    for key, want in sorted(step.constraints.labels.items()):
        if key not in record.labels:
            return f"no label {key} (step wants {want})"
        if record.labels[key] != want:
            return f"label {key} is {record.labels[key]} (step wants {want})"
    if step.HasField("each"):  # a fan-out step's own selector (core/workflow/fanout.py)
        if step.each.domains and record.domain not in step.each.domains:
            return "not in the step's each.domains"
        for key, want in sorted(step.each.labels.items()):
            if record.labels.get(key) != want:
                return f"label {key} is {record.labels.get(key, 'unset')} (each wants {want})"
    if record.policy.published:
        if not accept_from_possible(record.policy.accept_from,
                                    record.policy.accept_from_principals, coordinator):
            return f"does not accept coordinator '{coordinator}'"
        refused = residency_refusal(record.policy.residency_accept, received)
        if refused is not None:
            return f"residency {refused} not accepted"
    for source in upstream:
        if source.policy.published:
            why = egress_refusal(source.policy.egress, source.domain, record.domain,
                                 record.labels)
            if why is not None:
                return f"egress of {source.domain} refuses: {why}"
    return None


def _full(info: peer_pb2.CapabilityInfo, taken: int) -> bool:
    """Has this workflow's placement used up the free slots the record gossips?"""
    return info.available <= taken


def _score(info: peer_pb2.CapabilityInfo, taken: int, colocated: int) -> float:
    available = info.available - taken
    if info.capacity > 0:
        load = 1.0 - min(1.0, max(0.0, available / info.capacity))
    else:
        load = 1.0
    return info.cost - COLOCATION_BONUS * colocated + LOAD_WEIGHT * load


def summarise_domains(domains: Sequence[str]) -> str:
    """Up to NAMED_IN_FULL domain names as they are; more as the first few, the last and
    the count ("org-02, org-03, org-04 … org-50 (49 domains)"), so that a reason stays one
    readable line on a federation of any size."""
    if len(domains) <= NAMED_IN_FULL:
        return ", ".join(domains)
    first = ", ".join(domains[:NAMED_FIRST])
    return f"{first} … {domains[-1]} ({len(domains)} domains)"


def _explain(capability: str, rejections: Mapping[str, str]) -> str:
    """Compact reason: domains grouped by the phrase that rejected them, each group's
    names summarised when long (summarise_domains)."""
    if not rejections:
        return f"no eligible domain for '{capability}' (no members known)"
    groups: dict[str, list[str]] = {}
    for domain in sorted(rejections):
        groups.setdefault(rejections[domain], []).append(domain)
    parts = [f"{summarise_domains(domains)}: {why}" for why, domains in groups.items()]
    return f"no eligible domain for '{capability}' ({'; '.join(parts)})"


def eligible_domains(
    step: spec_pb2.StepSpec,
    candidates: Sequence[Candidate],
    *,
    coordinator: str,
    data: Labels,
) -> tuple[list[str], dict[str, str]]:
    """The domains that may run an instance of a fan-out step, in name order, and why
    each other member may not. ``data``: the labels the workflow's data carries (the
    labels of upstream outputs are not known before placement; the PREPARE vote checks
    them)."""
    eligible: list[str] = []
    rejections: dict[str, str] = {}
    for cand in sorted(candidates, key=lambda c: c.record.domain):
        why = _rejection(cand, step, data, coordinator, frozenset())
        if why is None:
            eligible.append(cand.record.domain)
        else:
            rejections.setdefault(cand.record.domain, why)
    return eligible, rejections


def _unexpanded(step: spec_pb2.StepSpec, candidates: Sequence[Candidate], coordinator: str,
                data: Labels) -> str:
    """Why a fan-out step was left unexpanded (core/workflow/fanout.py)."""
    eligible, rejections = eligible_domains(step, candidates, coordinator=coordinator,
                                            data=data)
    if not eligible:
        return _explain(step.capability, rejections).replace(
            "no eligible domain", f"fan-out step {step.id}: no eligible domain", 1)
    return (f"fan-out step {step.id}: {len(eligible)} eligible domains"
            f" ({summarise_domains(eligible)}), fewer than min_success {step.waves.min_success}")


def place(
    spec: spec_pb2.WorkflowSpec,
    candidates: Sequence[Candidate],
    *,
    coordinator: str,
    excluded: Mapping[str, AbstractSet[str]] = _NO_EXCLUSIONS,
    fixed: Mapping[str, str] = _NO_EXCLUSIONS,  # type: ignore[assignment]
) -> Placement:
    """Choose a domain for every step of ``spec``; see the module docstring for the rules.

    ``excluded`` maps a step id to the domains that refused it (or timed out) in earlier
    rounds. ``fixed`` maps a step id to the domain it keeps, unchecked (a workflow already
    running, one of whose steps is placed again after its domain was lost): the other
    steps are placed around it, its records counting for co-location, residency and
    egress. Raises ValueError when the steps' ``needs`` are not a DAG of known steps.
    """
    members = sorted(candidates, key=lambda c: c.record.domain)
    records = {c.record.domain: c.record for c in members}
    assignment: dict[str, str] = {}
    carries: dict[str, Labels] = {}  # step id -> the labels its outputs carry as placed
    unplaceable: dict[str, str] = {}
    taken: dict[tuple[str, str], int] = {}  # (domain, capability) -> steps placed there

    for step in topological_order(spec.steps):
        if step.id in fixed:
            domain = fixed[step.id]
            assignment[step.id] = domain
            received = merge(spec.data, *(carries[need] for need in step.needs))
            produced = _capability(records[domain], step.capability) \
                if domain in records else None
            carries[step.id] = merge(received, step.data,
                                     produced.produces if produced is not None else {})
            taken[(domain, step.capability)] = taken.get((domain, step.capability), 0) + 1
            continue
        if step.HasField("each"):  # left unexpanded: no domain can run it
            unplaceable[step.id] = _unexpanded(step, members, coordinator, merge(spec.data))
            carries[step.id] = merge(spec.data, step.data)
            continue
        refused = excluded.get(step.id, frozenset())
        # Best key per tier: (suspect, full); tier (False, False) first. See the docstring.
        best: dict[tuple[bool, bool], tuple[float, str]] = {}
        rejections: dict[str, str] = {}
        received = merge(spec.data, *(carries[need] for need in step.needs))
        upstream = [records[assignment[need]] for need in dict.fromkeys(step.needs)
                    if need in assignment and assignment[need] in records]
        for cand in members:
            domain = cand.record.domain
            used = taken.get((domain, step.capability), 0)
            why = _rejection(cand, step, received, coordinator, refused, upstream)
            if why is not None:
                rejections.setdefault(domain, why)
                continue
            info = _capability(cand.record, step.capability)
            assert info is not None  # checked by _rejection
            colocated = sum(1 for need in step.needs if assignment.get(need) == domain)
            key = (_score(info, used, colocated), domain)
            tier = (cand.suspect, _full(info, used))
            if tier not in best or key < best[tier]:
                best[tier] = key
        chosen = best[min(best)] if best else None
        if chosen is None:
            unplaceable[step.id] = _explain(step.capability, rejections)
            carries[step.id] = merge(received, step.data)
            continue
        domain = chosen[1]
        assignment[step.id] = domain
        produced = _capability(records[domain], step.capability)
        carries[step.id] = merge(received, step.data,
                                 produced.produces if produced is not None else {})
        taken[(domain, step.capability)] = taken.get((domain, step.capability), 0) + 1

    return Placement(assignment=assignment, unplaceable=unplaceable)
