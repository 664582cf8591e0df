"""Retention of workflows taken over (core/node/retention.py, `_taken_over_kept`;
docs/retention.md, "Workflows taken over"), Nodes driven by hand through the boundary
(test_domain_loss.py's Federation) with a short retention: d0 coordinates, dies, and
d1 takes its workflow over in epoch 1. Each Node forgets it, every takeover row with
it, once its end is settled there; a late claim, placement or end afterwards is
refused or acknowledged, and grants nothing."""

from __future__ import annotations

import dataclasses

from fedorch.core.node import MemberState, Message, Node, StepEnded, Submit
from fedorch.core.node.ready import DELETE, Ready
from fedorch.core.node.records import (
    TABLES,
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    Disk,
    FinalMsg,
    PlacedMsg,
)
from fedorch.core.node.retention import CLAIM_ANSWERS, ROUND_LIFE_TABLES, Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import NAMES, WF, step
from tests.unit.core.node.test_domain_loss import Federation as Boundary

LATE = 10.0
POLICY = Retention(keep_ended_s=5.0, max_ended_workflows=1000, late_message_s=LATE)
TAKEOVER_TABLES = {"epochs", "granted", "certificates", "late_grants"}


class Federation(Boundary):
    """test_domain_loss.py's, with retention; `drop` says which messages are lost."""

    timing = dataclasses.replace(Boundary.timing, retention=POLICY)

    def __init__(self) -> None:
        self.drop = lambda src, dst, msg: False
        super().__init__()

    def flush(self, name: str) -> Ready:
        ready = super().flush(name)
        self.net = [m for m in self.net if not self.drop(*m)]
        return ready

    def has(self, name: str, wf: str = WF) -> set[str]:
        """The tables of `name`'s disk that still hold anything of `wf` (but those kept
        for recovery ballots until their round's life, `acceptor` and `learned`)."""
        disk = self.disks[name]
        return {t for t in TABLES
                if t not in ROUND_LIFE_TABLES and t not in ("ended_records", "ended_proofs")
                for key in getattr(disk, t)
                if (key[0] if isinstance(key, tuple) else key) == wf
                or t == "admitted" and getattr(disk, t)[key][0] == wf}

    def kept(self, name: str, reason: str) -> int:
        return self.nodes[name].stats[f"retention kept: {reason}"]


def taken_over_and_ended(steps: dict[str, str], fed: Federation | None = None
                         ) -> Federation:
    """d0's workflow of one step per domain of `steps` (step -> domain), committed; d0
    dies for good, d1 acts in epoch 1; every step succeeds and d1 ends the workflow,
    its end told to d0 (silent) too. `fed`: a Federation made already (its `drop` set)."""
    fed = Federation() if fed is None else fed
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[step(s) for s in steps]),
                          placement=steps))
    fed.deliver()
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    for name in sorted(set(steps.values())):
        for run in sorted(fed.running[name]):
            fed.step(name, StepEnded(*run, ok=True))
        fed.deliver()
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d1"].epochs[WF] == (1, "d1") and fed.disks["d1"].certificates[WF]
    return fed


def d0_back(fed: Federation) -> None:
    """d0 restarts, its view holding every other Node ALIVE: it takes d1's end (resent
    until acknowledged) and acknowledges it."""
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "ALIVE") for m in NAMES if m != "d0"])
    fed.deliver()
    for _ in range(20):  # d1's next resend of its end
        if "d0" in fed.disks["d1"].final_acked.get(WF, ()):
            return
        fed.run_until(fed.now + 0.5)
    raise AssertionError("d0 never acknowledged d1's end")


def forgotten_in_memory(node: Node, wf: str = WF) -> bool:
    tk = node.takeover
    return wf not in tk.cores and wf not in tk.proofs and wf not in tk.claims.granters \
        and not tk.proof.collected.of(wf, 1) and not dict.__contains__(node.coordinators, wf) \
        and wf not in node.progress and not node.pending.of(wf)


def retention_deletes(fed: Federation, name: str) -> set[str]:
    return {op.table for r in fed.readies[name] for w in r.writes if w.point == "retention"
            for op in w.ops if op.kind == DELETE}


# ---- forgotten once settled ----------------------------------------------------------


