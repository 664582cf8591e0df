"""The console's server: its HTTP listener and its change feed, both owned here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from aiohttp import web
from fedorch.runtime.config import parse_host_port
from fedorch.runtime.console.app import CLOSING, FEED, is_loopback, make_app
from fedorch.runtime.console.errors import ConsoleError
from fedorch.runtime.console.writes import WriteGate

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.console")
SHUTDOWN_TIMEOUT_S = 2.0


class Console:
    """The console's HTTP server and its change feed, both owned here."""

    def __init__(self, agent: AgentContext, listen: str, gate: WriteGate | None = None,
                 client: object | None = None) -> None:
        self.agent = agent
        self.listen = listen
        self.app = make_app(agent, gate, loopback=is_loopback(parse_host_port(listen)[0]),
                            client=client)
        self._runner: web.AppRunner | None = None
        self._feed_task: asyncio.Task | None = None
        self.port = 0  # the bound port, once started

    async def start(self) -> None:
        host, port = parse_host_port(self.listen)
        runner = web.AppRunner(self.app, access_log=None,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ConsoleError(f"cannot listen on {self.listen}: {e.strerror or e}") from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        self._feed_task = asyncio.create_task(self.app[FEED].run(), name="console feed")
        if not is_loopback(host):
            log.warning("the console listens on %s, beyond this host: it shows the whole "
                        "federation to whoever reaches it", self.listen)
        log.info("console on http://%s", self.listen)

    async def stop(self) -> None:
        """End the open event streams, then the server and the feed."""
        self.app[CLOSING].set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._feed_task is not None:
            self._feed_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed_task
            self._feed_task = None
