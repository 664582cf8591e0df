"""The domain of each SUCCEEDED result held (records.Disk.result_domains) in the node
store: written and read back, and a file made before the table existed opens with
its results as they were and no domain on record (the step's placement now)."""

from __future__ import annotations

from fedorch.core.node.ready import PUT, Op, Write
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.runtime.node_store import SqliteDurable

RESULT = (1, StepState.SUCCEEDED, {"of": "s0"}, "")


def test_a_results_domain_reads_back_as_written(tmp_path):
    path = tmp_path / "node.db"
    with SqliteDurable(path) as store:
        store.write([Write("step end", [
            Op("results", PUT, ("w", "s0"), RESULT),
            Op("result_domains", PUT, "w", {"s0": "d1"})])])
    with SqliteDurable(path) as store:
        loaded = store.load()
        assert loaded.result_domains == {"w": {"s0": "d1"}}
        assert loaded.results == {"w": {"s0": RESULT}}


def test_a_file_of_an_older_build_opens_with_no_domain_on_record(tmp_path):
    path = tmp_path / "node.db"
    with SqliteDurable(path) as store:  # as an older build left it: no such table
        store.write([Write("a", [Op("results", PUT, ("w", "s0"), RESULT),
                                 Op("final", PUT, "w", WorkflowState.FAILED)])])
        store._con.execute("DROP TABLE node_result_domains")
    with SqliteDurable(path) as store:
        loaded = store.load()
        assert loaded.results == {"w": {"s0": RESULT}}
        assert loaded.final == {"w": WorkflowState.FAILED}
        assert loaded.result_domains == {}
        store.write([Write("b", [Op("result_domains", PUT, "w", {"s0": "d3"})])])
    with SqliteDurable(path) as store:
        assert store.load().result_domains == {"w": {"s0": "d3"}}
