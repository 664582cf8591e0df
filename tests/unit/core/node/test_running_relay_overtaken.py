"""The original coordinator back after its successor ended the workflow and died for
good, relaying a gone domain's result (core/node/running.py, `relay_gone_results`) to
a domain that ended the workflow in the later epoch: that domain answers the relay
with the later end and its proof (core/node/authority_steps.py,
`relayed_by_overtaken_original`; EndNotices.tell_overtaken), and the original follows
it. Nodes driven by hand with coordinator takeover on (test_domain_loss.py's)."""

from __future__ import annotations

import pytest
from fedorch.core.identity.authority import Refused
from fedorch.core.node import MemberState, Message, authority
from fedorch.core.node.records import ClaimAnswerMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import (
    WF,
    Federation,
    committed,
    d0_back_seeing_d1_dead,
    dies,
    result,
    step,
)


def ended_by_a_successor_dead_since(needs: tuple[str, ...] = ("s1",)) -> Federation:
    """s1 on d1 SUCCEEDED (its result reached d0 and d2); s2 on d2, needing `needs`,
    runs. d0 dies (DEAD in every view); d1 takes the workflow over in epoch 1, d2's
    result of s2 reaches d1, which ends the workflow SUCCEEDED at d2 and dies for good."""
    fed = committed([step("s1"), step("s2", needs=needs)], {"s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    assert result(fed, "d0", "s1")[1] is StepState.SUCCEEDED
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    fed.end("d2", "s2")
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.nodes["d2"].end_notices.end_proof(WF) is not None
    fed.silent.add("d1")  # dead for good
    fed.running["d1"] = set()
    fed.step("d2", MemberState("d1", "DEAD"))
    fed.step("d3", MemberState("d1", "DEAD"))
    fed.deliver()
    return fed


def test_the_original_back_relaying_a_gone_domains_result_is_told_the_later_end() -> None:
    """d0 comes back unaware of epoch 1: s2 still runs in its view, and its view says
    d1 DEAD, so it relays s1's result to d2 (s2 needs it), the only message it sends.
    d2 answers with the later end and d1's certificate, and d0 follows it and ends the
    workflow SUCCEEDED (takeover soak seed 87000414: d2 refused the relay as not the
    step's domain's, silently, and d0 stayed RUNNING for ever)."""
    fed = ended_by_a_successor_dead_since()
    fed.silent.discard("d0")
    fed.net.clear()
    d0 = d0_back_seeing_d1_dead(fed)
    assert d0.stats["result of a gone domain relayed by the coordinator"] >= 1
    assert fed.nodes["d2"].stats["original coordinator told the later end"] >= 1
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].epochs[WF] == (1, "d1")


def test_the_relay_is_answered_never_taken_and_only_from_the_original() -> None:
    """The relay reaches d2's Node, which answers it with the later end and does not
    acknowledge it (it comes again until d0 follows), nor takes it as a run of its
    sender; the same report from another domain is refused as before."""
    fed = ended_by_a_successor_dead_since()
    d2 = fed.nodes["d2"]
    relayed = ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {"by": "d1"}, "")
    authority.check(d2, "d0", relayed)  # let through: to be answered
    with pytest.raises(Refused) as refused:
        authority.check(d2, "d3", relayed)
    assert refused.value.reason == "not_step_domain"
    before = dict(fed.disks["d2"].results[WF])
    fed.net.clear()
    fed.step("d2", Message("d0", relayed))
    answers = [(dst, msg) for src, dst, msg in fed.net if src == "d2"]
    assert [dst for dst, _ in answers] == ["d0"]  # no AckMsg: it comes again until followed
    (_, answer), = answers
    assert isinstance(answer, ClaimAnswerMsg)
    assert (answer.held_epoch, answer.holder, answer.final) == (1, "d1",
                                                                 WorkflowState.SUCCEEDED)
    assert answer.won  # d1's certificate, so d0 can follow it
    assert fed.disks["d2"].results[WF] == before
    assert not any(key[0] == WF for key in fed.disks["d2"].compensations)


def test_a_relay_to_an_end_that_owes_a_saga_is_answered_and_not_acknowledged() -> None:
    """s1 owes a compensation (its `compensate` block) and s2 FAILED: d1, acting in
    epoch 1, ended the workflow FAILED and died for good. d0's relay of s1's SUCCEEDED
    reaches d2: answered with the later end, and not acknowledged, so that d0 relays
    it again until it follows (an answer lost on the way would otherwise leave it
    RUNNING for ever); nor is it taken for the saga as a run of s1 at d0, which only
    relayed it (a SUCCEEDED result a saga owes was acknowledged by the ended branch of
    running.py, and taken as a run of its sender's)."""
    s1 = spec_pb2.StepSpec(id="s1", capability="a", compensate=spec_pb2.Compensation())
    fed = committed([s1, step("s2", needs=("s1",))], {"s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    fed.end("d2", "s2", ok=False)
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert fed.nodes["d2"].end_notices.end_proof(WF) is not None
    dies(fed, "d1", told=("d2", "d3"))
    before = (dict(fed.disks["d2"].results[WF]), dict(fed.disks["d2"].compensations))
    fed.net.clear()
    relayed = ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {"by": "d1"}, "")
    authority.check(fed.nodes["d2"], "d0", relayed)
    fed.step("d2", Message("d0", relayed))
    assert [(dst, type(msg)) for src, dst, msg in fed.net] == [("d0", ClaimAnswerMsg)]
    assert (dict(fed.disks["d2"].results[WF]), dict(fed.disks["d2"].compensations)) \
        == before
