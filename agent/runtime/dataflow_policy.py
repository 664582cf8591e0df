"""The shell's side of data-flow policy: records as this agent knows them, the context
of a vote, and the egress check on a step result about to leave (agent/core/policy)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from fedorch.core.policy.engine import PolicyContext, egress_refusal
from fedorch.core.policy.flow import vote_context
from fedorch.gen.fedorch.v1 import peer_pb2

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.policy")


def domain_records(agent: AgentContext, domains: Iterable[str]) -> dict[str, peer_pb2.DomainRecord]:
    """The latest records of ``domains`` that this agent knows (its own current one for
    itself); a domain without a record is left out."""
    records = {}
    membership = agent.membership  # its cached parse of each gossiped record
    for domain in set(domains):
        if domain == agent.domain:
            records[domain] = agent.current_record()
            continue
        view = membership.swim.member(domain) if membership is not None else None
        if view is not None and view.record:
            record = membership._record(domain, view.record_version, view.record)
            if record.domain == domain:
                records[domain] = record
    return records


def prepare_context(agent: AgentContext, req: peer_pb2.PrepareRequest,
                    asked: Sequence[tuple[str, str]]) -> PolicyContext | None:
    """What the vote on ``req`` checks residency, egress and rules against; None when the
    policy has none of them (nothing to compute on every PREPARE then)."""
    policy = agent.config.policy
    if not (policy.residency.accept or policy.egress.to_labels or policy.egress.to_domains
            or policy.rules):
        return None
    return vote_context(req.spec, req.placement, [step for step, _ in asked],
                        domain_records(agent, req.placement.values()), domain=agent.domain,
                        wall_time_s=agent.now_ms() / 1000)


def egress_checked(agent: AgentContext, recipient: str,
                   result: peer_pb2.StepResult) -> peer_pb2.StepResult:
    """``result`` when this domain's egress policy lets its outputs go to ``recipient``;
    else a copy without the outputs, saying why (the state still travels, so the
    workflow does not hang, but no data leaves)."""
    egress = agent.config.policy.egress
    if not egress.to_labels and not egress.to_domains:
        return result  # no egress policy: the common case costs nothing
    records = domain_records(agent, [recipient])
    labels = dict(records[recipient].labels) if recipient in records else None
    why = egress_refusal(egress, agent.domain, recipient, labels)
    if why is None or result.outputs_json in ("", "{}") and not result.HasField("outputs"):
        return result  # allowed, or no outputs to withhold (a progress note, a failure)
    log.warning("outputs of %s/%s withheld from %s: egress: %s", result.workflow_id,
                result.step_id, recipient, why)
    withheld = peer_pb2.StepResult()
    withheld.CopyFrom(result)
    withheld.ClearField("outputs")
    withheld.outputs_json = ""
    withheld.error = f"outputs withheld by {agent.domain}: egress: {why}"
    return withheld
