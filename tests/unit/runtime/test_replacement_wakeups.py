"""Timers, not ticks, in the re-placement path: the driver of a re-placement round
(agent/runtime/replacement.py) waits for its round's news, its round's deadline, or the
end of its workflow, never on a periodic look; a successor's wait for a certificate of
fresh grants before a round (agent/runtime/epoch_certs.py) looks again when a grant is
held, its bound only ending it. Both count each wake-up (fedorch_loop_wakeups_total{loop})."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from fedorch.core.negotiation.coordinator import Coordinator, Phase
from fedorch.core.workflow.progress import Progress
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.agent import Active, Agent
from fedorch.runtime.epoch_certs import EpochCertificates
from fedorch.runtime.replacement import _OneStep
from fedorch.runtime.store.store import WorkflowRow

from tests.unit.runtime.waiting import until as _until

WF = "alpha.000000000001dddddddd"
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="a", capability="x")])
LONG_S = 3600.0  # a round's (or a wait's) bound far beyond the test: only events end it


def _wakeups(agent: Agent, loop: str) -> float:
    return agent.metrics.registry.get_sample_value("fedorch_loop_wakeups_total",
                                                   {"loop": loop}) or 0.0


def _active(agent: Agent, placement: dict[str, str]) -> Active:
    row = WorkflowRow(id=WF, name="w", coordinator="alpha", state="RUNNING",
                      spec=SPEC.SerializeToString(), placement=dict(placement), round=1)
    active = agent.active[WF] = Active(row, Progress(SPEC, placement, "alpha"))
    return active


# ---- the re-placement driver -----------------------------------------------------------


async def test_the_re_placement_driver_parks_on_its_round_s_deadline_and_wakes_at_the_end(
        agent: Agent, monkeypatch) -> None:
    replacements = agent.coordination.loss.replacements
    active = _active(agent, {"a": "lost"})
    prepares: list[int] = []

    async def no_answer(active, spec, action, votes) -> None:
        prepares.append(action.round)  # beta is silent: no vote comes

    monkeypatch.setattr(replacements, "_prepare", no_answer)
    core = Coordinator(WF, placer=lambda excluded: _OneStep({"a": "beta"}), max_rounds=1,
                       prepare_timeout_s=LONG_S, first_round=2)
    driving = asyncio.create_task(replacements._drive(active, SPEC, core, "a"))
    try:
        await _until(lambda: WF in replacements.parked, "the driver to park")
        # Its only deadline is its round's: no look once a second for the end.
        assert prepares == [2] and core.phase is Phase.PREPARING
        assert replacements.parked[WF] == core.get_timer()
        assert core.get_timer() > agent.now() + LONG_S / 2
        assert replacements.wakeups == 0 and _wakeups(agent, "re-placement driver") == 0
        # The workflow ends (every end goes through finished): the driver wakes at once,
        # cancels the round, and its ABORT is on record.
        agent.finished(WF)
        async with asyncio.timeout(30):
            finished = await driving
    finally:
        driving.cancel()
    assert finished is not None and finished.cancelled and not finished.committed
    assert replacements.wakeups == 1 and _wakeups(agent, "re-placement driver") == 1
    assert WF not in replacements.parked
    decision = await agent.store.get_decision(WF, 2)
    assert decision is not None


async def test_the_end_of_another_workflow_does_not_wake_a_re_placement_driver(
        agent: Agent, monkeypatch) -> None:
    replacements = agent.coordination.loss.replacements
    active = _active(agent, {"a": "lost"})

    async def no_answer(active, spec, action, votes) -> None:
        return None

    monkeypatch.setattr(replacements, "_prepare", no_answer)
    core = Coordinator(WF, placer=lambda excluded: _OneStep({"a": "beta"}), max_rounds=1,
                       prepare_timeout_s=LONG_S, first_round=2)
    driving = asyncio.create_task(replacements._drive(active, SPEC, core, "a"))
    try:
        await _until(lambda: WF in replacements.parked, "the driver to park")
        agent.finished("alpha.000000000002eeeeeeee")  # not its workflow
        for _ in range(20):  # let the loop run: a woken driver would have turned
            await asyncio.sleep(0)
        assert replacements.wakeups == 0 and WF in replacements.parked
        assert not driving.done() and core.phase is Phase.PREPARING
    finally:
        driving.cancel()
        await asyncio.gather(driving, return_exceptions=True)


# ---- the wait for an epoch certificate ---------------------------------------------------


def _successor(agent: Agent, electorate: set[str]) -> tuple[EpochCertificates, object]:
    """alpha acting in epoch 1 of WF, with the given electorate: its certificates shell,
    built over a stand-in for the takeover shell (no claims sent)."""
    _active(agent, {"a": "beta"})
    core = SimpleNamespace(role=Role.ACTING, epoch=1, electorate=frozenset(electorate))
    takeovers = SimpleNamespace(agent=agent, core_of=lambda wf: core if wf == WF else None,
                                claim=lambda active, core, action: None)
    return EpochCertificates(takeovers), core


async def _grant(certificates: EpochCertificates, agent: Agent, core, voter: str,
                 workflow_id: str = WF) -> None:
    answer = peer_pb2.TakeoverAnswer(workflow_id=workflow_id, epoch=1, granted=True,
                                     held_epoch=1, holder="alpha", committed_round=1,
                                     electorate=sorted(core.electorate))
    envelope = peer_pb2.Envelope(body=peer_pb2.Body(takeover_answer=answer).SerializeToString(),
                                 signature=b"signed by " + voter.encode())
    row = agent.active[WF].row
    if workflow_id != WF:
        row = WorkflowRow(id=workflow_id, name="w", coordinator="alpha", state="RUNNING",
                          spec=SPEC.SerializeToString(), placement={"a": "beta"}, round=1)
    await certificates.keep(row, core, voter, answer, envelope)


async def test_the_certificate_wait_parks_until_each_grant_and_returns_at_the_majority(
        agent: Agent) -> None:
    certificates, core = _successor(agent, {"alpha", "beta", "gamma", "delta", "eps"})
    assert certificates.certificate(WF) is None  # alpha alone: 1 of 5
    waiting = asyncio.create_task(certificates.fresh_certificate(WF, LONG_S))
    try:
        await _until(lambda: certificates.waiting(WF), "the wait to park")
        # A grant for another workflow is no news for this wait.
        await _grant(certificates, agent, core, "beta", workflow_id="alpha.000000000003ffffffff")
        for _ in range(20):  # let the loop run: a woken wait would have turned
            await asyncio.sleep(0)
        assert certificates.wakeups == 0 and not waiting.done()
        # beta grants: the wait looks (2 of 5, not yet a majority) and parks again.
        await _grant(certificates, agent, core, "beta")
        await _until(lambda: certificates.wakeups == 1, "the wait to look at beta's grant")
        assert not waiting.done() and certificates.waiting(WF)
        # gamma grants: a majority, and the wait returns the certificate at once.
        await _grant(certificates, agent, core, "gamma")
        async with asyncio.timeout(30):
            cert, why = await waiting
    finally:
        waiting.cancel()
    assert cert is not None and why == "" and cert.epoch == 1 and cert.coordinator == "alpha"
    assert len(cert.grants) == 3
    assert certificates.wakeups == 2 and _wakeups(agent, "epoch certificate wait") == 2
    assert not certificates.waiting(WF)  # nothing left parked on its grants


async def test_kept_grants_count_for_no_round_yet_still_prove_the_epoch(
        agent: Agent) -> None:
    certificates, core = _successor(agent, {"alpha", "beta", "gamma"})
    await _grant(certificates, agent, core, "beta")  # kept from the takeover
    assert certificates.certificate(WF) is not None
    async with asyncio.timeout(30):
        cert, why = await certificates.fresh_certificate(WF, 0.05)
    assert cert is None and "granted: alpha;" in why, why
    assert certificates.wakeups >= 1 and not certificates.waiting(WF)
    # The kept grant is back: the claims and a rival's denial still carry the proof.
    kept = certificates.certificate(WF)
    assert kept is not None and len(kept.grants) == 2


async def test_the_bound_ends_a_wait_with_too_few_fresh_grants(agent: Agent) -> None:
    certificates, _core = _successor(agent, {"alpha", "beta", "gamma"})
    async with asyncio.timeout(30):
        cert, why = await certificates.fresh_certificate(WF, 0.05)
    assert cert is None and "(alpha, beta, gamma)" in why, why
    assert certificates.wakeups >= 1 and not certificates.waiting(WF)
