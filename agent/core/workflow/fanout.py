"""Fan-out and staged rollout: a step that runs once in every eligible domain, in waves.

A step with ``each`` is a *fan-out step*. The coordinator expands it at submission
(:func:`expand`) into one *instance* per eligible domain, ``STEP@DOMAIN``, pinned to that
domain (``constraints.domains: [DOMAIN]``), with ``instance_of`` and ``wave`` set. The
expanded spec is what the workflow row stores and what every PREPARE carries, so every
participant sees the same instances, each domain's policy votes on its own instances,
and negotiation, execution, results and sagas treat instances as ordinary steps.

The expansion is a pure function of the spec and the members as the coordinator sees
them: eligible domains (alive, not leaving, offering the capability, matching the step's
``constraints`` and ``each``, and, where a domain publishes its policy, accepting the
coordinator and the workflow's data) in name order; ``waves.max_parallel`` of them per
wave (all in one wave when 0). Waves become dependency barriers: every instance of wave
k+1 needs every instance of wave k, so the results of wave k reach the domains of wave
k+1 the way any upstream result does. A step that needs the fan-out step needs every
instance instead. What the barriers mean (a failed instance under ``on_failure:
continue``, ``pause_s``, ``min_success``) is :class:`Group`'s business, read by the
progress core (agent/core/workflow/progress.py).

A fan-out step with no eligible domain, or fewer than its ``min_success``, is left
unexpanded; placement reports it unplaceable with the reason, and the workflow is
ABORTED like any workflow with an unplaceable step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fedorch.core.workflow.dataflow import merge
from fedorch.core.workflow.placement import Candidate, eligible_domains
from fedorch.core.workflow.spec import ON_FAILURE  # waves.on_failure values; "" is stop
from fedorch.gen.fedorch.v1 import spec_pb2

__all__ = ["ON_FAILURE", "Group", "expand", "groups", "instance_id", "required_successes"]


def instance_id(step_id: str, domain: str) -> str:
    return f"{step_id}@{domain}"


def required_successes(waves: spec_pb2.Waves, instances: int) -> int:
    """How many instances must succeed for the fan-out step to succeed."""
    if waves.on_failure == "continue" and waves.min_success:
        return min(waves.min_success, instances)
    return instances


@dataclass(frozen=True)
class Group:
    """The instances of one fan-out step in an expanded spec, and its rollout rules."""

    id: str
    instances: tuple[str, ...]  # in spec order (by wave, then domain)
    waves: dict[str, int]  # instance id -> wave
    on_failure: str  # "stop" | "continue"
    pause_s: float
    need: int  # successes for the group to succeed

    @property
    def keeps_going(self) -> bool:
        """Do later waves start after an instance of an earlier one failed?"""
        return self.on_failure == "continue"


def groups(spec: spec_pb2.WorkflowSpec) -> dict[str, Group]:
    """The fan-out groups of an expanded spec, by fan-out step id (none: {})."""
    members: dict[str, list[spec_pb2.StepSpec]] = {}
    for step in spec.steps:
        if step.instance_of:
            members.setdefault(step.instance_of, []).append(step)
    out = {}
    for group_id, steps in members.items():
        waves = steps[0].waves
        out[group_id] = Group(
            id=group_id, instances=tuple(s.id for s in steps),
            waves={s.id: s.wave for s in steps}, on_failure=waves.on_failure or "stop",
            pause_s=waves.pause_s, need=required_successes(waves, len(steps)))
    return out


def expand(spec: spec_pb2.WorkflowSpec, candidates: Sequence[Candidate], *,
           coordinator: str) -> spec_pb2.WorkflowSpec:
    """The spec with each fan-out step replaced by its instances (see the module
    docstring); ``spec`` itself when it has none. Deterministic."""
    chosen: dict[str, list[str]] = {}
    for step in spec.steps:
        if not step.HasField("each"):
            continue
        domains = eligible_domains(step, candidates, coordinator=coordinator,
                                   data=merge(spec.data))[0]
        if domains and len(domains) >= step.waves.min_success:
            chosen[step.id] = domains  # else left whole: placement says why it cannot run
    return expand_into(spec, chosen)


def expand_into(spec: spec_pb2.WorkflowSpec,
                chosen: dict[str, list[str]]) -> spec_pb2.WorkflowSpec:
    """The spec with each fan-out step named in ``chosen`` replaced by one instance per
    domain listed for it, in that order, ``waves.max_parallel`` per wave; ``spec`` itself
    when nothing is to be expanded."""
    if not any(step.HasField("each") and step.id in chosen for step in spec.steps):
        return spec
    expanded = spec_pb2.WorkflowSpec()
    expanded.CopyFrom(spec)
    del expanded.steps[:]
    instances: dict[str, list[str]] = {}  # fan-out step id -> its instance ids
    for step in spec.steps:
        domains = chosen.get(step.id) if step.HasField("each") else None
        if not domains:
            expanded.steps.append(step)
            continue
        per_wave = step.waves.max_parallel or len(domains)
        previous: list[str] = []
        current: list[str] = []
        for index, domain in enumerate(domains):
            wave = index // per_wave + 1
            if index % per_wave == 0 and index:
                previous, current = current, []
            instance = expanded.steps.add()
            instance.CopyFrom(step)
            instance.ClearField("each")
            instance.id = instance_id(step.id, domain)
            instance.instance_of = step.id
            instance.wave = wave
            del instance.constraints.domains[:]
            instance.constraints.domains.append(domain)
            instance.needs.extend(previous)  # the barrier: every instance of the wave before
            current.append(instance.id)
        instances[step.id] = [instance_id(step.id, d) for d in domains]
    for step in expanded.steps:
        if any(need in instances for need in step.needs):
            needs = [i for need in step.needs for i in instances.get(need, [need])]
            del step.needs[:]
            step.needs.extend(needs)
    return expanded


def chosen_domains(expanded: spec_pb2.WorkflowSpec) -> dict[str, list[str]]:
    """The domains an expanded spec gave each fan-out step, in its order."""
    chosen: dict[str, list[str]] = {}
    for step in expanded.steps:
        if step.instance_of:
            chosen.setdefault(step.instance_of, []).extend(step.constraints.domains[:1])
    return chosen


def is_expansion_of(expanded: spec_pb2.WorkflowSpec, original: spec_pb2.WorkflowSpec) -> bool:
    """Is ``expanded`` what a coordinator makes of ``original`` for some choice of
    domains? A participant asks it of a PREPARE's spec and the submitter's signed one: a
    coordinator chooses the domains (from its view of the federation), nothing else."""
    chosen = chosen_domains(expanded)
    for step in original.steps:  # named domains bound the choice; labels each domain checks
        if step.id not in chosen:
            continue
        # An instance's constraints.domains is its one domain, so the original's bounds
        # (each.domains and constraints.domains) are checked here, on the original.
        for listed in (step.each.domains, step.constraints.domains):
            if listed and not set(chosen[step.id]) <= set(listed):
                return False
    return expand_into(original, chosen) == expanded
