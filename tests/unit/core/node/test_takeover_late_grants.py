"""Grants a claimant holds after its claim is over (core/node/takeover_late_grants.py):
d1, which ended the workflow, claimed epoch 1 for its saga's open plan; a domain of the
workflow that granted it without knowing the end follows d1 in epoch 1, refuses the
driver's notices of epoch 0, and keeps its hold, until d1 tells it the end in epoch 1:
when its grant comes after the claim is over, or when the plan closed before any
member denied the claim with the end. The tell survives d1's restart (`late_grants`),
and so does a grant of a claim still running (written with the grant, read back).
The federation and its story: test_takeover_claims.py."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.records import (
    ClaimAnswerMsg,
    ClaimMsg,
    FinalMsg,
    PlacementAnswer,
    PlacementQuery,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.takeover import Role

from tests.unit.core.node.test_takeover_claims import (
    WF,
    granted_by_a_member_that_never_heard_the_end,
    views,
)


def holds(f, name: str) -> list:
    return [h for h in f.disks[name].holds if h[0] == WF]


def test_a_grant_that_comes_after_the_claim_is_over_gets_the_end_in_its_epoch():
    """Nobody granted d1's claim while its plan was open; d0 drove the saga to its end,
    which closed the plan and ended the claim. Then d3's grant of epoch 1 comes, late:
    d3 follows d1 in epoch 1 and refuses the notices of epoch 0 for ever, its hold
    kept. d1 tells it the end in epoch 1 (takeover soak seed 10001968); an answer that
    grants nothing, or an epoch d1 never claimed, gets nothing."""
    f = granted_by_a_member_that_never_heard_the_end(d3_back=False)
    f.end("d1", True)
    f.run_until(f.now + 10.0)
    d1 = f.nodes["d1"]
    assert WF not in d1.takeover.cores and f.disks["d1"].granted[WF] == (1, "d1")
    told = len(f.sent_by("d1", FinalMsg))
    for answer in (ClaimAnswerMsg(WF, 1, False, 0, "d0"), ClaimAnswerMsg(WF, 2, True, 2, "d1")):
        f.step("d1", Message("d3", answer))
    assert len(f.sent_by("d1", FinalMsg)) == told
    f.step("d1", Message("d3", ClaimAnswerMsg(WF, 1, True, 1, "d1")))
    assert f.sent_by("d1", FinalMsg)[told:] == [("d3", FinalMsg(WF, WorkflowState.FAILED, 1))]
    assert d1.stats["takeover grant after the claim: end told to the granter"] == 1


def test_a_late_grant_of_an_elector_holding_no_step_gets_no_end():
    """As above, but the late grant comes from an elector holding no step of the
    workflow (an extra acceptor, "d9"): it holds nothing to release, and it refuses a
    claimant's end of epoch 1 (no certificate: authority_ends.py), so a tell would be
    resent to it for ever (takeover soak seed 10000294): nothing is told, or written."""
    f = granted_by_a_member_that_never_heard_the_end(d3_back=False)
    f.end("d1", True)
    f.run_until(f.now + 10.0)
    told = len(f.sent_by("d1", FinalMsg))
    f.nodes["d1"].step(f.now, Message("d9", ClaimAnswerMsg(WF, 1, True, 1, "d1")))
    f.flush("d1")
    assert len(f.sent_by("d1", FinalMsg)) == told
    assert WF not in f.disks["d1"].late_grants
    assert f.nodes["d1"].stats["takeover grant after the claim by an elector holding no step"] == 1


def test_a_late_grants_end_is_told_again_after_the_claimants_restart():
    """As above, but d3 is back and grants d1's claim of epoch 1 itself (that claim
    late on the network, d0's notices to d3 later still): d3 follows d1 in epoch 1 and
    holds its reservation. d1 tells it the end in epoch 1 and crashes before d3
    acknowledges it (the tell lost with it). Restored, d1 tells it again, from the
    row written with the first tell (`late_grants`): d3 takes the end and releases
    its hold, and its acknowledgement drops the row. Before, the tell was resent from
    memory only, and d3 kept its hold for ever."""
    f = granted_by_a_member_that_never_heard_the_end(d3_back=False)
    f.end("d1", True)
    f.run_until(f.now + 10.0)
    assert WF not in f.nodes["d1"].takeover.cores
    claim = [m for to, m in f.sent_by("d1", ClaimMsg) if to == "d3" and m.epoch == 1][-1]

    def originals_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d3")

    def tell_lost(src: str, dst: str, msg: object) -> bool:
        return originals_late(src, dst, msg) \
            or (src, dst) == ("d1", "d3") and isinstance(msg, FinalMsg)

    f.hold = tell_lost
    f.restart("d3")
    views(f, "d3", d0="ALIVE", d1="ALIVE", d2="DEAD")
    f.step("d3", Message("d1", claim))
    f.deliver()
    assert f.disks["d3"].epochs[WF] == (1, "d1") and WF not in f.disks["d3"].final
    assert holds(f, "d3")
    assert f.nodes["d1"].stats["takeover grant after the claim: end told to the granter"] == 1
    assert f.disks["d1"].late_grants == {WF: {"d3": 1}}  # written with the tell
    f.net = [m for m in f.net if not tell_lost(*m)]  # lost with d1's crash
    d1 = f.restart("d1")
    f.hold = originals_late
    f.run_until(f.now + 30.0)
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    assert d1.stats["takeover late grant: end told again after a restart"] == 1
    assert WF not in f.disks["d1"].late_grants  # acknowledged: told no more
    f.restart("d1")
    f.run_until(f.now + 10.0)
    assert f.nodes["d1"].stats["takeover late grant: end told again after a restart"] == 0


def test_a_grant_made_while_the_claim_ran_gets_the_end_when_the_plan_closes():
    """d3 (back, the end unknown there) grants d1's claim of epoch 1 while it runs; d0's
    denials of the claim, which carry the end, are late, and the saga's end reaches d1
    first: its plan closes and its claim is over, before any denial told it on. d3
    follows d1 in epoch 1, refusing d0's notices of epoch 0: d1 tells it the end in
    epoch 1 as the plan closes, and d3 releases its hold. Before, it kept it for ever."""
    f = granted_by_a_member_that_never_heard_the_end()

    def denials_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1") and isinstance(msg, ClaimAnswerMsg)

    f.hold = denials_late
    f.end("d1", True)  # the compensation ends: d0's saga is over, d1's plan closes
    f.run_until(f.now + 10.0)
    assert f.disks["d1"].plans[WF] == () and not f.nodes["d1"].takeover.live(WF)
    f.hold = None
    f.net = [m for m in f.net if not denials_late(*m)]
    f.run_until(f.now + 30.0)
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    assert ("d3", FinalMsg(WF, WorkflowState.FAILED, 1)) in f.sent_by("d1", FinalMsg)
    assert WF not in f.disks["d1"].late_grants  # acknowledged


def claimant_restarted_mid_claim_then_its_plan_closed(*, tell_lost: bool = False):
    """d3 (back, the end unknown there) grants d1's claim of epoch 1 while it runs. d1's
    compensation ends and d0 drives the saga to its end, but d0's notices to d1 (its
    denials with the end, its saga-over notice) are late, and d1 restarts: its claim
    is rebuilt claiming, and its claims to d3 are lost, so d3 grants nothing again. Then
    d0's saga-over notice reaches d1 before any denial: its plan closes, and with it its
    claim. `tell_lost`: d1's tells to d3 are lost too (for a restart before d3's
    acknowledgement)."""
    f = granted_by_a_member_that_never_heard_the_end()
    assert f.disks["d1"].late_grants == {WF: {"d3": 1}}  # written with the grant

    def from_d0_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1")

    def lost(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d1", "d3") and (
            isinstance(msg, ClaimMsg) or tell_lost and isinstance(msg, FinalMsg))

    f.hold = lambda *m: from_d0_late(*m) or lost(*m)
    f.end("d1", True)  # the compensation ends: reported to d0, whose saga is over
    f.run_until(f.now + 10.0)
    assert f.nodes["d0"].compensating.of(WF)[1].value == "DONE"
    assert f.disks["d1"].plans[WF] != ()  # d0's saga-over notice has not reached d1
    f.net = [m for m in f.net if not lost(*m)]
    d1 = f.restart("d1")  # what d0 sent it is lost with its crash; d0 sends it again
    core = d1.takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 1, "d1")
    assert d1.stats["takeover claim grants known again after a restart"] == 1

    def denials_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1") and isinstance(msg, ClaimAnswerMsg)

    f.hold = lambda *m: denials_late(*m) or lost(*m)
    f.run_until(f.now + 30.0)
    assert f.disks["d1"].plans[WF] == () and not d1.takeover.live(WF)
    assert d1.stats["takeover claimant that ended told the end on"] == 0  # no denial came
    assert not [m for _, m in f.sent_by("d3", ClaimAnswerMsg) if m.granted][1:]  # once
    f.hold = None
    f.net = [m for m in f.net if not denials_late(*m) and not lost(*m)]
    return f


def test_a_claimant_restarted_mid_claim_tells_its_granters_when_its_plan_closes():
    """The grants of a claim that runs are written as they come (`late_grants`), and a
    restored claimant reads them back: its plan closing before it claimed again, d1
    tells d3 the end in epoch 1, and d3 releases its hold. Before, which domains had
    granted was in memory only, and d3 followed d1 in epoch 1 and kept its hold for
    ever, refusing d0's notices of epoch 0."""
    f = claimant_restarted_mid_claim_then_its_plan_closed()
    f.run_until(f.now + 30.0)
    assert ("d3", FinalMsg(WF, WorkflowState.FAILED, 1)) in f.sent_by("d1", FinalMsg)
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    assert WF not in f.disks["d1"].late_grants  # acknowledged: told no more


