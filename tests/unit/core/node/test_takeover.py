"""Coordinator takeover inside the Node (agent/core/node/takeover.py), Nodes driven by
hand: d0 coordinates one workflow whose steps are on d1 and d2 (d3 has none); the
membership view comes in as `MemberState` inputs; d0 then goes silent."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.acceptor import AcceptorRecord
from fedorch.core.negotiation.messages import Ballot, TxInfo, Value
from fedorch.core.node import MemberState, MemberViews, Message, Node, StepEnded, Submit, Tick
from fedorch.core.node.authority import check as boundary_check
from fedorch.core.node.records import AckMsg, ClaimAnswerMsg, ClaimMsg, FinalMsg, Timing
from fedorch.core.node.takeover_grants import SignedEvidence, sign_grant
from fedorch.core.workflow.lifecycle import TERMINAL, WorkflowState
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness
from tests.unit.core.node.federation import sent

NAMES = ["d0", "d1", "d2", "d3"]
WF = "d0.w"
TIMING = Timing(max_rounds=1, takeover_after_s=3.0)


def fake_signer(name: str):
    """A signature only `name`'s signer makes (its name and the bytes, as a test key)."""
    return lambda data: b"signed by " + name.encode() + b":" + data


def fake_verify(signer: str, data: bytes, signature: bytes) -> bool:
    return signature == fake_signer(signer)(data)


class Certified(SignedEvidence):
    """The evidence port over the fake signatures; `acting`: who acted in which epoch
    (the Ready's notes), for the tests' assertions."""

    def __init__(self) -> None:
        super().__init__(fake_verify, lambda wf, proof: True)
        self.acting: dict[tuple[str, int], str] = {}


def certificate(fed: Federation, epoch: int, holder: str, granters: list[str]):
    """Grants of `epoch` to `holder` signed by `granters`, in the workflow's electorate."""
    electorate = fed.nodes["d1"].takeover.cores[WF].electorate
    return tuple(sign_grant(fake_signer(g), g, WF, epoch, holder, electorate)
                 for g in sorted(granters))


def won(fed: Federation, name: str = "d1", epoch: int = 1):
    """The certificate `name` wrote with its Act of `epoch`."""
    kept_epoch, cert = fed.disks[name].certificates[WF]
    assert kept_epoch == epoch and cert
    return cert


class Federation(Harness):
    """Four Nodes, each with its disk, told at once that every other is ALIVE; every
    step attempt ends at once, successfully; `deliver` hands messages on (to the
    living only)."""

    steps_end_at_once = True
    timing = TIMING

    def __init__(self) -> None:
        self.evidence = Certified()
        super().__init__(NAMES)

    def capacities_of(self, name: str) -> dict[str, int]:
        """What `name` offers (a test's federation may say otherwise)."""
        return {"a": 4}

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities=self.capacities_of(name),
                    timing=self.timing, peers=NAMES, rng=random.Random(NAMES.index(name)),
                    evidence=self.evidence, sign_grant=fake_signer(name),
                    sign_vote=fake_signer(name), verify_vote=fake_verify,
                    disk=self.disks[name], now=self.now)

    def first_inputs(self, name: str) -> list[MemberState]:
        return [MemberState(m, "ALIVE") for m in NAMES if m != name]

    def note(self, name: str, what: str, facts: list) -> None:
        if what == "acting":
            self.evidence.acting[(facts[0], facts[1])] = name


def d0_dead_and_d1_acting(fed: Federation) -> None:
    """d0 goes silent and every other Node sees it DEAD: d1, the lowest participant,
    takes the workflow over in epoch 1."""
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}


