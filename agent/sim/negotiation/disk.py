"""What a simulated agent keeps on disk, and the messages it sends.

Both are the Node's (agent/core/node/records.py), re-exported here for the simulator's
parts; `Crash` is the simulator's own: raised at a crash point, only the disk survives.
"""

from __future__ import annotations

from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    CoordRow,
    Disk,
    FinalMsg,
    PrepareMsg,
    ResultMsg,
    Timing,
    VoteMsg,
    WfInfo,
    copy_hold,
)

__all__ = ["AckMsg", "ClaimAnswerMsg", "ClaimMsg", "CoordRow", "Crash", "Disk", "FinalMsg",
           "PrepareMsg", "ResultMsg", "Timing", "VoteMsg", "WfInfo", "copy_hold"]


class Crash(Exception):
    """Raised at a crash point: the agent stops here; only its disk survives."""
