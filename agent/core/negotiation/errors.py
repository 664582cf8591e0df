"""Protocol errors at the negotiation cores' one input boundary (h11 style).

LocalProtocolError: this agent's own code drove a core wrongly (a bug here).
RemoteProtocolError: a peer sent something the protocol does not allow in the
current state; it becomes a refusal on the wire, never a crash.
"""


class ProtocolError(Exception):
    pass


class LocalProtocolError(ProtocolError):
    pass


class RemoteProtocolError(ProtocolError):
    pass