def committed(*, steps_end: bool = False) -> Federation:
    """d0's workflow committed at d1 and d2 (s1 on d1, s2 on d2 after s1); the steps
    run and their results flow only if `steps_end`."""
    fed = Federation()
    spec = spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a"),
        spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])
    fed.step("d0", Submit(WF, spec, placement={"s1": "d1", "s2": "d2"}))
    if not steps_end:
        fed.net = [m for m in fed.net if not isinstance(m[2], StepEnded)]
        for _ in range(50):  # the negotiation, but no attempt ends
            if not fed.net:
                break
            batch, fed.net = fed.net, []
            for src, dst, msg in batch:
                fed.step(dst, Message(src, msg))
            fed.net = [m for m in fed.net if not isinstance(m[2], StepEnded)]
    else:
        fed.deliver()
    assert WF in fed.disks["d1"].committed, "the workflow did not commit at d1"
    return fed


def test_a_claim_is_granted_and_written_before_its_answer_leaves() -> None:
    fed = committed()
    ready = fed.step("d2", Message("d1", ClaimMsg(WF, 1)))
    ops = [(op.table, op.key, op.value) for w in ready.writes for op in w.ops]
    assert ("granted", WF, (1, "d1")) in ops and ("epochs", WF, (1, "d1")) in ops
    answers = [o.msg for o in ready.send_after_write if isinstance(o.msg, ClaimAnswerMsg)]
    # After the write only, with d2's signed grant.
    assert answers == [ClaimAnswerMsg(WF, 1, True, 1, "d1",
                                      grant=certificate(fed, 1, "d1", ["d2"])[0])]
    assert not any(isinstance(o.msg, ClaimAnswerMsg) for o in ready.send_now)
    assert fed.disks["d2"].granted[WF] == (1, "d1")
    # The same epoch to another claimant: denied, naming the holder; nothing written.
    ready = fed.step("d2", Message("d3", ClaimMsg(WF, 1)))
    assert not ready.writes
    assert sent(ready) == [("d3", ClaimAnswerMsg(WF, 1, False, 1, "d1"))]


def test_a_dead_coordinator_is_taken_over_and_the_successor_ends_the_workflow() -> None:
    fed = committed()
    fed.silent.add("d0")
    for n in ("d1", "d2", "d3"):
        fed.step(n, MemberState("d0", "DEAD"))
    claims = [m for s, _, m in fed.net if s == "d1" and isinstance(m, ClaimMsg)]
    assert claims and {c.epoch for c in claims} == {1}  # d1, the lowest participant
    assert fed.disks["d1"].granted[WF] == (1, "d1")
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d1"].epochs[WF] == (1, "d1")
    assert fed.disks["d2"].epochs[WF] == (1, "d1")
    assert WF not in fed.disks["d1"].final  # the steps have not ended
    # The attempts end: their results go to d1, which ends the workflow in epoch 1.
    for n in ("d1", "d2"):
        for run in sorted(fed.disks[n].runs):
            fed.step(n, StepEnded(*run, ok=True))
    fed.deliver()
    for run in sorted(fed.disks["d2"].runs):
        fed.step("d2", StepEnded(*run, ok=True))
    fed.deliver()
    final = fed.disks["d1"].final[WF]
    assert final is WorkflowState.SUCCEEDED
    assert fed.disks["d2"].final[WF] is final
    ends = [(d, m) for r in fed.readies["d1"] for d, m in sent(r) if isinstance(m, FinalMsg)]
    assert {d for d, _ in ends} == {"d0", "d2"}  # every participant and the original
    assert all(m.epoch == 1 and m.won and m.state is final for _, m in ends)
    assert WF not in fed.nodes["d1"].takeover.cores  # done with


def test_a_successors_failed_end_carries_the_failed_steps_as_the_originals_does() -> None:
    fed = committed()
    d0_dead_and_d1_acting(fed)
    [run] = sorted(fed.disks["d1"].runs)  # s1, at the successor itself
    fed.step("d1", StepEnded(*run, ok=False, error="disk on fire"))
    fed.deliver()
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d1"].end_reasons[WF] == "step s1 failed: disk on fire"
    assert WF not in fed.disks["d2"].end_reasons  # a follower told the end makes none
    # Kept across a restart, as the end it was written with.
    fed.restore("d1")
    assert fed.disks["d1"].end_reasons[WF] == "step s1 failed: disk on fire"


