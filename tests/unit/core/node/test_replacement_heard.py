"""A step waiting to be placed again, heard started on the domain it was lost on
(agent/core/node/replacement_heard.py): d0 coordinates; s1 on d2, s2 on d1 needs s1;
what d2 and d1 send d0 is held up (d0 paused) until after d0 sees d1 DEAD."""

from __future__ import annotations

from fedorch.core.node import MemberState, Message, StepEnded
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_domain_loss import WF, committed, result, step
from tests.unit.core.node.test_replacement import end_everything, runs_of


def d1_started_s2_and_died_while_d0_heard_nothing(*, idempotent: bool):
    """s1 SUCCEEDS on d2; d1 has its result and starts s2; every message to d0 is held
    up. d1 dies for good; every view says so, d0's first (its loss verdict judges s2 not
    started: s1, on a third domain, is running as far as d0 knows, and d0 never
    restarted), and its round for s2 is left preparing; then what was held up reaches
    d0: s1's SUCCEEDED, and d1's RUNNING of s2."""
    fed = committed([step("s1"), step("s2", needs=("s1",), idempotent=idempotent)],
                    {"s1": "d2", "s2": "d1"})
    fed.step("d2", StepEnded(*sorted(fed.running["d2"])[0], ok=True))
    fed.deliver(keep=lambda src, dst, msg: dst == "d0")
    assert runs_of(fed, "s2") == [("d1", 1)]
    held, fed.net = fed.net, []
    fed.silent.add("d1")
    fed.running["d1"] = set()
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    assert fed.lost == [("d0", (WF, "s2"), "d1", "REPLACE")]  # judged not started
    assert fed.nodes["d0"].stats["re-placement round started"] == 1
    for src, dst, msg in held:
        fed.step(dst, Message(src, msg))
    fed.deliver()
    return fed


def test_a_step_heard_started_where_it_was_lost_is_not_placed_again() -> None:
    """Takeover soak seed 92000324: placed again, the not-idempotent s2 ran twice (d1,
    then its new domain). d1's RUNNING, refused as from a placement that is over, is its
    word that s2 started: the round is cancelled and s2 FAILS as started."""
    fed = d1_started_s2_and_died_while_d0_heard_nothing(idempotent=False)
    fed.run_until(fed.now + 30.0)
    assert runs_of(fed, "s2") == [("d1", 1)]  # once, where it was lost only
    assert "s2" not in fed.disks["d0"].placements.get(WF, {})  # no round placed it
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    error = result(fed, "d0", "s2")[3]
    assert error.startswith("domain d1 was lost (DEAD) while the step ran;")
    assert "d1 reported attempt 1 started after the loss" in error
    assert fed.nodes["d0"].stats[
        "re-placement given up: the step was heard started where it was lost"] == 1
    assert not any(fed.nodes[n].participant.holds() for n in ("d2", "d3"))  # released


def test_an_idempotent_step_heard_started_is_still_placed_again() -> None:
    """Running it again is harmless: the round goes on, and s2 succeeds elsewhere."""
    fed = d1_started_s2_and_died_while_d0_heard_nothing(idempotent=True)
    assert fed.nodes["d0"].stats[
        "re-placement given up: the step was heard started where it was lost"] == 0
    end_everything(fed)
    fed.run_until(fed.now + 30.0)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert result(fed, "d0", "s2")[1] is StepState.SUCCEEDED
    assert [d for d, _ in runs_of(fed, "s2")][0] == "d1" and len(runs_of(fed, "s2")) == 2