def test_a_restored_claimants_tell_lost_before_its_acknowledgement_goes_again():
    """As above, but d1's tell to d3 is lost and d1 restarts again before d3
    acknowledged it: restored, its claim over, d1 tells d3 the end again from the row
    its grant wrote, and d3 releases its hold; the acknowledgement drops the row."""
    f = claimant_restarted_mid_claim_then_its_plan_closed(tell_lost=True)
    assert f.disks["d1"].late_grants == {WF: {"d3": 1}}  # told, not acknowledged
    assert WF not in f.disks["d3"].final and holds(f, "d3")
    d1 = f.restart("d1")
    assert not d1.takeover.claims.granters  # its claim is over: told, not read back
    f.run_until(f.now + 30.0)
    assert d1.stats["takeover late grant: end told again after a restart"] == 1
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    assert WF not in f.disks["d1"].late_grants


def test_the_grants_of_an_overtaken_claim_are_told_nothing_after_a_restart():
    """d3 granted d1's claim of epoch 1; d1 then followed a later holder (d2, epoch 2)
    and restarted. Its row of d3's grant is no tell owed: d1's claim is over without
    an end of d1's, and d3, told an end of epoch 1 that it may refuse as older than
    the epoch it follows by then, would be told again for ever. Nothing goes to d3, as
    nothing went from memory before the restart; the row stays, told nothing, and goes
    with the workflow."""
    f = granted_by_a_member_that_never_heard_the_end()
    assert f.disks["d1"].late_grants == {WF: {"d3": 1}}
    f.disks["d1"].granted[WF] = f.disks["d1"].epochs[WF] = (2, "d2")  # followed since
    told = len(f.sent_by("d1", FinalMsg))
    d1 = f.restart("d1")
    assert not d1.takeover.claims.granters
    assert d1.stats["takeover late grant: end told again after a restart"] == 0
    assert f.sent_by("d1", FinalMsg)[told:] == []
    assert f.disks["d1"].late_grants == {WF: {"d3": 1}}


