"""fedorch: a federated orchestrator with no centre.

``from fedorch import Client`` (or ``AsyncClient``) gives the Python client
(fedorch.client). They load on first use, so that importing fedorch, as the `fedorch`
command does before anything else, stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fedorch.client import AsyncClient, Client

__all__ = ["AsyncClient", "Client"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import fedorch.client

        return getattr(fedorch.client, name)
    raise AttributeError(f"module 'fedorch' has no attribute {name!r}")
