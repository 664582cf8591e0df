"""Whether a domain meets a step's own constraints, as the domain itself checks them.

Placement (core/workflow/placement.py) honours `constraints.domains` and
`constraints.labels` when it chooses; a participant checks them again when a PREPARE
asks it to take the step, against its own name and labels: a coordinator that lies,
or placed on an old record of ours (labels changed since), gets a NO that says why.
Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from fedorch.gen.fedorch.v1 import spec_pb2


def constraint_refusal(step: spec_pb2.StepSpec, domain: str,
                       labels: Mapping[str, str]) -> str | None:
    """Why `domain`, labelled `labels`, may not take `step`; None when it may."""
    if step.constraints.domains and domain not in step.constraints.domains:
        return (f"constraints: step {step.id!r} may run only in"
                f" {', '.join(step.constraints.domains)}, not {domain}")
    for key, want in sorted(step.constraints.labels.items()):
        have = labels.get(key)
        if have != want:
            shown = f"{key}={have}" if have is not None else f"no label {key}"
            return f"constraints: step {step.id!r} wants {key}={want}; {domain} has {shown}"
    return None