def test_a_returning_coordinator_follows_the_later_epoch() -> None:
    fed = committed()
    d0_dead_and_d1_acting(fed)
    fed.silent.discard("d0")
    d0 = fed.restore("d0")  # back from its disk: it still holds epoch 0 as its own
    assert d0.takeover.cores[WF].role is Role.ACTING and d0.takeover.cores[WF].epoch == 0
    fed.step("d0", Message("d1", ClaimMsg(WF, 1, won=won(fed))))
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert d0.takeover.coordinator_now(WF) == "d1"
    assert d0.takeover.cores[WF].role is Role.FOLLOWING
    # Its end then comes from d1 in epoch 1, and d0's row ends as d1 ended it.
    fed.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1, won=won(fed))))
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED


def test_a_silent_coordinator_is_claimed_only_after_takeover_after_s() -> None:
    fed = committed()
    fed.silent.add("d0")
    fed.now = 10.0
    fed.step("d1", MemberState("d0", "SUSPECT"))
    assert fed.nodes["d1"].get_timer() == pytest.approx(10.0 + TIMING.takeover_after_s)
    fed.tick(12.9)
    assert WF not in fed.disks["d1"].granted  # not yet
    fed.tick(13.0)
    assert fed.disks["d1"].granted[WF] == (1, "d1")


@pytest.mark.parametrize("one_look", [True, False])
def test_changes_of_one_look_are_all_applied_before_a_takeover_acts(one_look: bool) -> None:
    # d1 saw d0 SUSPECT, then stalled past takeover_after_s; its first look after the
    # stall finds d2 DEAD and d0 ALIVE again. Told as one look, it claims nothing; told
    # member by member, d2's change wakes the watch while d0 still reads SUSPECT.
    fed = committed()
    fed.now = 10.0
    fed.step("d1", MemberState("d0", "SUSPECT"))
    fed.now = 16.0
    changes = (MemberState("d2", "DEAD"), MemberState("d0", "ALIVE"))
    ready = fed.step("d1", MemberViews(changes)) if one_look else fed.step("d1", *changes)
    claims = [msg for _, msg in sent(ready) if isinstance(msg, ClaimMsg)]
    if one_look:
        assert claims == [] and WF not in fed.disks["d1"].granted
    else:
        assert claims and fed.disks["d1"].granted[WF] == (1, "d1")


def test_restore_rebuilds_a_claimants_core_which_claims_again_at_once() -> None:
    fed = committed()
    fed.silent.add("d0")
    fed.step("d1", MemberState("d0", "DEAD"))  # d1 claims epoch 1; no answer yet
    fed.net.clear()
    d1 = fed.restore("d1")
    core = d1.takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 1, "d1")
    assert d1.get_timer() is not None and d1.get_timer() <= fed.now
    d1.step(fed.now, Tick())
    ready = fed.flush("d1")
    assert {(to, m.epoch) for to, m in sent(ready) if isinstance(m, ClaimMsg)} \
        >= {("d2", 1)}
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}  # the claim won after the restart


def test_restore_rebuilds_followers_and_an_acting_successor() -> None:
    fed = committed()
    fed.silent.add("d0")
    fed.step("d1", MemberState("d0", "DEAD"))
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    d2 = fed.restore("d2")  # it granted d1: it follows d1 again
    core = d2.takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.FOLLOWING, 1, "d1")
    # d1's attempt of s1 was running when it stopped: it counts as failed on restore,
    # and the restored successor (acting in epoch 1) tells the end at once, in its
    # epoch with its certificate, and makes it once d2 acknowledged it.
    fed.restore("d1")
    ends = [m for to, m in sent(fed.readies["d1"][-1]) if isinstance(m, FinalMsg)]
    assert ends and all(m.epoch == 1 and m.won and m.state is WorkflowState.FAILED
                        for m in ends)
    fed.deliver()
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED


def test_takeover_off_refuses_claims() -> None:
    from fedorch.core.negotiation.errors import RemoteProtocolError
    node = Node("d1", policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 1},
                timing=Timing(), peers=NAMES, rng=random.Random(1))
    assert node.takeover is None
    node.step(0.0, MemberState("d0", "DEAD"))  # kept, nothing to do
    assert node.members == {"d0": "DEAD"}
    with pytest.raises(RemoteProtocolError):
        node.step(0.0, Message("d2", ClaimMsg(WF, 1)))


def test_every_participant_ends_the_workflow_once_the_coordinator_is_gone() -> None:
    """The whole path, steps running: every live member ends it the same way."""
    fed = committed(steps_end=True)
    assert fed.disks["d0"].final.get(WF) in TERMINAL  # d0 finished it: no takeover
    assert not fed.evidence.acting


def claiming_d1() -> Federation:
    """d0 dead: d1 claims epoch 1, its claims not delivered yet."""
    fed = committed()
    fed.silent.add("d0")
    fed.step("d1", MemberState("d0", "DEAD"))
    fed.net.clear()
    core = fed.nodes["d1"].takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 1, "d1")
    return fed


def test_a_denial_relaying_a_proof_that_holds_is_followed() -> None:
    fed = claiming_d1()
    proof = certificate(fed, 2, "d2", ["d0", "d2", "d3"])  # d2 won epoch 2
    # d0 relays d2's proof: d1 follows d2 at once, and keeps the proof for its denials.
    fed.step("d1", Message("d0", ClaimAnswerMsg(WF, 1, False, 2, "d2", won=proof)))
    core = fed.nodes["d1"].takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.FOLLOWING, 2, "d2")
    assert fed.disks["d1"].epochs[WF] == (2, "d2")
    assert fed.nodes["d1"].takeover.proofs[WF] == (2, "d2", proof)
    ready = fed.step("d1", Message("d3", ClaimMsg(WF, 2)))
    assert sent(ready) == [("d3", ClaimAnswerMsg(WF, 2, False, 2, "d2", won=proof))]


def test_a_denial_without_a_proof_or_with_one_that_fails_is_not_followed() -> None:
    fed = claiming_d1()
    d1 = fed.nodes["d1"]
    # The voter's word only: d1 keeps claiming epoch 1.
    fed.step("d1", Message("d0", ClaimAnswerMsg(WF, 1, False, 2, "d2")))
    # A proof claimed, but the certificate does not hold (one grant: no majority).
    minority = certificate(fed, 3, "d0", ["d0"])
    fed.step("d1", Message("d2", ClaimAnswerMsg(WF, 1, False, 3, "d0", won=minority)))
    core = d1.takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 1, "d1")
    assert fed.disks["d1"].granted[WF] == (1, "d1")
    assert WF not in d1.takeover.proofs
    assert d1.stats["takeover denial without proof"] == 1
    assert d1.stats["takeover denial with a proof that does not hold"] == 1


def test_the_winner_tells_its_granters_which_then_prove_their_denials() -> None:
    fed = claiming_d1()
    grant = certificate(fed, 1, "d1", ["d2"])[0]  # d2's signed grant
    fed.step("d1", Message("d2", ClaimAnswerMsg(WF, 1, True, 1, "d1", grant=grant)))
    fed.deliver()  # nothing was sent to d2 yet: the grant is handed in by hand
    assert fed.evidence.acting == {(WF, 1): "d1"}
    # On winning, d1 sent its claim, with its proof, to d2, which granted it.
    told = [(to, m) for r in fed.readies["d1"] for to, m in sent(r) if isinstance(m, ClaimMsg)]
    assert ("d2", ClaimMsg(WF, 1, None, won=won(fed))) in told
    assert fed.nodes["d2"].takeover.proofs[WF] == (1, "d1", won(fed))
    # A claimant of an earlier view (d0 back, claiming the same epoch) is denied with it.
    ready = fed.step("d2", Message("d0", ClaimMsg(WF, 1)))
    assert sent(ready) == [("d0", ClaimAnswerMsg(WF, 1, False, 1, "d1", won=won(fed)))]


