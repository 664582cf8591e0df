"""The lost domain back, told its step was placed again, keeps its own SUCCEEDED result
of a step not idempotent (agent/core/node/placed_here.py, "Started here"): d0
coordinates; s0 on d2, s1 on d1 needs s0, s1 not idempotent (and, where a test says
so, s2 needs s1); step attempts end only when a test says so. The story is
test_placed_here_started.py's, with s1's attempt on d1 ending SUCCEEDED while d1 is cut
off, what it sends lost."""

from __future__ import annotations

from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.node import StepEnded
from fedorch.core.node.ready import Ready
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.stories import committed_in
from tests.unit.core.node.test_domain_loss import WF, Federation, result, step
from tests.unit.core.node.test_placed_here_started import (
    elected,
    s1_started_on_d1_and_placed_again_unheard,
)
from tests.unit.core.node.test_replacement import runs_of

OUT = {"made": "on d1"}


class Refusing(Federation):
    """A message the Node refuses as a protocol error is dropped, as the drivers do
    (the new domain in doubt long enough asks the original to recover the round)."""

    def step(self, name: str, *inputs: object) -> Ready:
        try:
            return super().step(name, *inputs)
        except RemoteProtocolError as e:
            self.refused.append((name, str(e)))
            return self.flush(name)


def s1_succeeded_on_d1_cut_off(*, s2: str = "") -> tuple[Federation, str]:
    """s0 SUCCEEDS on d2: its result reaches d1, which starts s1, and is lost on its way
    to d0. d1 is cut off; d0, judging s1 not started, places it again and tells
    everyone, but the new domain's acknowledgement is lost: d0 has the COMMIT on record
    and has not sent it. s1's attempt on d1 ends SUCCEEDED meanwhile, with OUT, what it
    sends lost (`s2`: where s2, after s1, is placed; none if ""). Returns the fed and
    the new domain."""
    steps = [step("s0"), step("s1", needs=("s0",))]
    placement = {"s0": "d2", "s1": "d1"}
    if s2:
        steps.append(step("s2", needs=("s1",)))
        placement["s2"] = s2
    fed = committed_in(Refusing(), steps, placement)
    new = s1_started_on_d1_and_placed_again_unheard(fed, s2)
    (run,) = [r for r in fed.running["d1"] if r[1] == "s1"]
    fed.step("d1", StepEnded(*run, ok=True, outputs=OUT))
    fed.net = []  # lost: d1 is cut off
    assert result(fed, "d1", "s1")[1:3] == (StepState.SUCCEEDED, OUT)
    if s2 == "d1":  # started on s1's outputs at once, and SUCCEEDS too, cut off
        assert fed.nodes["d1"].progress[WF].inputs("s2") == {"s1": OUT}
        (run,) = [r for r in fed.running["d1"] if r[1] == "s2"]
        fed.step("d1", StepEnded(*run, ok=True))
        fed.net = []  # lost
    return fed, new


def ran_once_and_succeeded(fed: Federation, new: str) -> None:
    """s1 ran once, on d1; d1 kept its result, handed no COMMIT out, and the workflow
    ended SUCCEEDED everywhere, the new domain's YES released at the end."""
    assert runs_of(fed, "s1") == [("d1", 1)]  # once
    assert fed.nodes["d1"].stats["re-placement COMMIT handed out by a successor"] == 0
    assert fed.nodes["d1"].stats["result of an older placement dropped here"] == 0
    assert result(fed, "d1", "s1")[1:3] == (StepState.SUCCEEDED, OUT)  # kept
    for n in ("d1", "d2", new):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert not fed.nodes[new].participant.holds()  # its YES released at the end


def test_the_lost_domain_restarted_and_elected_keeps_its_succeeded_run_and_hands_out_no_commit(
) -> None:
    """d1 restarts after its attempt SUCCEEDED: its own result is the one word that s1
    ran. Kept, d1 hands the new placement's COMMIT out to nobody and ends the workflow
    SUCCEEDED on it; s1 never starts a second time (dropped, d1 handed the COMMIT out
    and s1, not idempotent, ran on the new domain too)."""
    fed, new = s1_succeeded_on_d1_cut_off()
    elected(fed, new, restart=True)
    ran_once_and_succeeded(fed, new)


def test_the_lost_domain_healed_and_elected_keeps_its_succeeded_run_and_hands_out_no_commit(
) -> None:
    """The same with d1 not restarted: its link heals (the same result, in memory)."""
    fed, new = s1_succeeded_on_d1_cut_off()
    elected(fed, new, restart=False)
    ran_once_and_succeeded(fed, new)


def test_a_step_after_it_here_that_ran_on_its_outputs_keeps_it_too() -> None:
    """s2 on d1 needs s1: it started on d1's own outputs as s1 ended there, and
    SUCCEEDED, cut off; d0 placed both again. d1's link heals: s1's result, every step
    that needs it ended, is kept, and s2's with it; d1, elected, ends the workflow
    SUCCEEDED on both and hands neither COMMIT out: each ran once."""
    fed, new = s1_succeeded_on_d1_cut_off(s2="d1")
    elected(fed, new, restart=False)
    ran_once_and_succeeded(fed, new)
    assert runs_of(fed, "s2") == [("d1", 1)]  # once
    assert result(fed, "d1", "s2")[1] is StepState.SUCCEEDED  # kept
