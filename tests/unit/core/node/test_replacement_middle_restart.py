"""A step placed d1 -> d2 -> d3, its middle domain d2 holding the workflow's own COMMIT
(learned and acknowledged, so no COMMIT notice goes to it again), cut off while the
step moved on to d3, and the coordinator d0 restarted meanwhile: what d0 told d2 of
the move (its PlacedMsg, resent until acknowledged) was in memory only. Does d2 learn
the step moved away, or does its attempt run beside d3's?

It learns it, with coordinator takeover (the daemon's mode): d0's restore tells every
placement on record again (replacement_telling.py, `retell`) to every domain of the
workflow, and those are every domain a step was placed on before as well as its lost
and new ones (replacement.py, `domains_of`, from the durable `earlier_domains`); the
tell is resent until d2, back, acknowledges it, and d2 stops its attempt of a
placement that is over (placed_here.py, `take`). So the gap is not there with
takeover; this test is its proof (it fails with the restore's tell left out). Without
takeover the restore tells only a placement whose round's COMMIT record is still kept
(d3 acknowledged it, so it was collected): d2 is told nothing and runs the step beside
d3 until the end, its result refused by its epoch (`chain_and_restart(NoTakeover)`
shows it; not built yet, replacement_telling.py says why)."""

from __future__ import annotations

from fedorch.core.node import MemberState, Submit
from fedorch.core.node.records import PlacedMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_domain_loss import WF, Federation, step
from tests.unit.core.node.test_replacement import runs_of


def views(fed: Federation, domain: str, state: str, told: tuple[str, ...]) -> None:
    for n in told:
        fed.step(n, MemberState(domain, state))
    fed.deliver()


def chain_and_restart(federation: type[Federation]) -> tuple[Federation, int, int]:
    """s1 on d2, s2 (idempotent) on d1. d1 dies: s2 is placed on d2 (d3 gone in d0's
    view then), which starts it. d1 is back (restarted), then d2 is cut off with its
    attempt running: s2 is placed on d3, which starts it (its COMMIT acknowledged, the
    round's record collected), d2 told nothing. d0 restarts; d2 is back. Returns the
    federation, s2's latest epoch and where d0's Readies since its restore begin."""
    fed = federation()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1", idempotent=True), step("s2", idempotent=True)]),
        placement={"s1": "d2", "s2": "d1"}))
    fed.deliver()
    assert fed.disks["d2"].learned[(WF, 1)].commit  # d2 holds the workflow's COMMIT
    fed.silent.add("d1")
    fed.running["d1"] = set()
    fed.step("d0", MemberState("d3", "DEAD"))
    views(fed, "d1", "DEAD", ("d0", "d2", "d3"))
    assert fed.disks["d0"].placements[WF]["s2"][1:] == ("d2", "d1")
    assert ("d2", (WF, "s2", 1)) in fed.started
    fed.end("d2", "s1")
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", *[MemberState(m, "ALIVE") for m in ("d0", "d2", "d3")])
    fed.step("d0", MemberState("d3", "ALIVE"))
    views(fed, "d1", "ALIVE", ("d0", "d2", "d3"))
    fed.run_until(fed.now + 5.0)
    fed.silent.add("d2")  # cut off: its attempt of s2 goes on
    views(fed, "d2", "DEAD", ("d0", "d1", "d3"))
    epoch, new, lost = fed.disks["d0"].placements[WF]["s2"]
    assert (new, lost) == ("d3", "d2")
    assert fed.disks["d0"].earlier_domains[WF]["s2"] == ("d1", "d2")
    assert (WF, epoch) not in fed.disks["d0"].records  # d3 acknowledged the COMMIT
    before = len(fed.readies["d0"])
    fed.restore("d0")
    fed.step("d0", *[MemberState(m, "DEAD" if m == "d2" else "ALIVE")
                     for m in ("d1", "d2", "d3")])
    fed.deliver()
    fed.silent.discard("d2")
    views(fed, "d2", "ALIVE", ("d0", "d1", "d3"))
    fed.run_until(fed.now + 10.0)
    return fed, epoch, before


def test_a_middle_domain_learns_after_the_coordinators_restart_that_its_step_moved_on(
) -> None:
    """s1 on d2, s2 (idempotent) on d1. d1 dies: s2 is placed on d2 (d3 gone in d0's
    view then), which starts it. d1 is back (restarted), then d2 is cut off with its
    attempt running: s2 is placed on d3, which starts it, d2 told nothing. d0 restarts.
    d2 back: told by d0 that s2 is at d3, it stops its attempt, and the workflow ends
    with s2's result from d3."""
    fed, epoch, before = chain_and_restart(Federation)
    assert any(o.to == "d2" and isinstance(o.msg, PlacedMsg) and o.msg.step_id == "s2"
               and o.msg.epoch == epoch for r in fed.readies["d0"][before:]
               for o in r.send_now + r.send_after_write)  # told again since the restore
    assert fed.disks["d2"].placements[WF]["s2"] == (epoch, "d3", "d2")
    assert ("d2", (WF, "s2", 1)) in fed.stopped  # its placement is over
    assert [r for r in fed.running["d2"] if r[1] == "s2"] == []
    fed.end("d3", "s2")
    fed.run_until(fed.now + 10.0)
    assert runs_of(fed, "s2") == [("d1", 1), ("d2", 1), ("d3", 1)]
    for n in ("d0", "d2", "d3"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED

