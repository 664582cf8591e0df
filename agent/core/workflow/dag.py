"""The step graph of a workflow spec: order, fan-out and cycles.

Pure functions over ``WorkflowSpec`` (or a plain ``needs`` mapping) so that validation,
placement and progress tracking agree on one reading of ``needs``. All loops are
iterative: a 1000-step chain must not hit Python's recursion limit.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

from fedorch.gen.fedorch.v1 import spec_pb2


def find_cycle(needs: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle in ``needs`` (step id -> the ids it needs), or None.

    The cycle comes back closed and in the direction of ``needs``: ``["a", "b", "a"]``
    means a needs b and b needs a. Names that are not keys are ignored (reporting them is
    the validator's job). Deterministic: keys and their needs are explored in order.
    """
    done: set[str] = set()
    for root in needs:
        if root in done:
            continue
        path: list[str] = [root]
        on_path: dict[str, int] = {root: 0}
        cursors: list[int] = [0]
        while path:
            node = path[-1]
            targets = needs[node]
            if cursors[-1] < len(targets):
                target = targets[cursors[-1]]
                cursors[-1] += 1
                if target in on_path:
                    return path[on_path[target] :] + [target]
                if target in needs and target not in done:
                    on_path[target] = len(path)
                    path.append(target)
                    cursors.append(0)
            else:
                done.add(node)
                del on_path[node]
                path.pop()
                cursors.pop()
    return None


def _needs_of(spec: spec_pb2.WorkflowSpec) -> dict[str, list[str]]:
    return {step.id: list(step.needs) for step in spec.steps}


def topological_order(spec: spec_pb2.WorkflowSpec) -> list[str]:
    """Step ids such that every step comes after the steps it needs.

    Stable: among steps that are ready at the same time, the one written first in the
    spec comes first, so the order is predictable for users and reproducible in tests.
    Raises ValueError on a cycle, a duplicate id or a need naming no step
    (``validate_spec`` rejects all three).
    """
    index = {step.id: i for i, step in enumerate(spec.steps)}
    if len(index) != len(spec.steps):
        raise ValueError("step ids are not unique")
    waiting: dict[str, int] = {}
    for step in spec.steps:
        unknown = [n for n in step.needs if n not in index]
        if unknown:
            raise ValueError(f"step {step.id!r} needs unknown step {unknown[0]!r}")
        waiting[step.id] = len(set(step.needs))
    after = downstream(spec)
    ready = [index[s] for s, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        step_id = spec.steps[heapq.heappop(ready)].id
        order.append(step_id)
        for nxt in after[step_id]:
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, index[nxt])
    if len(order) != len(spec.steps):
        cycle = find_cycle(_needs_of(spec)) or []
        raise ValueError(f"needs form a cycle: {' -> '.join(cycle)}")
    return order


def downstream(spec: spec_pb2.WorkflowSpec) -> dict[str, list[str]]:
    """For every step id, the ids of the steps that need it, in spec order.

    Every step is a key, with an empty list when nothing needs it; a step listed twice in
    another's ``needs`` appears once.
    """
    result: dict[str, list[str]] = {step.id: [] for step in spec.steps}
    for step in spec.steps:
        for need in dict.fromkeys(step.needs):
            if need in result:
                result[need].append(step.id)
    return result
