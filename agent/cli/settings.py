"""What every command shares through the click context: the RPC deadline and the
identity it signs with. Light on purpose: `fedorch agent run` imports it before the
daemon, and nothing here may pull in a client library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fedorch.core.identity.clients import ClientIdentity

DEFAULT_PEER = "127.0.0.1:7101"
DEFAULT_RPC_TIMEOUT_S = 10.0


@dataclass
class Settings:
    rpc_timeout: float = DEFAULT_RPC_TIMEOUT_S
    identity: ClientIdentity | None = None
    agent_key: str = ""
