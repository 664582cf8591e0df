"""A dry run of placement and policy: for every step and member, the verdict and why.

Pure: the spec, the members' gossiped records as one agent sees them, and the domain
that would coordinate. Nothing is reserved and no domain is asked. The placement is the
one the coordinator would choose (agent/core/workflow/placement.py); each verdict judges
a step on a domain with the other steps where that placement puts them, so the labels it
would receive and the destinations of its outputs are those of a real PREPARE.

A verdict uses what the domain publishes: its labels, capabilities (with the labels they
produce) and policy summary (accept_from, residency, egress). Its CEL rules, quotas and
exact free slots are private, and a domain may keep its whole policy private: such
verdicts are **predictions** (``basis`` says which), and the domain's vote at PREPARE
can still be NO.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fedorch.core.policy.engine import (
    accept_from_possible,
    accept_from_refusal,
    egress_refusal,
    residency_refusal,
)
from fedorch.core.workflow import fanout
from fedorch.core.workflow.dataflow import (
    destinations,
    label_flow,
    produces_from_records,
    show,
)
from fedorch.core.workflow.placement import Candidate, Placement, place
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2

__all__ = ["Explanation", "StepVerdict", "explain"]

#: ``basis`` values: how much of a verdict rests on what the domain published.
SUMMARY = "summary"          # the published policy summary, without private rules
SUMMARY_AND_RULES = "summary; private rules decide at PREPARE"
PRIVATE = "policy private; decided at PREPARE"


@dataclass(frozen=True)
class StepVerdict:
    step: str
    domain: str
    allowed: bool
    chosen: bool                     # the placement puts the step here
    reasons: list[str]               # every refusal found (empty when allowed)
    receives: str                    # the labels the step would receive there, shown
    basis: str                       # see SUMMARY, SUMMARY_AND_RULES, PRIVATE
    notes: list[str] = field(default_factory=list)  # not refusals (e.g. looks full)


@dataclass(frozen=True)
class Explanation:
    coordinator: str
    placement: Placement
    verdicts: list[StepVerdict]
    principal: str = ""  # the submitter the verdicts weigh, as the coordinator vouches

    def to_dict(self) -> dict:
        return {
            "coordinator": self.coordinator,
            "principal": self.principal,
            "placement": dict(sorted(self.placement.assignment.items())),
            "unplaceable": dict(sorted(self.placement.unplaceable.items())),
            "verdicts": [
                {"step": v.step, "domain": v.domain, "verdict": "yes" if v.allowed else "no",
                 "chosen": v.chosen, "reasons": v.reasons, "receives": v.receives,
                 "basis": v.basis, "notes": v.notes}
                for v in self.verdicts
            ],
        }


def _basis(record: peer_pb2.DomainRecord) -> str:
    if not record.policy.published:
        return PRIVATE
    return SUMMARY_AND_RULES if record.policy.private_rules else SUMMARY


def explain(spec: spec_pb2.WorkflowSpec, candidates: Sequence[Candidate], *,
            coordinator: str, principal: str = "") -> Explanation:
    """Every step against every member (see the module docstring). ``principal``: the
    submitter, qualified as the coordinator would vouch for it (``alice@eu-west``, or
    ``domain:eu-west`` for a submission without identity); "" weighs no principal."""
    members = sorted(candidates, key=lambda c: c.record.domain)
    records = {c.record.domain: c.record for c in members}
    # Fan-out steps as the coordinator would expand them: one instance per domain.
    spec = fanout.expand(spec, members, coordinator=coordinator)
    placement = place(spec, members, coordinator=coordinator)
    verdicts: list[StepVerdict] = []
    for step in spec.steps:
        for cand in members:
            domain = cand.record.domain
            trial = {**placement.assignment, step.id: domain}
            flows = label_flow(spec, trial, produces_from_records(records))
            reasons, notes = _judge(spec, step, cand, trial, records, flows[step.id].receives,
                                    coordinator, principal)
            verdicts.append(StepVerdict(
                step.id, domain, not reasons, placement.assignment.get(step.id) == domain,
                reasons, show(flows[step.id].receives), _basis(cand.record), notes))
    return Explanation(coordinator, placement, verdicts, principal)


def _judge(spec, step, cand, trial, records, receives, coordinator, principal):
    record = cand.record
    domain = record.domain
    reasons: list[str] = []
    notes: list[str] = []
    if record.leaving:
        reasons.append("leaving the federation")
    elif not cand.alive:
        reasons.append("not alive")
    if step.constraints.domains and domain not in step.constraints.domains:
        reasons.append("constraints.domains: not one of " + ", ".join(step.constraints.domains))
    info = next((c for c in record.capabilities if c.name == step.capability), None)
    if info is None:
        reasons.append(f"capability: does not offer '{step.capability}'")
    elif info.available == 0:
        notes.append(f"{step.capability}: no free slot gossiped (of {info.capacity})")
    for key, want in sorted(step.constraints.labels.items()):
        have = record.labels.get(key)
        if have != want:
            reasons.append(f"constraints.labels: {key} is {have or 'unset'}, step wants {want}")
    if record.policy.published:
        summary = record.policy
        if principal:
            refusal = accept_from_refusal(summary.accept_from, summary.accept_from_principals,
                                          coordinator, principal)
            if refusal is not None:
                reasons.append(refusal)
        elif not accept_from_possible(summary.accept_from, summary.accept_from_principals,
                                      coordinator):
            reasons.append(f"accept_from: coordinator '{coordinator}' not accepted")
        refused = residency_refusal(record.policy.residency_accept, receives)
        if refused is not None:
            reasons.append(f"residency: would receive jurisdiction {refused}, accepts "
                           f"{', '.join(record.policy.residency_accept)}")
        # This domain's own egress: may the step's outputs go where the placement sends them?
        for target in sorted(destinations(spec, trial, step.id)):
            labels = dict(records[target].labels) if target in records else None
            why = egress_refusal(record.policy.egress, domain, target, labels)
            if why is not None:
                reasons.append(f"egress: outputs may not go to {target}: {why}")
    # The upstream domains' egress: may their outputs come here?
    for need in dict.fromkeys(step.needs):
        source = records.get(trial.get(need, ""))
        if source is not None and source.policy.published:
            why = egress_refusal(source.policy.egress, source.domain, domain,
                                 dict(record.labels))
            if why is not None:
                reasons.append(f"egress of {source.domain} (step '{need}'): {why}")
    return reasons, notes
