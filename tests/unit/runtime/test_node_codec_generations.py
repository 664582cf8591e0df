"""A reliable send's generation on the wire (records.py `gen`, pending.py
"Generations"): a message's and its acknowledgement's survive the codec, checked as a
peer's bytes are. `gen` is not compared (an acknowledgement is the same whichever send
it names), so it is read back by name."""

from __future__ import annotations

from fedorch.core.node.records import (
    AckMsg,
    CompensatedMsg,
    CompensateMsg,
    FinalMsg,
    PlacedMsg,
    ResultMsg,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.runtime.node_codec import node_codec

CODEC = node_codec()
GEN = 1_765_000_000_000_123  # a restart's wall milliseconds times 1000, and on


def test_each_reliable_message_and_its_acknowledgement_carry_their_generation():
    sent = [
        FinalMsg("d0.w", WorkflowState.FAILED, 2, gen=GEN),
        ResultMsg("d0.w", "s1", 1, StepState.SUCCEEDED, {"x": 1}, "", gen=GEN),
        PlacedMsg("d0.w", "s1", "d2", 1, "d1", gen=GEN),
        CompensateMsg("d0.w", "s1", 1, gen=GEN),
        CompensatedMsg("d0.w", "s1", 1, True, gen=GEN),
        AckMsg(("final", "d0.w", "d1"), gen=GEN),
    ]
    for msg in sent:
        back = CODEC.decode(CODEC.encode(msg), checked=True)
        assert type(back) is type(msg) and back.gen == GEN, msg