def test_a_restarted_granter_denies_without_proof_until_the_winner_shows_it_again() -> None:
    fed = claiming_d1()
    fed.step("d2", Message("d1", ClaimMsg(WF, 1)))  # d2 grants; its answer goes to d1
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.nodes["d2"].takeover.proofs[WF] == (1, "d1", won(fed))
    # A restart loses the proof (kept in memory): until the winner shows it again, d2's
    # denial is its word only.
    fed.restore("d2")
    assert WF not in fed.nodes["d2"].takeover.proofs
    ready = fed.step("d2", Message("d0", ClaimMsg(WF, 1)))
    assert sent(ready) == [("d0", ClaimAnswerMsg(WF, 1, False, 1, "d1"))]
    fed.step("d2", Message("d1", ClaimMsg(WF, 1, won=won(fed))))  # the winner's claim again
    ready = fed.step("d2", Message("d0", ClaimMsg(WF, 1)))
    assert sent(ready) == [("d0", ClaimAnswerMsg(WF, 1, False, 1, "d1", won=won(fed)))]


def test_the_winners_certificate_is_a_majoritys_signed_grants_written_with_its_act() -> None:
    fed = committed()
    fed.silent.add("d0")
    fed.step("d1", MemberState("d0", "DEAD"))
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    cert = won(fed)
    electorate = fed.nodes["d1"].takeover.cores[WF].electorate
    assert {g.granter for g in cert} >= {"d1"} and len(cert) >= len(electorate) // 2 + 1
    assert fed.evidence.certificate_holds(WF, 1, "d1", cert, electorate)
    # The same grants prove nothing for another holder, epoch or workflow.
    assert not fed.evidence.certificate_holds(WF, 1, "d2", cert, electorate)
    assert not fed.evidence.certificate_holds(WF, 2, "d1", cert, electorate)
    assert not fed.evidence.certificate_holds("d0.other", 1, "d1", cert, electorate)


def test_a_grant_not_signed_by_its_voter_is_not_counted() -> None:
    fed = claiming_d1()
    d1 = fed.nodes["d1"]
    electorate = d1.takeover.cores[WF].electorate
    forged = sign_grant(fake_signer("d3"), "d2", WF, 1, "d1", electorate)  # d3 signs for d2
    fed.step("d1", Message("d2", ClaimAnswerMsg(WF, 1, True, 1, "d1", grant=forged)))
    fed.step("d1", Message("d2", ClaimAnswerMsg(WF, 1, True, 1, "d1")))  # none at all
    other = certificate(fed, 1, "d3", ["d2"])[0]  # d2's, but of another holder
    fed.step("d1", Message("d2", ClaimAnswerMsg(WF, 1, True, 1, "d1", grant=other)))
    assert d1.stats["takeover grant without a valid signed statement"] == 3
    core = d1.takeover.cores[WF]
    assert core.role is Role.CLAIMING and not fed.evidence.acting
    assert WF not in fed.disks["d1"].certificates


def test_a_forged_certificate_is_not_followed() -> None:
    fed = claiming_d1()
    d1 = fed.nodes["d1"]
    # d2 shows a certificate of epoch 2 made of grants it signed in d0's and d3's names.
    forged = tuple(sign_grant(fake_signer("d2"), g, WF, 2, "d2",
                              d1.takeover.cores[WF].electorate) for g in ("d0", "d2", "d3"))
    fed.step("d1", Message("d2", ClaimAnswerMsg(WF, 1, False, 2, "d2", won=forged)))
    core = d1.takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 1, "d1")
    assert WF not in d1.takeover.proofs
    assert "signature does not verify" in (fed.evidence.last_refusal or "")
    # Nor does the authority table take an end on it (the Node's own check).
    assert not d1.takeover.proven(WF, 2, "d2", forged)


