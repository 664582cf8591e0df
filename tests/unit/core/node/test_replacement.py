"""A step lost with its domain, placed again by a round of its own, in the Node
(agent/core/node/replacement.py), Nodes driven by hand with coordinator takeover on (as
the node engine composes it), and off: d0 coordinates; steps are on d1, d2; d1 dies
for good; step attempts end only when a test says so."""

from __future__ import annotations

import random
from collections import Counter

from fedorch.core.negotiation.messages import Decision
from fedorch.core.node import MemberState, MemberViews, Message, Node, Submit
from fedorch.core.node.records import PlacedMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.test_domain_loss import (
    NAMES,
    WF,
    Federation,
    committed,
    dies,
    result,
    step,
)
from tests.unit.core.node.test_takeover import fake_signer


def new_domain(fed: Federation, step_id: str) -> str:
    """Where the coordinator placed `step_id` again (its placement on record)."""
    epoch, domain, lost = fed.disks["d0"].placements[WF][step_id]
    assert lost == "d1" and domain not in ("d1", "d0", "")  # never the coordinator itself
    assert epoch > fed.disks["d0"].rows[WF].round  # a round number never used before
    return domain


def runs_of(fed: Federation, step_id: str) -> list[tuple[str, int]]:
    """Every attempt of `step_id` started anywhere, as (domain, attempt), in order."""
    return [(node, run[2]) for node, run in fed.started if run[1] == step_id]


def end_everything(fed: Federation) -> None:
    """Every running attempt ends successfully, until none is left."""
    for _ in range(10):
        running = [(n, r) for n in NAMES for r in sorted(fed.running[n])]
        if not running:
            return
        for n, r in running:
            fed.end(n, r[1])
            fed.running[n].discard(r)  # ended (the harness keeps what was not stopped)
    raise AssertionError("attempts kept starting")


def test_a_step_that_had_not_started_is_placed_again_and_succeeds_elsewhere() -> None:
    """s2 on d1 needs s1 on d2, still running: s2 never started on d1."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    dies(fed, "d1")
    new = new_domain(fed, "s2")
    assert fed.lost == [("d0", (WF, "s2"), "d1", "REPLACE")]
    assert WF not in fed.disks["d0"].final  # not failed: placed again
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert result(fed, "d0", "s2")[1] is StepState.SUCCEEDED
    assert runs_of(fed, "s2") == [(new, 1)]  # once, in its new domain only
    assert fed.disks[new].final[WF] is WorkflowState.SUCCEEDED  # told the end too
    assert not fed.nodes[new].participant.holds()  # its reservation released


def test_a_step_whose_domain_was_the_only_participant_ends_at_its_new_domain() -> None:
    """The workflow's one step was on d1, which dies (d3 is gone already): it is placed
    again on d2, the round's extra acceptor, the only participant left to acknowledge
    the end told first (with takeover), so it counts as one (domain_loss.py,
    `_participants`), or the end would wait for d1 for ever."""
    fed = committed([step("s1", idempotent=True)], {"s1": "d1"})
    dies(fed, "d3")
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    assert new == "d2"
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks[new].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s1") == [("d1", 1), (new, 1)]


def test_a_started_idempotent_step_is_run_again_elsewhere_once() -> None:
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    assert runs_of(fed, "s1") == [("d1", 1)]
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    # Attempt 1 again, under the new placement: each attempt once per placement.
    assert runs_of(fed, "s1") == [("d1", 1), (new, 1)]
    assert len(set(fed.started)) == len(fed.started)
    assert fed.nodes["d0"].stats["step placed again"] == 1


def test_the_new_placement_is_told_before_its_commit_is_sent() -> None:
    """With takeover: every live participant acknowledges the new placement before the
    new domain hears the round's COMMIT (a successor elected meanwhile finds it)."""
    fed = committed([step("s1", idempotent=True), step("s2"), step("s3")],
                    {"s1": "d1", "s2": "d2", "s3": "d3"})
    held: list[tuple[str, str, object]] = []

    def keep_told(src: str, dst: str, msg: object) -> bool:
        """The new placement, held on its way to the participant that is not its domain."""
        if isinstance(msg, PlacedMsg) and dst != msg.domain:
            held.append((src, dst, msg))
            return True
        return False

    fed.silent.add("d1")
    fed.running["d1"] = set()
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    fed.deliver(keep=keep_told)
    new = new_domain(fed, "s1")
    assert held  # told, not yet acknowledged by the other participant

    def commits() -> list:
        return [m for _, m in fed.sent_by("d0", Decision)
                if m.key[1] > 1 and m.value.commit]

    assert not commits()
    assert runs_of(fed, "s1") == [("d1", 1)]  # not run again yet
    fed.net = []  # the held PlacedMsgs go again, as resent
    fed.net.extend(held)
    fed.deliver()
    assert len(commits()) == 1
    assert runs_of(fed, "s1") == [("d1", 1), (new, 1)]


