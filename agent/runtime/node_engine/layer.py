"""What the node engine's driver steps: the Node inside layers, each adding one rule.

The driver (runtime/driver.py) steps one object with the Node's interface (`step`,
`get_timer`, `ready`, `advance`), and `step_batch` (below). The node engine hands it
the Node inside layers, outermost first: `ObservedNode` (observed.py: the NO votes a
turn sends, counted and logged), `AuditedNode` (audit.py: the NO votes a turn sends,
recorded), `EgressNode` (egress.py: no step outputs leave for a domain egress
refuses), `ReconfiguringNode` (reload.py: a SIGHUP's Reconfigure applied in the
turn), `StorageGate` (write_behind.py: NO to a new PREPARE while node.db or agent.db
cannot be written), and `AuthorizedNode` (boundary.py: the authority table before
the Node sees a message). A layer changes what it is about and passes everything
else on to `inner`; this class is that passing on, so a layer writes only its own
rule.

Every input of every turn goes down the layers (16 a workflow at a coordinator), so
a method a layer does not change is not a method of its own that calls `inner`'s: it
is `inner`'s bound method itself, set on the layer when it is made (a call through
five layers is five calls, not ten). So a layer's `inner` is the one it was made
with.

One pass per turn. The driver hands the layers a turn's inputs as one call,
`step_batch(now, events, refuse)`, not one `step` per input: each layer does its
per-input rule in a loop of its own (or, where its rule allows, once for the turn)
and hands the rest of the turn on in one call, and only the innermost loop steps the
Node input by input. A layer's rule still holds input by input:
- a `RemoteProtocolError` refuses that input alone: the loop that stepped it calls
  `refuse(input, error)` and goes on with the next (the driver counts and logs it);
- any other exception is a broken invariant: it leaves the loop as `StepBroken`,
  naming the input, the error as its cause, and the driver stops;
- a rule that reads the Node's state (the authority table, the storage gate's "is
  this PREPARE new") is applied just before that input is stepped, after the inputs
  before it were, so it sees what it saw one input at a time;
- a layer whose rule may act on some input of this turn in a way that hangs on the
  order (a `Reconfigure` in the turn; a store that cannot be written, so that each
  new PREPARE gets a NO) steps that turn one input at a time, with its `step`.
A layer that changes `step` but not `step_batch` gets the one-by-one loop over its
`step` (`step_each`), so a new layer is right before it is fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any

from fedorch.core.negotiation.errors import RemoteProtocolError

__all__ = ["NodeLayer", "Refuse", "StepBroken", "step_each"]

_PASSED_ON = ("step", "get_timer", "ready", "advance")

# Told of each input refused in a batch, with its refusal (the driver counts and logs).
Refuse = Callable[[object, RemoteProtocolError], None]


class StepBroken(Exception):
    """An input of a batch raised something other than a refusal: `input` is that
    input, the error is this exception's cause."""

    def __init__(self, input: object) -> None:
        super().__init__(f"broken invariant on a {type(input).__name__} input")
        self.input = input


def step_each(step: Callable[[float, object], None], now: float,
              events: Iterable[object], refuse: Refuse) -> None:
    """The turn one input at a time through `step`: a refusal refuses that input
    alone; anything else stops the turn as `StepBroken`."""
    for event in events:
        try:
            step(now, event)
        except RemoteProtocolError as e:
            refuse(event, e)
        except Exception as e:
            raise StepBroken(event) from e


def batch_of(inner: Any) -> Callable[[float, Sequence[object], Refuse], None]:
    """`inner`'s `step_batch`, or the one-by-one loop over its `step` (a Node)."""
    own = getattr(inner, "step_batch", None)
    return own if own is not None else partial(step_each, inner.step)


class NodeLayer:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        cls = type(self)
        for name in _PASSED_ON:  # what this layer's class leaves to `inner`: inner's own
            own = getattr(inner, name, None)  # (a test's inner may have a part only)
            if own is not None and getattr(cls, name) is getattr(NodeLayer, name):
                setattr(self, name, own)
        # The turn handed on: inner's own batch (or its loop), one call per turn.
        self.pass_batch = batch_of(inner) if hasattr(inner, "step") else None
        if cls.step is NodeLayer.step and cls.step_batch is NodeLayer.step_batch \
                and self.pass_batch is not None:
            self.step_batch = self.pass_batch  # a layer without a step rule: inner's

    # What a layer that changes nothing does (its instance has `inner`'s own instead).

    def step(self, now: float, event: object) -> None:
        self.inner.step(now, event)

    def step_batch(self, now: float, events: Sequence[object], refuse: Refuse) -> None:
        """A turn's inputs (see the header); a layer whose `step` has a rule of its own
        and no batch rule: its `step`, input by input."""
        step_each(self.step, now, events, refuse)

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def ready(self) -> Any:
        return self.inner.ready()

    def advance(self, ready: Any) -> None:
        self.inner.advance(ready)
