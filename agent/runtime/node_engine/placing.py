"""The node engine's placement: the shells' placement code behind the Node's placer.

A Node places each round of a workflow it coordinates through `Node.placer(spec,
hint)`: a function of the domains the earlier rounds' refusals excluded. The Node's
own placer picks any peer not excluded (the simulator's world has no records to place
by). `PlacedNode` is the Node with the daemon's placement instead, as the shells place:
`core/workflow/placement.place` over the members this agent sees
(runtime/candidates.py: capabilities, labels, residency, egress, free capacity,
liveness), with the refusers excluded. The first round keeps the placement the client
service chose when it took the submission (`hint`), made by the same code a moment
before; a restored coordinator's later rounds place anew.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fedorch.core.node.node import Node
from fedorch.core.workflow.placement import Candidate, Placement, place
from fedorch.gen.fedorch.v1 import spec_pb2

__all__ = ["PlacedNode"]


class PlacedNode(Node):
    def __init__(self, name: str, *, candidates: Callable[[], Sequence[Candidate]],
                 **kwargs: Any) -> None:
        """`candidates`: the members placement may choose from, as this agent sees them
        now; the rest as `Node`'s."""
        self.candidates = candidates
        super().__init__(name, **kwargs)

    def placer(self, spec: spec_pb2.WorkflowSpec, hint: dict[str, str] | None = None):
        def placed(excluded: Mapping[str, Any]) -> Placement:
            if hint and not any(excluded.values()):
                return Placement(dict(hint), {})
            return place(spec, self.candidates(), coordinator=self.name, excluded=excluded)

        return placed
