"""Live trust changes (SIGHUP, `fedorch trust`): which domains this agent trusts, now.

The config's `trust.key_files` is the one source of truth; a reload makes the running
trust store match it. What a removed domain loses, and where:
- its signatures no longer verify (TrustStore.remove): every peer message it sends is
  refused at the input boundary and counted in fedorch_rejected_messages_total, and its
  gossip claims no longer count;
- it leaves the members view (Membership.members), so nothing is placed on it, and the
  Node's member view reads it unknown from its next update (on_members_change);
- with mutual TLS, its certificate root leaves the server's and channels' roots for new
  handshakes (the daemon's on_trust_change hook).
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING

from fedorch.core.identity.key_records import raw_key
from fedorch.core.identity.keys import KeyFileError
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import config_pb2

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.agent")


def reload_trust(agent: AgentContext, config: config_pb2.AgentConfig) -> tuple[list[str], list[str]]:
    """Trust exactly the domains of `config.trust.key_files` (and this one) from now
    on. A removed domain's next message fails its signature check (refused and
    counted), its gossip no longer verifies, and work it coordinates here is refused
    at its next message. Returns (added, removed); ([], []) when refused."""
    try:
        wanted = TrustStore.from_files(config.trust.key_files)
        added, removed = agent.trust.apply(wanted, keep=agent.domain)
    except (KeyFileError, ValueError) as e:
        log.error("trust reload refused, keeping the trusted domains: %s", e)
        return [], []
    del agent.config.trust.key_files[:]
    agent.config.trust.key_files.extend(config.trust.key_files)
    if added or removed:
        log.warning("trust changed: added %s, removed %s",
                    ", ".join(added) or "none", ", ".join(removed) or "none")
        for hook in agent.on_trust_change:
            hook()
    return added, removed


async def audit_trust_list(agent: AgentContext, added: list[str], removed: list[str]) -> None:
    """One trust_changed record per domain a reload added or removed."""
    statements = []
    for change, domains in (("add", added), ("remove", removed)):
        for domain in domains:
            key = agent.trust.key(domain) if change == "add" else None
            raw = base64.b64encode(raw_key(key)).decode() if key is not None else ""
            statements.append(agent.audit.trust_changed(change, domain, raw))
    if statements:
        await agent.store.apply(statements)
