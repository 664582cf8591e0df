"""The web console: the federation map, the workflows and each workflow's DAG, live.

Served by the agent daemon itself when `console_listen` is set (off by default), in the
daemon's event loop, reading the agent's own views; see app.py and docs/console.md.
Its web libraries are imported only when it is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fedorch.runtime.console.errors import ConsoleError

if TYPE_CHECKING:
    from fedorch.runtime.console.server import Console
    from fedorch.runtime.context import AgentContext
    from fedorch.runtime.interceptors import ClientAuth

__all__ = ["ConsoleError", "start_console"]


async def start_console(listen: str, agent: AgentContext, auth: ClientAuth | None = None,
                        client: object | None = None) -> Console | None:
    """The console when `listen` is set (None otherwise), started. With `auth` (the
    Client service's client keys and access rules) it serves write actions behind them;
    without, it is read-only. `client`: the agent's Client service, whose Cancel the
    console's cancel calls (console/writes.py)."""
    if not listen:
        return None
    from fedorch.runtime.console.server import Console
    from fedorch.runtime.console.writes import WriteGate

    gate = (WriteGate(agent.domain, auth.clients, auth.policy, auth.clock)
            if auth is not None else None)
    console = Console(agent, listen, gate, client)
    await console.start()
    return console