def test_a_started_step_that_is_not_idempotent_still_fails_naming_its_domain() -> None:
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d2", "s2")
    dies(fed, "d1")
    _, state, _, error = result(fed, "d0", "s1")
    assert state is StepState.FAILED and "domain d1 was lost (DEAD)" in error
    assert "not idempotent" in error
    assert not fed.disks["d0"].placements  # nothing placed again
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert runs_of(fed, "s1") == [("d1", 1)]


class NoRoom(Federation):
    """Only d1 has room for a step: no other domain can take one."""

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 4 if name == "d1" else 0}, timing=self.timing,
                    peers=NAMES, rng=random.Random(NAMES.index(name)),
                    evidence=self.evidence, sign_grant=fake_signer(name),
                    disk=self.disks[name], now=self.now)


def test_with_no_domain_free_the_step_fails_with_the_reason() -> None:
    fed = NoRoom()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1", idempotent=True)]), placement={"s1": "d1"}))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    dies(fed, "d1")
    _, state, _, error = result(fed, "d0", "s1")
    assert state is StepState.FAILED
    assert "domain d1 was lost (DEAD)" in error
    assert "no domain could take it after d1 was lost" in error
    # Nobody alive took part to tell the end first: held until d1 comes back (as for
    # a loss verdict, test_domain_loss), the step FAILED on record.
    assert fed.nodes["d0"].stats["re-placement failed"] == 1
    assert not fed.disks["d0"].placements


def test_a_late_result_of_the_old_placement_is_refused() -> None:
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    epoch = fed.disks["d0"].placements[WF]["s1"][0]
    late = ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {"from": "d1"}, "", 0)
    fed.step("d0", Message("d1", late))
    assert fed.nodes["d0"].stats["result of an older placement refused"] == 1
    assert fed.nodes["d0"].progress[WF].steps["s1"].state is not StepState.SUCCEEDED
    assert "s1" not in fed.disks["d0"].results.get(WF, {}) \
        or fed.disks["d0"].results[WF]["s1"][1] is not StepState.SUCCEEDED
    end_everything(fed)
    _, state, outputs, _ = result(fed, "d0", "s1")
    assert state is StepState.SUCCEEDED and outputs.get("from") != "d1"
    assert fed.nodes[new].progress.get(WF) is None  # ended there
    assert Counter(r[0] for r in runs_of(fed, "s1")) == {"d1": 1, new: 1}
    assert epoch == fed.disks[new].placements[WF]["s1"][0]  # the new domain's epoch


def test_a_restarted_coordinator_keeps_the_new_placement() -> None:
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    d0 = fed.restore("d0")
    assert d0.progress[WF].steps["s1"].domain == new
    assert d0.progress[WF].steps["s1"].epoch == fed.disks["d0"].placements[WF]["s1"][0]
    fed.step("d0", MemberViews(tuple(MemberState(m, "DEAD" if m == "d1" else "ALIVE")
                                     for m in NAMES if m != "d0")))
    fed.deliver()
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert [r for r in runs_of(fed, "s1") if r[0] == new] == [(new, 1)]
