"""The original coordinator back after its successor ended the workflow and died for
good, at a participant whose retention has forgotten the workflow since: the end's
record (core/node/ended_records.py) keeps the successor's certificate, so the
original's end notice, report or relay is answered with the later end and its proof
(EndNotices.later_end), as the kept workflow answered it, and the original follows it.
Before, the record kept no proof: the original was acknowledged or refused, and stayed
RUNNING for ever. Nodes driven by hand with coordinator takeover on
(test_domain_loss.py's), every Node with retention."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fedorch.core.node import MemberState, MemberViews, Submit
from fedorch.core.node.ready import Ready
from fedorch.core.node.retention import Retention
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2
from fedorch.runtime.node_store import SqliteDurable

from tests.unit.core.node.test_domain_loss import WF, Federation, dies, step

KEEP, LATE = 5.0, 10.0


class Retained(Federation):
    timing = dataclasses.replace(Federation.timing, retention=Retention(
        keep_ended_s=KEEP, max_ended_workflows=1000, late_message_s=LATE))


class Stored(Retained):
    """Every write group d2 applies goes to its `node.db` too, as the daemon's."""

    def __init__(self, where: Path) -> None:
        self.store = SqliteDurable(where / "d2.db")
        super().__init__()

    def flush(self, name: str) -> Ready:
        ready = super().flush(name)
        if name == "d2" and ready.writes:
            self.store.write(ready.writes)
        return ready


def forgotten_at_d2(fed: Retained, steps: list[spec_pb2.StepSpec],
                    placement: dict[str, str], order: tuple[str, ...]) -> None:
    """d0's workflow committed; d0 dies (DEAD in every view), d1 takes it over in epoch
    1; the steps end in `order` and d1 ends the workflow SUCCEEDED, tells d2 and d3,
    and dies for good; d3 goes down (it keeps its elector's end, and would answer).
    d2's retention then forgets the workflow, keeping its end as a record with d1's
    certificate."""
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=steps),
                          placement=placement))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    for name in order[:-1]:
        fed.end(placement[name], name)
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    fed.end(placement[order[-1]], order[-1])
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks["d2"].final[WF] is WorkflowState.SUCCEEDED
    dies(fed, "d1", told=("d2", "d3"))
    fed.silent.add("d3")
    fed.run_until(fed.now + KEEP + 3 * LATE)
    d2 = fed.disks["d2"]
    assert WF not in d2.final and WF not in d2.end_proofs
    assert d2.ended_records[WF][0] is WorkflowState.SUCCEEDED
    assert d2.ended_proofs[WF][:2] == (1, "d1") and d2.ended_proofs[WF][2]


def d0_back(fed: Retained, dead: tuple[str, ...]) -> None:
    """d0 restarts unaware of epoch 1, its view saying `dead` are DEAD."""
    fed.silent.discard("d0")
    fed.net.clear()
    fed.restore("d0")
    fed.step("d0", MemberViews(tuple(MemberState(m, "DEAD" if m in dead else "ALIVE")
                                     for m in ("d1", "d2", "d3"))))
    fed.deliver()
    fed.tick(fed.now + 2.0)


def follows_the_later_end(fed: Retained) -> None:
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED  # before: RUNNING
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.nodes["d2"].stats["later end read from a forgotten workflow's record"] >= 1
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert WF not in fed.disks["d2"].final  # the record answered; nothing kept again


def loss_verdict_story(fed: Retained) -> None:
    """s2 (d2) SUCCEEDED before d0 died; s1 (d1) after, its result never reached d0."""
    forgotten_at_d2(fed, [step("s1"), step("s2")], {"s1": "d1", "s2": "d2"}, ("s2", "s1"))


def test_the_originals_end_notice_is_answered_from_the_record_and_it_follows() -> None:
    """d0 comes back, sees d1 DEAD and fails s1: it tells FAILED in epoch 0 to d2, which
    forgot the workflow. d2 answers from its record with the SUCCEEDED end of epoch 1
    and d1's certificate, and d0 follows it. Before, d2 acknowledged the notice of a
    workflow it knew nothing of; d0, short of a majority, stayed RUNNING for ever."""
    fed = Retained()
    loss_verdict_story(fed)
    d0_back(fed, dead=("d1",))
    assert fed.nodes["d0"].stats["loss verdict: end told before it is made"] == 1
    follows_the_later_end(fed)
    assert fed.nodes["d2"].stats["end of an overtaken epoch answered with the later end"] >= 1


