"""How a workflow's end is told to its participants (agent/core/node/running.py, with
the told-first end of domain_loss.py): each end notice goes once to each participant,
and again only when it was not acknowledged."""

from __future__ import annotations

from collections import Counter

from fedorch.core.node import Message, StepEnded
from fedorch.core.node.records import AckMsg, FinalMsg, ResultMsg

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_takeover import WF, committed


def _finals(fed, name: str) -> list[Counter]:
    """Per Ready of `name`: its FinalMsgs by destination."""
    return [Counter(to for to, msg in sent(ready) if type(msg) is FinalMsg)
            for ready in fed.readies[name]]


def test_the_result_that_ends_a_workflow_gets_its_sender_one_end_notice() -> None:
    # d2's result is the last: d0 tells the end in the Ready that takes it. The end
    # told in that very step was once sent a second time to d2, as if it were an
    # earlier, unacknowledged one.
    fed = committed(steps_end=True)
    for _ in range(5):
        fed.deliver()
    assert all(n == "d3" or fed.nodes[n].state.final.get(WF) for n in fed.names)
    per_ready = _finals(fed, "d0")
    assert all(count <= 1 for c in per_ready for count in c.values())
    total = sum(per_ready, Counter())
    assert total["d1"] == total["d2"]  # told, then made: the same for each participant


def test_an_end_told_before_and_not_acknowledged_is_told_again_with_a_result() -> None:
    # The rule the first test narrows: an end told earlier whose acknowledgement is not
    # back goes again at once when its participant reports (not at the resend's
    # backoff).
    fed = committed()  # no attempt ended yet
    fed.net = [(n, n, StepEnded(*run, ok=True)) for n in fed.names for run in fed.running[n]]
    fed.deliver(keep=lambda src, dst, msg: (src, dst, type(msg)) == ("d2", "d0", AckMsg))
    assert ("final", WF, "d2") in fed.nodes["d0"].pending  # told, not acknowledged
    result = next(msg for to, msg in fed.sent_by("d2", ResultMsg) if to == "d0")
    fed.net = []
    ready = fed.step("d0", Message("d2", result))
    assert [to for to, msg in sent(ready) if type(msg) is FinalMsg] == ["d2"]
