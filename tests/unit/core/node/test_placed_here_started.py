"""The lost domain back, told its step was placed again, keeps its own result of an
attempt that started there when the step is not idempotent (agent/core/node/
placed_here.py, "Started here"): d0 coordinates; s0 on d2, s1 on d1 needs s0, s1 not
idempotent; step attempts end only when a test says so."""

from __future__ import annotations

from fedorch.core.node import MemberState, StepEnded
from fedorch.core.node.records import AckMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, Federation, committed, result, step
from tests.unit.core.node.test_replacement import runs_of


def s1_started_on_d1_unheard_and_placed_again() -> tuple[Federation, str]:
    """s0 SUCCEEDS on d2: its result reaches d1, which starts s1, and is lost on its way
    to d0, as is d1's word of s1. d1 dies; d0, judging s1 not started (s0 still running
    as far as it knows), places it again and tells everyone, but the new domain's
    acknowledgement is lost: d0 has the COMMIT on record and has not sent it. Returns
    the fed and the new domain."""
    fed = committed([step("s0"), step("s1", needs=("s0",))], {"s0": "d2", "s1": "d1"})
    return fed, s1_started_on_d1_and_placed_again_unheard(fed, d1_dies=True)


def s1_started_on_d1_and_placed_again_unheard(fed: Federation, s2: str = "", *,
                                               d1_dies: bool = False) -> str:
    """In `fed` (s0 on d2, s1 on d1 after it; `s2`: where s2, after s1, is placed, if
    anywhere), s0 SUCCEEDS: its result reaches d1, which starts s1, and is lost on its
    way to d0. d1 goes silent (`d1_dies`: its attempt gone with it) and is judged DEAD;
    d0 places s1 again and tells everyone, the new domain's acknowledgement lost, so
    d0 has the COMMIT on record and has not sent it. Returns the new domain."""
    (run,) = [r for r in fed.running["d2"] if r[1] == "s0"]
    fed.step("d2", StepEnded(*run, ok=True))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, ResultMsg) and dst == "d0")
    fed.net = []  # lost
    assert runs_of(fed, "s1") == [("d1", 1)]
    fed.silent.add("d1")
    if d1_dies:
        fed.running["d1"] = set()
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))

    def new_acknowledges(src: str, dst: str, msg: object) -> bool:
        placed = fed.disks["d0"].placements.get(WF, {}).get("s1")
        return placed is not None and src == placed[1] and isinstance(msg, AckMsg) \
            and msg.msg_id[0] == "placed"

    fed.deliver(keep=new_acknowledges)
    fed.net = []  # lost
    epoch, new, lost = fed.disks["d0"].placements[WF]["s1"]
    assert lost == "d1"
    assert fed.lost == [("d0", (WF, s), "d1", "REPLACE")  # judged not started
                        for s in ("s1", "s2") if s == "s1" or s2 == "d1"]
    assert fed.nodes[new].participant.status((WF, epoch)) == "prepared"  # in doubt
    return new


def elected(fed: Federation, new: str, *, restart: bool) -> None:
    """d1 back (restarted, or its link healed), seeing d0 DEAD: it learns the placement
    and wins epoch 1, d0 granting it (so d0 never sends the COMMIT)."""
    fed.silent.discard("d1")
    if restart:
        fed.restore("d1")
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState(new, "ALIVE"))
    for n in ("d0", "d2", new):
        fed.step(n, MemberState("d1", "ALIVE"))
    fed.deliver()
    for _ in range(6):
        fed.tick(fed.now + 2.0)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d1"].placements[WF]["s1"][1] == new  # told the placement


def test_the_lost_domain_elected_keeps_its_started_attempt_and_hands_out_no_commit(
) -> None:
    """d1 restarts (its attempt of s1 ends FAILED, interrupted by the restart), learns
    the placement and wins epoch 1, d0 granting it (so d0 never sends the COMMIT). Its
    own result is the one word that s1 ran: kept, d1 hands the new placement's COMMIT
    out to nobody and ends the workflow FAILED on it; s1 never starts a second time
    (takeover soak seed 184100747: dropped, d1 handed the COMMIT out and the step not
    idempotent ran twice)."""
    fed, new = s1_started_on_d1_unheard_and_placed_again()
    elected(fed, new, restart=True)  # its attempt of s1 FAILED, interrupted by it
    assert runs_of(fed, "s1") == [("d1", 1)]  # once
    assert fed.nodes["d1"].stats["re-placement COMMIT handed out by a successor"] == 0
    assert fed.nodes["d1"].stats["result of an older placement dropped here"] == 0
    assert result(fed, "d1", "s1")[1] is StepState.FAILED  # kept
    for n in ("d1", "d2", new):
        assert fed.disks[n].final[WF] is WorkflowState.FAILED
    assert not fed.nodes[new].participant.holds()  # its YES released at the end