def test_a_taken_over_workflow_is_forgotten_everywhere_once_its_end_is_settled() -> None:
    """d2, a participant that followed and granted epoch 1, forgets it one window after
    its end. d1, which acted in epoch 1 and made the end, keeps it while d0 has not
    acknowledged that end (resent all along), then, a claimant, two windows after its
    last mark (a grant of its claim may still come), then forgets it with every
    takeover row and its takeover state in memory. Before, every one of them kept it
    for good ("taken over")."""
    fed = taken_over_and_ended({"s1": "d1", "s2": "d2"})
    ended = fed.now
    assert fed.disks["d2"].granted[WF] == (1, "d1") and fed.disks["d2"].epochs[WF] == (1, "d1")
    fed.run_until(ended + LATE + 2.0)
    assert fed.has("d2") == set()
    assert TAKEOVER_TABLES & retention_deletes(fed, "d2") == {"epochs", "granted"}
    assert forgotten_in_memory(fed.nodes["d2"])
    fed.run_until(ended + 100.0)  # d0 is down: d1's end is resent, not acknowledged
    assert {"final", "epochs", "granted", "certificates"} <= fed.has("d1")
    assert fed.kept("d1", "taken over: a domain has not acknowledged the end told in its"
                          " epoch") >= 1
    d0_back(fed)
    acked = fed.now
    assert "d0" in fed.disks["d1"].final_acked[WF]
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    fed.run_until(acked + 2 * LATE - 2.0)  # one window past its last mark: not yet
    assert fed.kept("d1", CLAIM_ANSWERS) == 1
    assert {"epochs", "granted", "certificates"} <= fed.has("d1")
    fed.run_until(acked + 2 * LATE + 2.0)
    assert fed.has("d1") == set()
    assert {"epochs", "granted", "certificates"} <= retention_deletes(fed, "d1")
    assert forgotten_in_memory(fed.nodes["d1"])
    fed.run_until(acked + 3 * LATE)  # the original, which follows epoch 1, too
    assert fed.has("d0") == set()
    assert forgotten_in_memory(fed.nodes["d0"])


def test_a_late_grant_owed_its_end_keeps_the_workflow_at_the_claimant() -> None:
    """After d1's claim is over, a grant of it comes, late, from d0 (takeover_late_grants
    .py): d1 tells d0 its end in that epoch and keeps the workflow until d0
    acknowledges that tell (`late_grants`); forgotten, the tell would never come, and a
    granter that knew no end would refuse the older epoch's for ever. d0 back, it
    acknowledges, and d1 forgets the workflow two windows later."""
    fed = taken_over_and_ended({"s1": "d1", "s2": "d2"})
    fed.step("d1", Message("d0", ClaimAnswerMsg(WF, 1, True, 1, "d1")))
    assert fed.disks["d1"].late_grants == {WF: {"d0": 1}}
    assert fed.nodes["d1"].stats["takeover grant after the claim: end told to the granter"] == 1
    fed.run_until(fed.now + 100.0)
    assert fed.kept("d1", "taken over: a late grant is owed its end") >= 1
    assert {"late_grants", "epochs", "granted", "certificates"} <= fed.has("d1")
    d0_back(fed)
    assert WF not in fed.disks["d1"].late_grants and "epochs" in fed.has("d1")
    fed.run_until(fed.now + 2 * LATE + 2.0)
    assert fed.has("d1") == set()
    assert forgotten_in_memory(fed.nodes["d1"])


# ---- after it is forgotten -----------------------------------------------------------


