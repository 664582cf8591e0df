"""What a Node builds for each message it steps, and what it costs to build it.

A Node's output (ready.py: an `Op` per durable change, an `Outgoing` per message sent,
the `Ready` of a turn) and its input from a peer (inputs.py: `Message`) are built
several times per message. They are named tuples: immutable, as the frozen dataclasses
they were, without a frozen dataclass's `__init__`, which stores each field through
`object.__setattr__`. These tests count those builds through a run of workflows
(a count, not a time) and hold the objects immutable.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter

import pytest
from fedorch.core.node import Message, inputs, ready
from fedorch.core.node.ready import Op, Outgoing, Ready

from tests.unit.core.node.two_nodes import run_workflows

_BUILT_PER_MESSAGE = (Op, Outgoing, Ready, Message)


def _run(count: int) -> int:
    """`count` one-step workflows coordinated by d0 and run on d1, to their end; the
    messages the two Nodes stepped."""
    nodes, _, stepped = run_workflows(count)
    assert all(nodes["d0"].state.rows[f"d0.w{i}"].finished for i in range(count))
    return stepped


def _builds(count: int) -> tuple[Counter, Counter, int]:
    """Per class of ready.py and inputs.py: the dataclass `__init__`s run, and the
    named tuples built (their `__new__`), over `_run(count)`."""
    inits: Counter = Counter()
    news: Counter = Counter()
    ours = {inputs.__name__, ready.__name__}

    def profile(frame, event, arg):
        if event != "call" or frame.f_code.co_filename != "<string>":
            return
        local = frame.f_locals
        if frame.f_code.co_name == "__init__" and "self" in local:
            cls = type(local["self"])
            if cls.__module__ in ours:
                inits[cls.__name__] += 1
        elif isinstance(local.get("_cls"), type) and local["_cls"].__module__ in ours:
            news[local["_cls"].__name__] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        stepped = _run(count)
    finally:
        sys.setprofile(previous)
    return inits, news, stepped


def test_the_objects_built_per_message_run_no_frozen_dataclass_init() -> None:
    inits, news, stepped = _builds(5)
    assert stepped > 0
    for cls in _BUILT_PER_MESSAGE:
        assert inits[cls.__name__] == 0, (cls.__name__, inits)
    # ...and they were built, many times per message: the count above is not vacuous.
    assert news["Op"] > stepped and news["Outgoing"] >= stepped and news["Message"] >= stepped
    assert news["Ready"] > 0


@pytest.mark.parametrize("value", [Op("rows", ready.PUT, "w", 1), Outgoing("d1", "m"),
                                   Message("d1", "m"), Ready((), (), (), (), (), ())])
def test_they_stay_immutable(value: object) -> None:
    """As immutable as the frozen dataclasses they replace (a value is shared)."""
    fields = getattr(type(value), "_fields", None) \
        or [f.name for f in dataclasses.fields(value)]  # type: ignore[arg-type]
    for name in fields:
        with pytest.raises(AttributeError):
            setattr(value, name, "changed")
