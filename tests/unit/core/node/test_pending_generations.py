"""A reliable send's generation (core/node/pending.py, "Generations"): an id kept with
one message, then with a newer one, is popped only by the acknowledgement of the newer;
a late acknowledgement of the earlier leaves it kept and resent, and is counted."""

from __future__ import annotations

import random

from fedorch.core.node import Message, Node, Tick
from fedorch.core.node.records import AckMsg, ResultMsg, Timing
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2

from tests.unit.core.node.federation import Federation as Harness

NAMES = ["d0", "d1"]
WF = "d0.w1"
ID = ("result", WF, "s1", "d1")
LATE = "late acknowledgement of an earlier send left the newer"


class Federation(Harness):
    def __init__(self) -> None:
        super().__init__(NAMES, start=100.0)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 2}, timing=Timing(), peers=NAMES,
                    rng=random.Random(NAMES.index(name)), disk=self.disks[name],
                    now=self.now)


def kept_twice() -> tuple[Federation, ResultMsg, ResultMsg]:
    """d0 keeps ID with a FAILED report, then with a newer SUCCEEDED one; neither is
    delivered (d1's acknowledgements are the test's). The two as sent."""
    f = Federation()
    d0 = f.nodes["d0"]
    d0.reliable("d1", ID, ResultMsg(WF, "s1", 1, StepState.FAILED, {}, "first"))
    f.flush("d0")
    d0.reliable("d1", ID, ResultMsg(WF, "s1", 2, StepState.SUCCEEDED, {"x": 1}, ""))
    f.flush("d0")
    first, newer = (m for _, m in f.sent_by("d0", ResultMsg))
    f.net.clear()
    return f, first, newer


def test_a_late_acknowledgement_of_the_earlier_send_leaves_the_newer_kept_and_resent():
    f, first, newer = kept_twice()
    d0 = f.nodes["d0"]
    assert first.gen != newer.gen
    f.step("d0", Message("d1", AckMsg(ID, gen=first.gen)))
    assert d0.pending[ID][1] is newer  # still owed: d1 never got it
    assert d0.stats[LATE] == 1
    f.silent.add("d1")  # what is resent is read off d0's Readies
    f.now = d0.get_timer()
    f.step("d0", Tick())
    assert f.sent_by("d0", ResultMsg)[-1] == ("d1", newer)
    assert f.sent_by("d0", ResultMsg)[-1][1].gen == newer.gen


def test_the_acknowledgement_of_the_newer_send_pops_it():
    f, _, newer = kept_twice()
    d0 = f.nodes["d0"]
    f.step("d0", Message("d1", AckMsg(ID, gen=newer.gen)))
    assert ID not in d0.pending
    assert d0.stats[LATE] == 0


def test_a_restart_draws_generations_no_earlier_run_drew():
    """Resends are memory only: a restart's sends draw from its wall clock on, so a late
    acknowledgement from before it names none of them."""
    f, first, newer = kept_twice()
    f.now += 1.0
    d0 = f.restore("d0")
    d0.reliable("d1", ID, ResultMsg(WF, "s1", 3, StepState.SUCCEEDED, {}, ""))
    assert d0.pending[ID][1].gen > max(first.gen, newer.gen)
    f.step("d0", Message("d1", AckMsg(ID, gen=newer.gen)))
    assert ID in d0.pending
