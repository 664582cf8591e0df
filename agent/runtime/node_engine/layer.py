"""What the node engine's driver steps: the Node inside layers, each adding one rule.

The driver (runtime/driver.py) steps one object with the Node's interface (`step`,
`get_timer`, `ready`, `advance`). The node engine hands it the Node inside layers,
outermost first: `ReconfiguringNode` (reload.py: a SIGHUP's Reconfigure applied in
the turn), `StorageGate` (write_behind.py: NO to a new PREPARE while node.db cannot
be written), `AuditedNode` (audit.py: the NO votes a turn sends, recorded), `EgressNode` (egress.py:
no step outputs leave for a domain egress refuses), and
`AuthorizedNode` (boundary.py: the authority table before the Node sees a message).
A layer changes what it is about and passes everything else on to `inner`; this
class is that passing on, so a layer writes only its own rule.
"""

from __future__ import annotations

from typing import Any

__all__ = ["NodeLayer"]


class NodeLayer:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def step(self, now: float, event: object) -> None:
        self.inner.step(now, event)

    def get_timer(self) -> float | None:
        return self.inner.get_timer()

    def ready(self) -> Any:
        return self.inner.ready()

    def advance(self, ready: Any) -> None:
        self.inner.advance(ready)