def test_the_originals_relay_is_answered_from_the_record_and_it_follows() -> None:
    """s1 (d1) SUCCEEDED, its result on record at d0; d1 takes over, ends SUCCEEDED with
    d2 (s2 needs s1) and dies. d0 comes back seeing d1 DEAD and relays s1's result to d2,
    which forgot the workflow: answered from the record, never acknowledged. Before, d2
    refused it (`not_known`) and d0 relayed it for ever, RUNNING."""
    fed = Retained()
    forgotten_at_d2(fed, [step("s1"), step("s2", needs=("s1",))],
                    {"s1": "d1", "s2": "d2"}, ("s1", "s2"))
    d0_back(fed, dead=("d1",))
    assert fed.nodes["d0"].stats["result of a gone domain relayed by the coordinator"] >= 1
    follows_the_later_end(fed)
    assert fed.nodes["d2"].stats["original coordinator told the later end"] >= 1
    assert ("d2", "not_known") not in fed.refused


def test_the_record_and_its_proof_read_back_from_node_db_answer_the_same(tmp_path) -> None:
    """The end notice's story, d2 restarted from its `node.db` after it forgot the
    workflow: the record and d1's certificate come back from the file as written
    (the proof verifies at d0 as before), and d0 follows the later end."""
    fed = Stored(tmp_path)
    loss_verdict_story(fed)
    fed.store.close()
    with SqliteDurable(tmp_path / "d2.db") as reopened:  # what a restarted agent reads
        disk = reopened.load()
    assert disk.ended_proofs[WF] == fed.disks["d2"].ended_proofs[WF]
    fed.disks["d2"] = disk
    fed.store = SqliteDurable(tmp_path / "d2.db")
    fed.restore("d2")
    d0_back(fed, dead=("d1",))
    follows_the_later_end(fed)
    fed.store.close()


def test_the_record_goes_with_its_proof() -> None:
    """The record's life bounds its proof: both go `keep_end_records_s` after it was
    kept, in one write group."""
    fed = Retained()
    loss_verdict_story(fed)
    fed.run_until(fed.now + Retention().keep_end_records_s + 1.0)
    assert WF not in fed.disks["d2"].ended_records
    assert WF not in fed.disks["d2"].ended_proofs


def test_the_originals_report_is_answered_from_the_record_and_it_follows() -> None:
    """d0's own s0 (idempotent, `on_domain_loss: fail`) runs when d0 dies; d1 takes over,
    fails s0, ends the workflow FAILED with d2 and dies for good; d2 forgets it. d0 comes
    back seeing every other member ALIVE: no verdict, no end to tell; it asks its
    electorate before it runs s0 again (original_asks.py, "Its own steps"; before, it
    ran s0 again and reported it to d2, s2 needing it), and d2 answers from its
    record. Before, d2 refused the report (`not_known`) and d0 reported it for ever,
    RUNNING."""
    s0 = spec_pb2.StepSpec(id="s0", capability="a", idempotent=True, retries=1,
                           on_domain_loss="fail")
    fed = Retained()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(
        name="w", steps=[s0, step("s1"), step("s2", needs=("s0",))]),
        placement={"s0": "d0", "s1": "d1", "s2": "d2"}))
    fed.deliver()
    fed.end("d1", "s1")
    fed.goes_silent_and_dead("d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d2"].final[WF] is WorkflowState.FAILED
    dies(fed, "d1", told=("d2", "d3"))
    fed.silent.add("d3")
    fed.run_until(fed.now + KEEP + 3 * LATE)
    assert WF not in fed.disks["d2"].final and WF in fed.disks["d2"].ended_proofs
    d0_back(fed, dead=())
    assert not fed.running["d0"]  # asked first: s0 does not run again
    fed.tick(fed.now + 2.0)
    assert fed.disks["d0"].rows[WF].state is WorkflowState.FAILED  # before: RUNNING
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    assert fed.nodes["d2"].stats["original coordinator told the later end"] >= 1
    assert ("d2", "not_known") not in fed.refused
