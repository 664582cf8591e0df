"""A told end kept at a Node, replaced by a later epoch's proven end
(agent/core/node/told_ends.py), through the boundary (test_domain_loss.py's Federation):
d0 coordinates; the round's electorate is its acceptors."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message
from fedorch.core.node.inputs import Cancel
from fedorch.core.node.records import AckMsg, FinalMsg
from fedorch.core.node.takeover_grants import sign_grant
from fedorch.core.workflow.lifecycle import WorkflowState

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import WF, Federation, committed, step
from tests.unit.core.node.test_takeover import fake_signer


def certificate(fed: Federation, holder: str, granters: tuple[str, ...]) -> tuple:
    """Grants of epoch 1 to `holder`, signed by `granters`, in the round's electorate."""
    electorate = fed.disks["d0"].rows[WF].acceptors
    return tuple(sign_grant(fake_signer(g), g, WF, 1, holder, electorate)
                 for g in sorted(granters))


def told_the_originals_end(participants: dict[str, str], told: str) -> Federation:
    """d0's workflow committed with `participants`; d0 tells `told` the end it holds,
    SUCCEEDED, before making it (domain_loss.py), and is heard from no more."""
    fed = committed([step(s) for s in participants], participants)
    fed.net.clear()
    fed.step(told, Message("d0", FinalMsg(WF, WorkflowState.SUCCEEDED)))
    assert fed.disks[told].final[WF] is WorkflowState.SUCCEEDED  # kept at once
    fed.net.clear()
    fed.silent.add("d0")
    return fed


def test_a_participant_that_granted_no_later_epoch_takes_its_proven_end_instead() -> None:
    """d3 runs a step and grants nothing (the takeover soak's seeds 4800408, 4802955):
    d1 wins epoch 1 with d0's, d1's and d2's grants (of the four acceptors), never
    asking d3, and cancels. Its end, with the certificate, replaces the epoch-0 end d3
    was told, which d0 never made (enough electors never acknowledged it): d3 ends the
    workflow as the latest coordinator did, keeps that end's proof, follows epoch 1
    and acknowledges."""
    fed = told_the_originals_end({"s1": "d1", "s2": "d2", "s3": "d3"}, told="d3")
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2", "d3")
    won = certificate(fed, "d1", ("d0", "d1", "d2"))
    ready = fed.step("d3", Message("d1", FinalMsg(WF, WorkflowState.CANCELLED, 1, won=won)))
    d3 = fed.nodes["d3"]
    assert fed.disks["d3"].final[WF] is WorkflowState.CANCELLED
    assert fed.disks["d3"].end_proofs[WF] == (1, "d1", won)
    assert fed.disks["d3"].epochs[WF] == (1, "d1")
    assert ("d1", AckMsg(("final", WF, "d3"))) in sent(ready)
    assert (WF, WorkflowState.CANCELLED) in ready.status_changes
    assert d3.stats["told end replaced by a later epoch's"] == 1
    # Asked by a later claimant, it answers with the end it holds now.
    assert d3.end_notices.end_proof(WF) == (1, "d1", won)


def test_an_extra_acceptor_holding_no_step_takes_the_proven_end_instead() -> None:
    """d2 holds no step, only the round's acceptor records: it kept d0's told end as an
    elector (elector_ends.py), and takes d1's proven end of epoch 1 instead (d0 and d1
    granted it), so it answers a later claim with that end."""
    fed = told_the_originals_end({"s1": "d1"}, told="d2")
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    won = certificate(fed, "d1", ("d0", "d1"))
    ready = fed.step("d2", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1, won=won)))
    assert fed.refused == []
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].epochs[WF] == (1, "d1")
    assert ("d1", AckMsg(("final", WF, "d2"))) in sent(ready)


