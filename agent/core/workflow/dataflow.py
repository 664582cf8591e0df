"""Data labels along the DAG: what each step receives and what its outputs carry.

Pure: a function of the spec, a placement (step id -> domain) and what each domain
declares its capabilities produce (from its gossiped record, or its own config).

- A step *receives* the workflow's ``data`` labels and the labels of the outputs of
  every step it ``needs``.
- A step's outputs *carry* what it received, its own ``steps[].data`` labels, and the
  labels its capability ``produces`` on the domain it is placed on.

Labels are multi-valued: a step fed by an EU step and a US step receives
``jurisdiction: {EU, US}``, and a residency policy must accept both. Labels never drop
off as data flows: a step cannot launder its inputs' labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fedorch.core.workflow.dag import topological_order
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2

__all__ = [
    "Flow",
    "Labels",
    "destinations",
    "label_flow",
    "merge",
    "produces_from_records",
    "show",
]

#: Label name -> the set of values that data carries.
Labels = Mapping[str, frozenset[str]]

#: (domain, capability) -> the labels that capability's outputs get there.
Produces = Callable[[str, str], Mapping[str, str]]


@dataclass(frozen=True)
class Flow:
    """One step's labels for a placement: what it receives and what its outputs carry.

    ``sources`` are the domains where the steps upstream of it (transitively) are placed:
    a voter that lacks one's record cannot know the labels that domain adds.
    """

    receives: Labels
    carries: Labels
    sources: frozenset[str] = frozenset()


def merge(*sources: Mapping[str, str] | Labels) -> dict[str, frozenset[str]]:
    """Union of label maps (single values or sets of values) into one multi-valued map."""
    out: dict[str, set[str]] = {}
    for source in sources:
        for key, value in source.items():
            values = {value} if isinstance(value, str) else set(value)
            out.setdefault(key, set()).update(values)
    return {key: frozenset(values) for key, values in out.items()}


def show(labels: Labels) -> str:
    """Labels as people read them: ``jurisdiction=EU|US, pii=yes`` (sorted)."""
    if not labels:
        return "none"
    return ", ".join(f"{k}={'|'.join(sorted(v))}" for k, v in sorted(labels.items()))


def label_flow(
    spec: spec_pb2.WorkflowSpec,
    placement: Mapping[str, str],
    produces: Produces,
) -> dict[str, Flow]:
    """Every step's :class:`Flow` for ``placement``.

    A step missing from ``placement`` (not placed yet) adds no capability labels of its
    own, but still passes on what it receives and its ``data`` labels. Raises ValueError
    on a spec whose ``needs`` are not a DAG of known steps (a validated spec is one).
    """
    by_id = {step.id: step for step in spec.steps}
    flows: dict[str, Flow] = {}
    for step_id in topological_order(spec):
        step = by_id[step_id]
        receives = merge(spec.data, *(flows[need].carries for need in step.needs))
        sources: set[str] = set()
        for need in step.needs:
            sources |= flows[need].sources
            if need in placement:
                sources.add(placement[need])
        domain = placement.get(step_id)
        declared = produces(domain, step.capability) if domain else {}
        flows[step_id] = Flow(receives, merge(receives, step.data, declared), frozenset(sources))
    return flows


def destinations(spec: spec_pb2.WorkflowSpec, placement: Mapping[str, str],
                 step_id: str) -> dict[str, list[str]]:
    """Where ``step_id``'s outputs go as inputs: domain -> the downstream steps there."""
    out: dict[str, list[str]] = {}
    for step in spec.steps:
        if step_id in step.needs and step.id in placement:
            out.setdefault(placement[step.id], []).append(step.id)
    return out


def produces_from_records(records: Mapping[str, peer_pb2.DomainRecord]) -> Produces:
    """A :data:`Produces` reading the ``produces`` each domain gossips per capability.

    A domain with no known record, or a capability it does not list, adds nothing.
    """
    table = {
        (domain, info.name): dict(info.produces)
        for domain, record in records.items()
        for info in record.capabilities
    }

    def produces(domain: str, capability: str) -> Mapping[str, str]:
        return table.get((domain, capability), {})

    return produces
