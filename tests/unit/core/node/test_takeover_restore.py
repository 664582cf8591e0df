"""A takeover core rebuilt from the tables (agent/core/node/takeover.py, `Takeovers.core`),
Nodes driven by hand through the boundary (test_domain_loss.py's Federation): d0
coordinates s1 -> s2, both on d1; the round's extra acceptor (d2) holds no step."""

from __future__ import annotations

from fedorch.core.node import MemberState, Submit
from fedorch.core.node.records import ClaimMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.takeover import Role
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import NAMES, WF, Federation


def views(name: str, dead: str) -> list[MemberState]:
    """`name`'s view: `dead` DEAD, every other member ALIVE."""
    return [MemberState(m, "DEAD" if m == dead else "ALIVE") for m in NAMES if m != name]


def two_steps_on_d1() -> spec_pb2.WorkflowSpec:
    """s1, then s2 after it: both placed on d1 by the tests here."""
    return spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a"),
        spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])


def original_claims_past_a_dead_successor() -> Federation:
    """d0 dies after the commit, d1 wins epoch 1 (with d2's grant) and dies for good with
    s1 running. d0, back, fails s1 (started on d1, not idempotent) and tells its end in
    epoch 0; d2, holding epoch 1 for d1, answers it with d1's certificate. d0 follows
    that proven epoch and, d1 being DEAD, claims epoch 2 in the same step: its own grant
    of epoch 2 is written, no epoch it follows or acts in is (`epochs` has none). Its
    claims are lost."""
    fed = Federation()
    fed.step("d0", Submit(WF, two_steps_on_d1(), placement={"s1": "d1", "s2": "d1"}))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    fed.silent.add("d1")
    fed.running["d1"] = set()
    fed.net = []
    fed.silent.discard("d0")
    fed.restore("d0")
    for n in ("d2", "d3"):
        fed.step(n, MemberState("d0", "ALIVE"))
    fed.step("d0", *views("d0", "d1"))
    fed.deliver(keep=lambda src, dst, msg: src == "d0" and isinstance(msg, ClaimMsg))
    fed.net = []
    d0 = fed.nodes["d0"]
    assert d0.stats["takeover proven winner followed"] == 1
    core = d0.takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 2, "d0")
    assert fed.disks["d0"].granted[WF] == (2, "d0") and WF not in fed.disks["d0"].epochs
    return fed


def test_an_original_restarted_mid_claim_claims_again_and_ends_the_workflow() -> None:
    """Restarted before its claim won, d0 claims epoch 2 again; it acts only once d2
    grants it (a majority of d0, d1, d2 with its own), and ends the workflow FAILED.
    Rebuilt as acting in epoch 2 (its own name in `granted`, and `epochs` empty, which
    reads as epoch 0 held by the original), it never won the epoch, its end stayed told
    in epoch 0, which d2 refuses, and the workflow stayed RUNNING for ever (takeover
    soak seed 11000176)."""
    fed = original_claims_past_a_dead_successor()
    d0 = fed.restore("d0")
    core = d0.takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 2, "d0")
    assert (WF, 2) not in fed.evidence.acting
    fed.step("d0", *views("d0", "d1"))
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    assert fed.evidence.acting[(WF, 2)] == "d0"
    assert fed.disks["d0"].epochs[WF] == (2, "d0")
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    _, state, _, error = fed.disks["d0"].results[WF]["s1"]
    assert state.name == "FAILED" and "d1" in error


def test_a_restored_node_acts_only_in_the_epoch_its_act_wrote() -> None:
    """The rule over the tables: acting in epoch e is `epochs` holding (e, us), or epoch
    0 at the original with no `epochs` entry; our own grant of a later epoch alone is a
    claim. The original acting in epoch 0 and a successor acting in its won epoch are
    rebuilt acting; a successor that acted in epoch 1 and claimed epoch 3 since is
    rebuilt claiming epoch 3."""
    fed = original_claims_past_a_dead_successor()
    # A successor acting in its won epoch, and the original at epoch 0, restored.
    assert fed.disks["d1"].epochs[WF] == fed.disks["d1"].granted[WF] == (1, "d1")
    fed.silent.discard("d1")
    core = fed.restore("d1").takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.ACTING, 1, "d1")
    fresh = Federation()
    fresh.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a")]), placement={"s1": "d1"}))
    fresh.deliver()
    core = fresh.restore("d0").takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.ACTING, 0, "d0")
    # d1 acted in epoch 1, then claimed epoch 3 (its grant written, no win yet).
    fed.disks["d1"].granted[WF] = (3, "d1")
    core = fed.restore("d1").takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 3, "d1")


def test_a_claim_restored_counts_the_coordinator_it_claimed_past_as_gone() -> None:
    """d0 goes silent; d1 (its view: d0 DEAD) claims epoch 1, its claim reaching d0
    only, which grants it (the answer lost) and follows d1; d0's view then says d1
    DEAD, so d0, the original, claims epoch 2 past it, d2 grants that (the answer
    lost), and d0 dies for good. d1 restarts mid-claim and claims epoch 1 again: d2
    denies it, holding epoch 2 for d0, without proof. d0, the coordinator d1 claimed
    past, is gone, so d2's word leaves d1 no majority: it claims the next epochs, wins
    one with d2's grant and ends the workflow FAILED. Restored without the coordinator
    it claimed past, d1 waited for d0's vote, asking it again at every claim timeout,
    and the workflow never ended (takeover soak seed 178100853 with a cut one way)."""
    fed = Federation()
    fed.step("d0", Submit(WF, two_steps_on_d1(), placement={"s1": "d1", "s2": "d1"}))
    fed.deliver()
    fed.step("d1", MemberState("d0", "DEAD"))
    fed.net = [m for m in fed.net if m[1] == "d0"]  # d1's claim reaches d0 only
    fed.deliver(keep=lambda src, dst, msg: dst == "d1")
    fed.net = []  # d0's grant lost
    assert fed.disks["d0"].granted[WF] == (1, "d1")
    fed.step("d0", MemberState("d1", "DEAD"))
    fed.net = [m for m in fed.net if m[1] == "d2" and isinstance(m[2], ClaimMsg)]
    fed.deliver(keep=lambda src, dst, msg: dst == "d0")
    fed.net = []  # d2's grant lost; d0 dies for good
    fed.silent.add("d0")
    fed.running["d0"] = set()
    assert fed.disks["d2"].granted[WF] == (2, "d0")
    d1 = fed.restore("d1")
    core = d1.takeover.cores[WF]
    assert (core.role, core.epoch, core.coordinator) == (Role.CLAIMING, 1, "d1")
    fed.step("d1", *views("d1", "d0"))
    fed.deliver()
    fed.run_until(fed.now + 30.0)
    assert d1.stats["takeover denial without proof"] >= 1
    assert [d for (wf, _), d in fed.evidence.acting.items() if wf == WF] == ["d1"]
    assert core.role is Role.ACTING and core.epoch > 2
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
