"""One agent's cores and the routing between them: the Node (see node.py)."""

from fedorch.core.node.node import (
    Acks,
    Cancel,
    MemberState,
    MemberViews,
    Message,
    Node,
    StepEnded,
    Submit,
    Tick,
)
from fedorch.core.node.ready import Ready

__all__ = ["Acks", "Cancel", "MemberState", "MemberViews", "Message", "Node", "Ready", "StepEnded", "Submit", "Tick"]
