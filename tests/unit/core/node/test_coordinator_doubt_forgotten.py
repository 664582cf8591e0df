"""Past a round's life at the Node: acceptors that forgot it answer PAST_LIFE, and a
coordinator restored past it stops its ballot on their answers.

The stories of test_retention.py (seed 201539) and test_coordinator_doubt.py (seed
137500119), later: the extra acceptor d1 (and d2) forgot the round (its life, 22.5 s,
and late_message_s more: 27.5 s) before the one in doubt asks.
"""

from __future__ import annotations

from fedorch.core.negotiation.coordinator import Phase
from fedorch.core.negotiation.messages import (
    AnswerStatus,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
)
from fedorch.core.node import Submit
from fedorch.core.node.records import PrepareMsg
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_retention import Federation

LIFE = Retention(keep_ended_s=20.0, max_ended_workflows=0, late_message_s=5.0)
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])


def test_an_acceptor_that_forgot_the_round_answers_a_participant_past_life() -> None:
    """d2 (participant, in doubt) asks d1 after d1 forgot the round: PAST_LIFE, where
    it answered NOT_PREPARED as if it never heard of the round."""
    f = Federation(LIFE)
    wf = "d0.w1"
    key = (wf, 1)
    f.drop = lambda src, dst, msg: src == "d0" and dst == "d2" \
        and not isinstance(msg, PrepareMsg)
    f.step("d0", Submit(wf, SPEC, placement={"s0": "d2"}))
    f.run_until(0.5)
    cut_off = {"d0", "d2"}
    f.drop = lambda src, dst, msg: src != dst and bool({src, dst} & cut_off)
    f.run_until(60.0)
    assert key not in f.disks["d1"].acceptor and f.disks["d1"].horizons["d0"] > 0
    answers: list[tuple[str, object]] = []
    queries: list[DecisionQuery] = []

    def watch(src: str, dst: str, msg: object) -> bool:
        if src == "d1" and dst == "d2" and isinstance(msg, DecisionAnswer):
            answers.append((src, msg.status))
        if src == "d2" and dst == "d1" and isinstance(msg, DecisionQuery):
            queries.append(msg)
        return src != dst and "d0" in (src, dst)

    f.drop = watch
    f.run_until(100.0)
    tx = f.disks["d2"].holds[key].tx
    assert queries and all((q.coordinator, q.created_ms) == ("d0", tx.created_ms)
                           for q in queries)
    assert answers and set(answers) == {("d1", AnswerStatus.PAST_LIFE)}
    assert key not in f.disks["d2"].learned  # nothing decided: in doubt, held
    assert f.nodes["d2"].participant.status(key) == "prepared"


def test_a_coordinator_back_after_its_round_was_forgotten_stops_its_ballot() -> None:
    """d0 is down from 0.5 s to 40 s, after d1 and d2 forgot its round: restored, it
    settles its COMMIT proposal with a recovery ballot, which d1 and d2 refuse below
    their horizon; its ballot not over in query_interval_s, it asks, d1 and d2 answer
    PAST_LIFE (they forgot it), and it runs no ballot any more. It stays in doubt,
    NEGOTIATING; restarted again, the same. (Its wall clock alone does not stop the
    ballot at its restore: test_negotiation_restore_clock_step.py.)"""
    f = Federation(LIFE)
    wf = "d0.w1"
    key = (wf, 1)
    f.drop = lambda src, dst, msg: dst == "d0" and src != "d0"  # nothing comes back
    f.step("d0", Submit(wf, SPEC, placement={"s0": "d0"}))
    f.run_until(0.5)
    f.drop = lambda src, dst, msg: "d0" in (src, dst) and src != dst  # d0 is down
    f.run_until(40.0)
    assert all(key not in f.disks[a].acceptor for a in ("d1", "d2"))  # forgotten
    sent: list[tuple[float, str, str, object]] = []

    def watch(src: str, dst: str, msg: object) -> bool:
        sent.append((f.now, src, dst, msg))
        return False

    f.drop = watch
    f.nodes["d0"] = f.make_node("d0")  # back, from its disk
    node = f.nodes["d0"]
    assert node.coordinators[wf].phase is Phase.DECIDING
    f.flush("d0")
    f.run_until(60.0)
    f.nodes["d0"] = f.make_node("d0")  # and once more
    f.flush("d0")
    f.run_until(80.0)
    ballots = [t for t, src, _, m in sent if src == "d0" and isinstance(m, PaxosPrepare)]
    assert ballots and all(t <= 40.0 + 3.0 or 60.0 <= t <= 60.0 + 3.0 for t in ballots), ballots
    assert {(src, m.status) for _, src, dst, m in sent  # d0's own acceptor: young again
            if dst == "d0" != src and isinstance(m, DecisionAnswer)} \
        == {("d1", AnswerStatus.PAST_LIFE), ("d2", AnswerStatus.PAST_LIFE)}
    assert f.nodes["d0"].coordinators[wf].in_doubt_past_life()
    assert key not in f.disks["d0"].learned and key not in f.disks["d0"].records
    assert f.disks["d0"].rows[wf].state is WorkflowState.NEGOTIATING
    assert f.nodes["d0"].participant.status(key) == "prepared"
