"""A coordinator back after its round's life: in doubt, it stops its recovery ballot.

The simulator's seed 137500119 (`--keep-ended-s 5 --end 300 --one-way`), by hand. d0
coordinates a workflow whose one step is its own, so d1 and d2 are extra acceptors.
Its Accept of ballot 0 reaches them, their Accepted never comes back (COMMIT chosen,
nobody knows), and d0 goes down. It comes back past the round's life at d1 and d2 (22.5
s) but before they forget the round (27.5 s): its restore settles its COMMIT proposal
with a recovery ballot, which d1 and d2 refuse (RoundPastLife: nothing comes back). Its
ballot not over in query_interval_s, it asks them too, and on their PAST_LIFE answers
runs no ballot any more: it stays in doubt, NEGOTIATING, its reservation held,
counted; asked again only every query_interval_s.
"""

from __future__ import annotations

import pytest
from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.acceptor import RoundPastLife
from fedorch.core.negotiation.coordinator import Phase
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    AnswerStatus,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
)
from fedorch.core.node import Submit
from fedorch.core.node.authority import check
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_retention import Federation

LIFE = Retention(keep_ended_s=20.0, max_ended_workflows=0, late_message_s=5.0)


def test_a_coordinator_back_past_its_rounds_life_stops_balloting_and_stays_in_doubt() -> None:
    f = Federation(LIFE)
    wf = "d0.w1"
    key = (wf, 1)
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])
    f.drop = lambda src, dst, msg: dst == "d0" and src != "d0"  # nothing comes back
    f.step("d0", Submit(wf, spec, placement={"s0": "d0"}))
    f.run_until(0.5)
    for a in ("d1", "d2"):
        record = f.disks[a].acceptor[key]
        assert record.tx.participants == ("d0",) and record.accepted_value.commit
    f.drop = lambda src, dst, msg: "d0" in (src, dst) and src != dst  # d0 is down
    f.run_until(24.0)
    f.nodes["d0"] = f.make_node("d0")  # back, from its disk
    assert f.nodes["d0"].coordinators[wf].phase is Phase.DECIDING
    sent: list[tuple[float, str, str, object]] = []
    refused: list[RemoteProtocolError] = []
    f.refused = refused.append

    def watch(src: str, dst: str, msg: object) -> bool:
        sent.append((f.now, src, dst, msg))
        return False

    f.drop = watch
    f.flush("d0")  # its restore's actions: the ballot, and the questions
    f.run_until(60.0)
    assert any(isinstance(e, RoundPastLife) for e in refused)  # its ballot, refused
    ballots = [t for t, src, _, msg in sent if src == "d0" and isinstance(msg, PaxosPrepare)]
    assert ballots and max(ballots) <= 24.0 + 2.0, ballots  # none after its questions
    questions = [t for t, src, dst, msg in sent
                 if src == "d0" and dst != "d0" and isinstance(msg, DecisionQuery)]
    assert len([t for t in questions if t > 30.0]) <= 2 * (60.0 - 30.0) / 2.0 + 2
    node = f.nodes["d0"]
    assert node.stats["in doubt past the round's life"] == 1
    assert node.coordinators[wf].in_doubt_past_life()
    # In doubt: never decided wrongly, the workflow NEGOTIATING, its reservation held.
    assert key not in f.disks["d0"].learned and key not in f.disks["d0"].records
    assert f.disks["d0"].rows[wf].state is WorkflowState.NEGOTIATING
    assert node.participant.status(key) == "prepared"
    # The extra acceptors' answers pass the authority table (they are asked: their
    # PAST_LIFE is what stops the ballot); a domain of no part in the round's does not.
    for acceptor in ("d1", "d2"):
        check(node, acceptor, DecisionAnswer(key, acceptor, AnswerStatus.PAST_LIFE))
    with pytest.raises(Refused):
        check(node, "mallory", DecisionAnswer(key, "mallory", AnswerStatus.PAST_LIFE))
