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

__all__ = ["ConsoleError", "start_console"]


async def start_console(listen: str, agent: AgentContext) -> Console | None:
    """The console when `listen` is set (None otherwise), started."""
    if not listen:
        return None
    from fedorch.runtime.console.server import Console

    console = Console(agent, listen)
    await console.start()
    return console