def test_after_it_is_forgotten_a_late_claim_placement_or_end_grants_nothing() -> None:
    """d2 forgot the workflow. A claim of it (a participant's, or the original's claim
    past a gone holder: neither shows a participant a proof of the round) is answered
    with the end kept as a record (ended_records.py), as before it forgot, and without
    the record is refused; nothing written either way: no grant from a blank. A successor's placement tell naming
    another domain, and an end notice, are acknowledged and not kept."""
    fed = taken_over_and_ended({"s1": "d1", "s2": "d2"})
    fed.run_until(fed.now + LATE + 2.0)
    assert fed.has("d2") == set()
    won = fed.disks["d1"].certificates[WF][1]
    claims = (("d1", ClaimMsg(WF, 2)), ("d0", ClaimMsg(WF, 1)), ("d1", ClaimMsg(WF, 1)))
    for src, claim in claims:
        ready = fed.step("d2", Message(src, claim))
        assert not ready.writes, claim
        answers = [m for to, m in _sent(ready)]
        assert answers == [ClaimAnswerMsg(WF, claim.epoch, False, 1, "d1",
                                          WorkflowState.SUCCEEDED)], answers
    fed.nodes["d2"].state.ended_records.pop(WF)  # past keep_end_records_s, say
    fed.flush("d2")
    for src, claim in claims:
        ready = fed.step("d2", Message(src, claim))
        assert not ready.writes, claim
        answers = [m for to, m in _sent(ready)]
        assert answers == [ClaimAnswerMsg(WF, claim.epoch, False, 0, "")], answers
    assert fed.nodes["d2"].stats["takeover claim refused no_proof"] == 3
    placed = PlacedMsg(WF, "s1", "d3", 5, "d1", held_epoch=1, won=won)
    ready = fed.step("d2", Message("d1", placed))
    assert not ready.writes
    assert _sent(ready) == [("d1", AckMsg(("placed", WF, "s1", 5, "d2")))]
    assert fed.has("d2") == set()
    # An end notice of epoch 1 resent (its acknowledgement lost) finds d2 known by its
    # acceptor record alone, as an extra acceptor is: it keeps that end, which it now
    # answers a claim with, and acknowledges it (elector_ends.py); it is a participant
    # of the committed round by that record, so it forgets it again once settled.
    end = FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=won)
    ready = fed.step("d2", Message("d1", end))
    assert _sent(ready) == [("d1", AckMsg(("final", WF, "d2")))]
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    fed.run_until(fed.now + LATE + 2.0)
    assert fed.has("d2") == set()


def _sent(ready: Ready) -> list[tuple[str, object]]:
    return [(o.to, o.msg) for o in ready.send_now + ready.send_after_write]


# ---- an elector holding no step keeps its grant -------------------------------------


def test_an_extra_acceptor_keeps_its_grant_a_blank_would_grant_again() -> None:
    """d1's workflow on one step: d2 is the round's extra acceptor and granted epoch 1 to
    d1 on its proof. It learns no end (ends go to the step domains) and keeps the
    workflow ("no end here"): its acceptor records, kept for good, would answer a claim
    with a proof with no epoch held. Asked for epoch 1 by another claimant showing the
    same proof (the original, claiming past a gone holder), it denies it naming d1; a
    Node holding what forgetting would leave (its acceptor records and learned
    decisions) grants epoch 1 a second time."""
    fed = taken_over_and_ended({"s1": "d1"})
    d2 = fed.disks["d2"]
    assert fed.disks["d1"].rows.get(WF) is None and d2.granted[WF] == (1, "d1")
    fed.run_until(fed.now + 300.0)
    assert d2.granted[WF] == (1, "d1") and d2.final[WF] is WorkflowState.SUCCEEDED
    assert fed.kept("d2", "taken over: granted as an elector holding no step") >= 1
    proven = [m for r in fed.readies["d1"] for to, m in _sent(r)
              if to == "d2" and isinstance(m, ClaimMsg) and m.proof is not None]
    claim = dataclasses.replace(proven[0], epoch=1, won=())
    ready = fed.step("d2", Message("d0", claim))
    assert not ready.writes
    [(_, answer)] = _sent(ready)
    assert not answer.granted and (answer.held_epoch, answer.holder) == (1, "d1")
    # What forgetting the workflow would leave: the acceptor records and learned
    # decisions, which are never forgotten.
    blank = Disk(acceptor=dict(d2.acceptor), learned=dict(d2.learned))
    fed.disks["d2"], kept = blank, d2
    node = fed.make_node("d2")  # restored from the same tables but the grant
    fed.disks["d2"] = kept
    node.step(fed.now, Message("d0", claim))
    ready = node.ready()
    node.advance(ready)
    [(_, answer)] = _sent(ready)
    assert answer.granted and answer.epoch == 1  # epoch 1 granted twice: d1's, and d0's