def test_nothing_but_a_proven_later_epoch_replaces_a_told_end() -> None:
    """A certificate of no majority (two grants of four) proves nothing: the told end stays.
    Neither does an end made here: d0 made its end on results, and a later epoch's
    proven end that differs cannot be (told_ends.py's argument), so it is kept."""
    fed = told_the_originals_end({"s1": "d1", "s2": "d2", "s3": "d3"}, told="d3")
    minority = certificate(fed, "d1", ("d1", "d2"))
    fed.step("d3", Message("d1", FinalMsg(WF, WorkflowState.CANCELLED, 1, won=minority)))
    assert fed.disks["d3"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.nodes["d3"].stats["told end replaced by a later epoch's"] == 0

    fed = committed([step("s1")], {"s1": "d1"})
    fed.end("d1", "s1")
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED  # made by d0
    won = certificate(fed, "d1", ("d1", "d2"))
    fed.step("d0", Message("d1", FinalMsg(WF, WorkflowState.FAILED, 1, won=won)))
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert fed.nodes["d0"].stats["told end replaced by a later epoch's"] == 0


def test_a_participant_that_follows_the_epoch_already_takes_its_holders_proven_end() -> None:
    """d3 heard of epoch 1 before its holder's proven end: a notice of d1's without the
    certificate (as a claimant tells on an end, the takeover part's Announce) made it
    follow d1 (Compensating.later_end) and keep its own end. d1's end with the
    certificate, of the epoch followed here, from its holder, replaces it."""
    fed = told_the_originals_end({"s1": "d1", "s2": "d2", "s3": "d3"}, told="d3")
    fed.step("d3", Message("d1", FinalMsg(WF, WorkflowState.CANCELLED, 1)))
    assert fed.disks["d3"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d3"].epochs[WF] == (1, "d1")
    won = certificate(fed, "d1", ("d0", "d1", "d2"))
    fed.step("d3", Message("d1", FinalMsg(WF, WorkflowState.CANCELLED, 1, won=won)))
    assert fed.disks["d3"].final[WF] is WorkflowState.CANCELLED
    assert fed.disks["d3"].end_proofs[WF] == (1, "d1", won)


def test_a_successors_made_end_still_goes_to_an_elector_keeping_an_older_told_end() -> None:
    """s1 on d1; d2 is the extra acceptor. d0 takes a cancel and tells CANCELLED first:
    d2 keeps it and acknowledges, but the acknowledgement is lost (d0 crashed before
    writing it) and d1's notice is late; d2 goes down. d1, its view saying d0 DEAD,
    claims epoch 1: d0, knowing no member took its end, grants it (its end void), and
    d1 wins with d0's grant and its own, ends s1 and the workflow SUCCEEDED, told
    first, made on d0's acknowledgement (d2 not needed: the two are a majority). d2,
    back, must still hear that end with its certificate, which replaces the CANCELLED it
    kept, never made. Before, the made end went to the workflow's domains only, and d2
    kept CANCELLED for good against SUCCEEDED everywhere else (takeover soak seed
    20600021). d1 restarting meanwhile tells it again."""
    fed = committed([step("s1")], {"s1": "d1"})
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")

    def cancel_held(src: str, dst: str, msg: object) -> bool:
        return (src, dst) == ("d0", "d1") and isinstance(msg, FinalMsg) \
            or (src, dst) == ("d2", "d0") and isinstance(msg, AckMsg)

    fed.step("d0", Cancel(WF, "by its client"))
    fed.deliver(keep=cancel_held)
    assert fed.disks["d2"].final[WF] is WorkflowState.CANCELLED  # kept, acknowledged
    assert fed.nodes["d0"].domain_loss.held[WF] is WorkflowState.CANCELLED
    assert WF not in fed.disks["d0"].final_acked
    fed.net = []  # the late notice to d1 and d2's acknowledgement are lost
    fed.silent.add("d2")
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "DEAD"))
    fed.deliver()
    assert fed.disks["d1"].epochs[WF] == (1, "d1")
    fed.end("d1", "s1")
    fed.run_until(fed.now + 5.0)
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED  # made by d1
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert ("final", WF, "d2") in fed.nodes["d1"].pending  # still told to d2
    fed.restore("d1")  # and again after a restart (Ends.restore)
    assert ("final", WF, "d2") in fed.nodes["d1"].pending
    fed.silent.discard("d2")
    fed.restore("d2")
    fed.step("d1", MemberState("d2", "ALIVE"))
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.nodes["d2"].stats["told end replaced by a later epoch's"] == 1
    assert "d2" in fed.disks["d1"].final_acked[WF]