def let_restart_asks_go(node) -> None:
    """The restart check asks about no workflow any more (its held table changes key by
    key: it keeps a heap of their deadlines)."""
    held = node.restart_check.held
    for wf in list(held):
        del held[wf]


def grant_never_taken(*, restart_ask: bool = True):
    """d3 grants d1's claim of epoch 1 while it runs, and every answer of its grant is
    lost on the way: d1 never took it (nothing of it written there), while d3 follows d1
    in epoch 1 and refuses the driver's notices of epoch 0. d0's denials to d1 (which
    carry the end) are late, and d0's saga-over notice closes d1's plan, and with it
    the claim, before the claim goes again. Returns the federation once d1's claim is
    over, the grant's answers still lost, d0's denials released. `restart_ask` False:
    d3's restart check has let the workflow go (it asks the coordinator it follows too,
    after its restart), so only the grant's own ask is left."""

    def grant_lost(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d3", "d1") and isinstance(msg, ClaimAnswerMsg) and msg.granted

    f = granted_by_a_member_that_never_heard_the_end(lost=grant_lost)
    f.net = [m for m in f.net if not grant_lost(*m)]
    if not restart_ask:
        let_restart_asks_go(f.nodes["d3"])
    assert f.disks["d3"].granted[WF] == (1, "d1") and WF not in f.disks["d3"].final
    assert WF not in f.disks["d1"].late_grants and not f.nodes["d1"].takeover.claims.granters

    def denials_late(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1") and isinstance(msg, ClaimAnswerMsg)

    f.hold = lambda *m: grant_lost(*m) or denials_late(*m)
    f.end("d1", True)  # the compensation ends: d0's saga is over, d1's plan closes
    f.run_until(f.now + 3.0)
    assert f.disks["d1"].plans[WF] == () and not f.nodes["d1"].takeover.live(WF)
    f.hold = grant_lost
    f.net = [m for m in f.net if not grant_lost(*m)]
    return f


def test_a_granter_whose_grant_the_claimant_never_took_asks_it_and_gets_the_end():
    """d3's grant never reached d1, so d1, its claim over, names no granter to tell. d3,
    following d1 in epoch 1 with no proof that d1 won it, asks d1 (a PlacementQuery)
    from `takeover_after_s` after its grant, and d1 answers with the end in epoch 1:
    d3 ends the workflow and releases its hold. Before, d3 followed d1 for ever,
    refusing d0's notices of epoch 0, its reservation held."""
    f = grant_never_taken()
    f.run_until(f.now + 60.0)
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")
    d1 = f.nodes["d1"]
    assert d1.stats["takeover grant never taken: end told to the granter that asked"] >= 1
    assert ("d3", FinalMsg(WF, WorkflowState.FAILED, 1)) in f.sent_by("d1", FinalMsg)
    assert WF not in f.disks["d1"].late_grants  # nothing written for it
    asked = f.nodes["d3"].stats["takeover granter asked a holder that never acted"]
    f.run_until(f.now + 60.0)
    assert f.nodes["d3"].stats["takeover granter asked a holder that never acted"] == asked


def test_a_granter_not_restarted_asks_the_holder_itself():
    """As above, but asked by the granter's own rule only: d3's restart check (which
    asks the coordinator it follows too, after its restart) has let the workflow go,
    so the grant's ask, every `takeover_after_s`, is what ends it there."""
    f = grant_never_taken(restart_ask=False)
    f.run_until(f.now + 60.0)
    d3 = f.nodes["d3"]
    assert d3.stats["takeover granter asked a holder that never acted"] >= 1
    assert d3.stats["placement asked after a restart"] == 0 or not d3.restart_check.held
    assert f.disks["d3"].final.get(WF) is WorkflowState.FAILED
    assert not holds(f, "d3")


def test_a_holder_answers_no_ask_while_its_claim_runs_or_once_it_acted():
    """The end goes to an asker only where the case is a grant never taken: not while
    d1's claim runs or its plan is open (the claim, or the saga's driver, tells the end
    then), not once d1 acted in (or told the end on in) its epoch (it drives: its end
    notices carry the plan), nor to a domain of no step of the workflow."""
    f = granted_by_a_member_that_never_heard_the_end()
    d1 = f.nodes["d1"]
    key = "takeover grant never taken: end told to the granter that asked"
    f.step("d1", Message("d3", PlacementQuery(WF)))
    assert d1.stats[key] == 0  # the claim runs, the plan is open
    d1.state.plans[WF] = ()
    d1.takeover.forget(WF)  # the claim over, as at the plan's close
    f.step("d1", Message("d9", PlacementQuery(WF)))
    assert d1.stats[key] == 0  # no step of the workflow
    d1.state.epochs[WF] = (1, "d1")  # told the end on in epoch 1: it drives
    f.step("d1", Message("d3", PlacementQuery(WF)))
    assert d1.stats[key] == 0
    del d1.state.epochs[WF]
    d1.reliable("d3", ("final", WF, "d3"), FinalMsg(WF, WorkflowState.FAILED, 1))
    f.step("d1", Message("d3", PlacementQuery(WF)))
    assert d1.stats[key] == 0  # an end of ours goes to it already: that one tells it
    d1.pending.pop(("final", WF, "d3"))
    f.step("d1", Message("d3", PlacementQuery(WF)))
    assert d1.stats[key] == 1
    assert f.sent_by("d1", FinalMsg)[-1] == ("d3", FinalMsg(WF, WorkflowState.FAILED, 1))


def test_a_granter_asks_nothing_of_a_holder_that_proved_its_win():
    """A holder that showed its certificate (it won the epoch we granted) drives the
    workflow and tells its end itself: no ask goes to it any more."""

    def grant_lost(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d3", "d1") and isinstance(msg, ClaimAnswerMsg) and msg.granted

    f = granted_by_a_member_that_never_heard_the_end(lost=grant_lost)
    f.hold = grant_lost  # d1 never takes d3's grant: its claim runs on
    d3 = f.nodes["d3"]
    let_restart_asks_go(d3)
    f.run_until(f.now + 10.0)
    key = "takeover granter asked a holder that never acted"
    assert d3.stats[key] >= 1 and WF in d3.takeover.late.asks  # asked, the claim runs
    d3.takeover.proof.proofs[WF] = (1, "d1", ())
    asked = d3.stats[key]
    f.run_until(f.now + 30.0)
    assert d3.stats[key] == asked
    assert WF not in d3.takeover.late.asks


def test_a_granter_asks_nothing_more_of_a_holder_that_answers_with_its_placements():
    """Only a Node that drives the workflow answers the question with its placements
    (restart_check.py): a holder that does acts, so it is asked no more (its proof,
    kept in memory only, may be lost with the asker's restart)."""

    def grant_lost(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d3", "d1") and isinstance(msg, ClaimAnswerMsg) and msg.granted

    f = granted_by_a_member_that_never_heard_the_end(lost=grant_lost)
    f.hold = grant_lost
    d3 = f.nodes["d3"]
    let_restart_asks_go(d3)
    f.run_until(f.now + 10.0)
    assert WF in d3.takeover.late.asks
    f.step("d3", Message("d0", PlacementAnswer(WF, 0, ())))  # not the holder: asked on
    assert WF in d3.takeover.late.asks
    f.step("d3", Message("d1", PlacementAnswer(WF, 1, ())))
    assert WF not in d3.takeover.late.asks
