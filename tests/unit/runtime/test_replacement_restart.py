"""A coordinator restarted in the middle of a re-placement round (agent/runtime/
replacement.py): the rounds it recorded as begun and never closed are decided ABORT
where no decision is on record (a candidate holding a YES for one is answered, and
releases its slots), and the next round is numbered above every recorded one, so no
round number is used twice."""

from __future__ import annotations

from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.agent import Active
from fedorch.runtime.replacement import CUT_SHORT
from fedorch.runtime.store.replacement_rounds import begun_statement, cut_short, ended_statement
from fedorch.runtime.store.store import WorkflowRow

WF = "alpha.000000000001aaaaaaaa"


def _decision(raw: bytes) -> tuple[str, peer_pb2.Decision]:
    body = peer_pb2.Body.FromString(peer_pb2.Envelope.FromString(raw).body)
    return body.sender, body.decision


async def test_rounds_a_restart_cut_short_are_aborted_and_never_reused(agent) -> None:
    store = agent.store
    row = WorkflowRow(id=WF, name="w", coordinator="alpha", state="RUNNING", spec=b"",
                      placement={"a": "alpha", "b": "beta"}, round=1)
    await store.save_workflow(row)
    replacements = agent.coordination.loss.replacements
    # An earlier life: one core ran rounds 2..4 and closed; the next began 5..7, decided
    # round 5 ABORT (its candidate said NO), sent round 6's PREPARE, and the agent stopped.
    await store.apply([begun_statement(WF, 2, 4, "b"), ended_statement(WF, 2),
                       begun_statement(WF, 5, 7, "b")])
    await store.record_decision(WF, 5, "ABORT", b"round 5's own")
    assert await replacements._first_free_round(WF, row.round, 0) == 8

    # Before: a candidate holding a YES for round 6 would hear "not begun" at each lease.
    await replacements._abort_cut_short(Active(row), None)
    assert await store.get_decision(WF, 5) == ("ABORT", b"round 5's own")  # write-once
    for round_ in (6, 7):
        outcome, raw = await store.get_decision(WF, round_)
        sender, decision = _decision(raw)
        assert (outcome, sender, decision.round, decision.reason) == (
            "ABORT", "alpha", round_, CUT_SHORT)
        assert decision.outcome == peer_pb2.OUTCOME_ABORT
    assert await cut_short(store, WF) == []
    assert await store.get_decision(WF, 3) is None  # a closed core's rounds: untouched
    answer = await agent.coordination.answer_query(WF, 6)
    assert answer.known and _decision(answer.decision.SerializeToString())[1].round == 6
    # Asked again: nothing more is written (no open record is left).
    await replacements._abort_cut_short(Active(row), None)
    assert await replacements._first_free_round(WF, row.round, 0) == 8
