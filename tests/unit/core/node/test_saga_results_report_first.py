"""A compensation report that reaches a saga's driver before the late result that makes
its step owed (core/node/saga_results.py, `awaited`): not acknowledged, so a late
acknowledgement of it cannot end the resends of the answer to the driver's later tell
of the attempt (takeover soak seed 178300800 with `--keep-ended-s 5`)."""

from __future__ import annotations

from fedorch.core.node import Message
from fedorch.core.node.compensating import COMPENSATE
from fedorch.core.node.records import AckMsg, CompensatedMsg, CompensateMsg, ResultMsg
from fedorch.core.workflow.progress import StepState

from tests.unit.core.node.test_compensating import WF, Sagas, failed_chain


def test_a_report_before_its_steps_late_result_is_not_acknowledged_until_it_joins():
    # d0 planned s1's compensation at d1, which ran it; its report to d0 is lost, and
    # d0 dies. d1 then follows d2, holder of epoch 1, which told the end bare: no row of s1, s1
    # held CANCELLED. d1 restarts and reports to d2 its compensation, then its s1
    # SUCCEEDED; the report comes first. Acknowledged then, and that acknowledgement
    # late: the result makes d2 tell attempt 1, d1 answers from its record under the
    # report's id, the answer is lost, the late acknowledgement ends its resends, and
    # d2's saga waited for ever with s1 RUNNING.
    f = failed_chain()
    f.end("d1", True)  # s1's compensation, attempt 1, SUCCEEDED at d1 ...
    assert f.disks["d1"].comp_runs[(WF, "s1", 1)] == ("succeeded", "", True)
    f.disks["d1"].comp_runs[(WF, "s1", 1)] = ("succeeded", "", False)  # ... report lost
    for name in ("d1", "d2"):
        f.disks[name].epochs[WF] = (1, "d2")
    del f.disks["d2"].plans[WF]
    f.disks["d2"].results[WF]["s1"] = (0, StepState.CANCELLED, {}, "workflow FAILED")
    f.restart("d2")
    f.silent.add("d0")
    assert not any(k[0] == WF for k in f.disks["d2"].compensations)
    f.restart("d1")
    kinds = [type(m) for src, dst, m in f.net if (src, dst) == ("d1", "d2")]
    assert kinds.index(CompensatedMsg) < kinds.index(ResultMsg)

    def at_d2(kind: type):
        return lambda src, dst, msg: dst == "d2" and isinstance(msg, kind)

    deliver_until(f, at_d2(CompensatedMsg))
    acks = [m for m in f.net if isinstance(m[2], AckMsg) and m[2].msg_id[0] == "compensated"]
    f.net = [m for m in f.net if m not in acks]  # held back: they come late
    assert not acks  # nothing taken: nothing acknowledged
    assert f.nodes["d2"].stats[
        "compensation report before its step's result: not acknowledged"] == 1

    deliver_until(f, at_d2(ResultMsg))  # joins d2's saga: d2 tells attempt 1
    assert f.disks["d2"].compensations[(WF, "s1")].state == "RUNNING"
    deliver_until(f, lambda src, dst, msg: dst == "d1" and isinstance(msg, CompensateMsg))
    f.net = [m for m in f.net if not isinstance(m[2], CompensatedMsg)]  # the answer lost
    for src, dst, ack in acks:  # the acknowledgement given before, late
        f.step(dst, Message(src, ack))
    f.deliver()
    f.run_until(f.now + 60.0)  # the report, resent, is folded into d2's saga
    assert f.disks["d2"].compensations[(WF, "s1")].state == "COMPENSATED"
    assert [c for c in f.compensations if c[1][1] == "s1"] == [
        ("d1", (WF, "s1", 1, COMPENSATE))]  # run once, at d0's tell
    assert not any(k[0] == "compensated" for k in f.nodes["d1"].pending)


def deliver_until(f: Sagas, last) -> None:
    """Deliver in order (but to or from a silent Node), up to and including the first
    message `last` names."""
    while f.net:
        src, dst, msg = f.net.pop(0)
        if {src, dst} & f.silent:
            continue
        f.step(dst, Message(src, msg))
        if last(src, dst, msg):
            return