def test_a_claimant_that_finds_the_end_names_the_failed_steps_it_knows() -> None:
    """d1 claims while its own s1 has failed; a participant answers the claim with the
    end (FAILED): d1 makes that end its own (Announce) with the reason its progress
    gives, as the original's would."""
    fed = claiming_d1()
    [run] = sorted(fed.disks["d1"].runs)
    fed.step("d1", StepEnded(*run, ok=False, error="disk on fire"))
    fed.net.clear()  # its result, and anything else, not delivered
    fed.step("d1", Message("d2", ClaimAnswerMsg(WF, 1, False, 0, "d0",
                                                final=WorkflowState.FAILED)))
    assert fed.nodes["d1"].stats["takeover found the end"] == 1
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d1"].end_reasons[WF] == "step s1 failed: disk on fire"


def _takes_d2s_end_with_round_2s_certificate(fed: Federation, d3: Node) -> None:
    """d2's end in epoch 1, its certificate granted by d2 and d3 naming round 2's
    acceptors (d0, d2, d3): d3 takes it and acknowledges it."""
    cert = tuple(sign_grant(fake_signer(g), g, WF, 1, "d2", frozenset({"d0", "d2", "d3"}))
                 for g in ("d2", "d3"))
    end = FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=cert)
    boundary_check(d3, "d2", end)  # the authority table's check, as at the boundary
    ready = fed.step("d3", Message("d2", end))
    assert fed.disks["d3"].final[WF] is WorkflowState.SUCCEEDED
    assert [dst for dst, m in sent(ready) if isinstance(m, AckMsg)] == ["d2"]


def test_an_aborted_rounds_acceptors_do_not_judge_a_later_rounds_certificate() -> None:
    """d3 holds no step: it recovered round 1 of d0's workflow (acceptors d0, d1, d3) as
    ABORT, and its Accept of the committed round 2 (acceptors d0, d2, d3) was lost. It
    granted epoch 1 to d2 on round 2's proof; d2 tells the end with its certificate in
    round 2's electorate: d3 takes it and acknowledges, not judging it against the
    aborted round's acceptors (takeover soak seed 43003501: refused for ever, d2 never
    made its end)."""
    fed = Federation()
    disk = fed.disks["d3"]
    key = (WF, 1)
    disk.acceptor[key] = AcceptorRecord(TxInfo(WF, 1, "d0", ("d1",), ("d0", "d1", "d3")),
                                        accepted_value=Value(False))
    disk.learned[key] = Value(False)
    disk.granted[WF] = (1, "d2")
    d3 = fed.restore("d3")
    assert d3.takeover.electorate_of(WF) is None
    _takes_d2s_end_with_round_2s_certificate(fed, d3)


def test_an_acceptors_own_grant_names_the_electorate_over_an_undecided_rounds_record() -> None:
    """The same, round 1 never learned decided: d3 accepted its recovery's ABORT and
    missed the decision. Its own grant in d2's certificate names round 2's acceptors, the
    electorate it judged on round 2's proof when it granted: that, not the record of
    round 1, judges the certificate (takeover soak seed 84000321: refused for ever, the
    successor never made its end)."""
    fed = Federation()
    disk = fed.disks["d3"]
    disk.acceptor[(WF, 1)] = AcceptorRecord(
        TxInfo(WF, 1, "d0", ("d1",), ("d0", "d1", "d3")),
        promised=Ballot(1, "d1"), accepted_ballot=Ballot(1, "d1"),
        accepted_value=Value(False))
    disk.granted[WF] = (1, "d2")
    d3 = fed.restore("d3")
    assert d3.takeover.electorate_of(WF) == frozenset({"d0", "d1", "d3"})  # a guess
    _takes_d2s_end_with_round_2s_certificate(fed, d3)
