"""The data-flow part of a vote: a PREPARE's labels and destinations, from records.

Pure: the participant's shell hands in the PREPARE's spec and placement and the domain
records it knows (its own included); this builds the :class:`PolicyContext` that
``evaluate_prepare`` checks residency and egress against.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from fedorch.core.policy.engine import PolicyContext
from fedorch.core.workflow.dataflow import destinations, label_flow, produces_from_records
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2

__all__ = ["vote_context"]


def vote_context(
    spec: spec_pb2.WorkflowSpec,
    placement: Mapping[str, str],
    asked: Iterable[str],
    records: Mapping[str, peer_pb2.DomainRecord],
    *,
    domain: str,
    principal: str = "",
    wall_time_s: float | None = None,
) -> PolicyContext:
    """The context for voting on ``asked`` steps of ``spec`` placed as ``placement``.

    A destination whose record is unknown gets labels None (egress by label refuses it);
    an upstream domain whose record is unknown is listed in ``unknown_sources`` (residency
    refuses then, since the labels it adds cannot be told).
    """
    flows = label_flow(spec, placement, produces_from_records(records))
    receives = {}
    unknown: dict[str, list[str]] = {}
    sends_to: dict[str, dict[str, Mapping[str, str] | None]] = {}
    for step_id in asked:
        receives[step_id] = flows[step_id].receives
        missing = sorted(flows[step_id].sources - records.keys())
        if missing:
            unknown[step_id] = missing
        sends_to[step_id] = {
            target: (dict(records[target].labels) if target in records else None)
            for target in destinations(spec, placement, step_id)
        }
    return PolicyContext(receives=receives, unknown_sources=unknown, sends_to=sends_to,
                         domain=domain,
                         workflow=spec.name, principal=principal, wall_time_s=wall_time_s)
