"""What the node engine's driver steps: the Node inside layers, each adding one rule.

The driver (runtime/driver.py) steps one object with the Node's interface (`step`,
`get_timer`, `ready`, `advance`). The node engine hands it the Node inside layers,
outermost first: `ReconfiguringNode` (reload.py: a SIGHUP's Reconfigure applied in
the turn), `StorageGate` (write_behind.py: NO to a new PREPARE while node.db or
agent.db cannot be written), `AuditedNode` (audit.py: the NO votes a turn sends, recorded), `EgressNode` (egress.py:
no step outputs leave for a domain egress refuses), and
`AuthorizedNode` (boundary.py: the authority table before the Node sees a message).
A layer changes what it is about and passes everything else on to `inner`; this
class is that passing on, so a layer writes only its own rule.

Every input of every turn goes down the layers (16 a workflow at a coordinator), so
a method a layer does not change is not a method of its own that calls `inner`'s: it
is `inner`'s bound method itself, set on the layer when it is made (a call through
five layers is five calls, not ten). So a layer's `inner` is the one it was made
with.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NodeLayer"]

_PASSED_ON = ("step", "get_timer", "ready", "advance")


class NodeLayer:
    def __init__(self, inner: Any) -> None:
        self.inner = inner
        cls = type(self)
        for name in _PASSED_ON:  # what this layer's class leaves to `inner`: inner's own
            own = getattr(inner, name, None)  # (a test's inner may have a part only)
            if own is not None and getattr(cls, name) is getattr(NodeLayer, name):
                setattr(self, name, own)

    # What a layer that changes nothing does (its instance has `inner`'s own instead).

    def step(self, now: float, event: object) -> None:
        self.inner.step(now, event)

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def ready(self) -> Any:
        return self.inner.ready()

    def advance(self, ready: Any) -> None:
        self.inner.advance(ready)
