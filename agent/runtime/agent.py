"""The agent: the composition root that builds the parts of an agent around one
AgentContext.

One Agent per daemon. The shared state and services (config, store of agent.db,
clock, signing, trust, peers, metrics, executors, tasks) are in AgentContext
(runtime/context.py); the parts (membership, the audit log, key changes) take that
context and are built here, so none imports another's constructor and none imports this
module. The negotiation and the steps are the Node's: `NodeAgent`
(node_engine/engine.py) builds the Node and its driver around an Agent and tells it the
Node's participant (`node_participant`: the free capacity this domain's record
publishes), its read view (`node_view`: what the console reads) and what to call after
a reload (`node_reloaded`).
"""

from __future__ import annotations

import asyncio
import logging
import random

from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime import logs
from fedorch.runtime.audit import Audit
from fedorch.runtime.context import BROKEN_INVARIANTS, AgentContext, Stop
from fedorch.runtime.key_changes import KeyChanges
from fedorch.runtime.live_trust import audit_trust_list, reload_trust
from fedorch.runtime.membership import Membership
from fedorch.runtime.ports import Clock
from fedorch.runtime.store.store import Store

log = logging.getLogger("fedorch.agent")

__all__ = ["Agent", "run_until_stopped"]


class Agent(AgentContext):
    RELOADABLE = ("labels", "capabilities", "policy", "log_level", "trust", "key_file")

    def __init__(self, config: config_pb2.AgentConfig, store: Store, *,
                 clock: Clock | None = None, rng: random.Random | None = None):
        super().__init__(config, store, clock=clock, rng=rng)
        # This domain's own key chain (after rotations) before anything is verified.
        self.key_changes = KeyChanges(self)
        self.key_changes.own_records_at_start()
        self.audit = Audit(self)

    async def open(self) -> None:
        """Build what a peer message needs (membership), before any port serves."""
        if self.membership is not None:
            return
        # A restarted member must outrank its own earlier claims at once, so its
        # incarnation starts above anything it can have used before. Wall time, since it
        # must survive restarts; the stored one keeps it rising when the wall clock was
        # set back meanwhile.
        stored = await self.store.get_meta("incarnation")
        incarnation = max(int(stored or 0) + 1, self.now_ms())
        await self.store.set_meta("incarnation", str(incarnation))
        self.incarnation = incarnation  # this life's: the audit log's start record names it
        await self.key_changes.load()
        self.membership = Membership(self, incarnation)

    async def reload(self, config: config_pb2.AgentConfig) -> list[str]:
        """Apply a re-read config (SIGHUP): log level, labels, capabilities, policy, trust;
        then the Node's (`node_reloaded`).

        Returns the fields that changed but need a restart (they are left as they were).
        Steps already running keep the executor they started with.
        Trust is applied first: a trust list that does not load (a bad file, a changed key)
        is logged and leaves the running trust as it was, the rest still reloads.
        """
        if config.log_level != self.config.log_level:
            # First, so that what the reload logs is already at the new level.
            log.warning("reload: log level %s -> %s", self.config.log_level or "info",
                        config.log_level or "info")
            logs.set_level(config.log_level or "info")
            self.config.log_level = config.log_level
        await audit_trust_list(self, *reload_trust(self, config))
        await self.key_changes.reload_own(config)
        fixed = [f.name for f in config_pb2.AgentConfig.DESCRIPTOR.fields
                 if f.name not in self.RELOADABLE
                 and getattr(config, f.name) != getattr(self.config, f.name)]
        self._set_capabilities(config)
        self.config.labels.clear()
        self.config.labels.update(config.labels)
        del self.config.capabilities[:]
        self.config.capabilities.extend(config.capabilities)
        self.config.policy.CopyFrom(config.policy)
        await self.audit.policy_reloaded()
        self.publish_record_if_changed(force=True)
        log.info("configuration reloaded: %d capabilities", len(self.capacities))
        if self.node_reloaded is not None:
            self.node_reloaded()
        return fixed

    async def run(self, ready: asyncio.Event | None = None) -> None:
        """Run until stop(): the start record, then the background loops, all owned here."""
        await self.open()
        assert self.membership is not None
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            await self.audit.started(self.incarnation)
            self.publish_record_if_changed(force=True)
            tg.create_task(self._essential(self.membership.run(), "membership"),
                           name="membership")
            tg.create_task(self._essential(self.key_changes.run(), "key records"),
                           name="key records")
            self.ready.set()
            if ready is not None:
                ready.set()
            await self._stopping.wait()
            raise Stop()


async def run_until_stopped(agent: Agent, ready: asyncio.Event | None = None) -> None:
    """Run the agent until it stops; `agent.fatal` says why when it stopped on its own."""
    try:
        await agent.run(ready)
    except* Stop:
        pass
    except* BROKEN_INVARIANTS as group:  # while starting, before any task owned it
        error = group.exceptions[0]
        log.critical("broken invariant while starting; stopping the agent", exc_info=error)
        agent.fail(f"broken invariant while starting: {type(error).__name__}: {error}")
