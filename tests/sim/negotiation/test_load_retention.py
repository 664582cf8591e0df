"""3,000 workflows through the simulator (agent/sim/negotiation/load.py): with retention
each Node ends holding at most max_ended_workflows workflows (cores, table rows), whatever
the number run, but every acceptor record (never forgotten: a recovery ballot may need
them); without it, every one. Counts, not times."""

from __future__ import annotations

from fedorch.sim.negotiation.load import LOAD_RETENTION, run_load

WORKFLOWS = 3_000
ROWS_PER_WORKFLOW = 20  # a three-domain workflow's rows at one Node are about 9


def test_with_retention_a_node_holds_at_most_max_ended_workflows() -> None:
    bound = LOAD_RETENTION.max_ended_workflows  # the load is over: none in flight
    report = run_load(WORKFLOWS, LOAD_RETENTION)
    assert report.violations == []
    assert report.ended == WORKFLOWS
    for name, held in report.held.items():
        assert held.cores <= bound, (name, held)
        assert held.workflows <= bound and held.tracked <= bound, (name, held)
        assert held.rows <= bound * ROWS_PER_WORKFLOW, (name, held)
        # Acceptor records are never forgotten (core/node/retention.py): all here.
        assert held.acceptor_in_memory == WORKFLOWS, (name, held)
        # Admissions are kept for their window (an hour), not per workflow: all here.
        assert held.admitted == WORKFLOWS, (name, held)


def test_without_retention_a_node_holds_every_workflow() -> None:
    report = run_load(WORKFLOWS, None)
    assert report.violations == []
    for name, held in report.held.items():
        assert held.workflows == WORKFLOWS, (name, held)
        assert held.cores == WORKFLOWS // 3, (name, held)
        assert held.acceptor_in_memory == WORKFLOWS, (name, held)
