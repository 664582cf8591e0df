"""Coordinator cores kept as `Ended` records once their workflow's end is settled
(core/node/ended_cores.py, core/negotiation/coordinator_ended.py): dropped then, and
every late message a peer may send gets the same answer, writes and sends as from
the whole core; a restart settles them again the same way."""

from __future__ import annotations

import random
import sys

import pytest
from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.coordinator import Phase
from fedorch.core.negotiation.coordinator_ended import Ended
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import DecisionAck, DecisionQuery
from fedorch.core.node import Message, Node, Submit, Tick
from fedorch.core.node.authority import check
from fedorch.core.node.ready import Ready
from fedorch.core.node.records import Timing, VoteMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness

NAMES = ["d0", "d1", "d2", "d3"]
WF = "d0.w1"
NOW = 100.0
# d3 takes work from no one: round 1, which asks it, aborts and round 2 places again.
POLICIES = {"d0": ["*"], "d1": ["*"], "d2": ["*"], "d3": ["nobody"]}


class Federation(Harness):
    steps_end_at_once = True
    classic = False
    settles = True  # False: every core kept whole, as before Ended records

    def __init__(self) -> None:
        self.heard: list[tuple[str, object]] = []  # every message d0 was handed
        super().__init__(NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        node = Node(name, policy=config_pb2.Policy(accept_from=POLICIES[name]),
                    capacities={"a": 4}, timing=Timing(max_rounds=3, classic=self.classic),
                    peers=NAMES, rng=random.Random(NAMES.index(name)),
                    disk=self.disks[name], now=self.now)
        if not self.settles:
            node.coordinators.settle = None
        return node

    def restore(self, name: str) -> Node:
        node = super().restore(name)
        if not self.settles:
            node.coordinators.settle = None
        return node

    def step(self, name: str, *inputs: object) -> Ready:
        if name == "d0":
            self.heard += [(e.src, e.msg) for e in inputs if type(e) is Message]
        return super().step(name, *inputs)


class Whole(Federation):
    settles = False


class Classic(Federation):
    classic = True


class ClassicWhole(Classic):
    settles = False


def run(f: Federation) -> Federation:
    """d0 coordinates two steps; round 1 asks d3, which refuses; round 2 commits, the
    steps run, the workflow SUCCEEDS and every acknowledgement comes in."""
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[
        spec_pb2.StepSpec(id="s1", capability="a"), spec_pb2.StepSpec(id="s2", capability="a")])
    f.step("d0", Submit(WF, spec, placement={"s1": "d1", "s2": "d3"}))
    f.deliver()
    f.run_until(NOW + 60.0)
    assert f.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED
    assert f.disks["d0"].rows[WF].round == 2
    return f


def tables(f: Federation, name: str) -> str:
    """`name`'s tables as text (a row's WfInfo compares by identity, its text does not)."""
    return repr(f.disks[name])


def outputs(f: Federation, name: str, *inputs: object) -> str:
    """What `name` does with `inputs`, each on its own: its Ready (writes, notes,
    sends, steps, statuses) or the refusal it raises."""
    done = []
    for event in inputs:
        node = f.nodes[name]
        try:
            node.step(f.now, event)
            refused = None
        except RemoteProtocolError as e:
            refused = str(e)
        ready = f.flush(name)
        done.append((refused, [(w.point, w.ops, w.notes) for w in ready.writes],
                     ready.send_now, ready.send_after_write, ready.start_steps,
                     ready.stop_steps, ready.status_changes))
    return repr(done)


def checked_outputs(f: Federation, name: str, *inputs: Message) -> str:
    """`outputs`, each message checked by the authority table first, as the driver's
    gate does (a refusal: the Node never sees the message)."""
    done = []
    for event in inputs:
        try:
            check(f.nodes[name], event.src, event.msg)
        except Refused as e:
            done.append(("refused", e.reason))
            continue
        done.append(outputs(f, name, event))
    return repr(done)


def lies() -> list[Message]:
    """What a liar sends an ended coordinator: votes and acknowledgements in another's
    name, a vote from a domain never asked, a YES without its signed statement."""
    return [Message("d1", VoteMsg((WF, 2), "d2", True, "")),
            Message("d2", DecisionAck((WF, 2), "d1")),
            Message("d3", VoteMsg((WF, 2), "d3", False, "")),
            Message("d1", VoteMsg((WF, 2), "d1", True, "", b"forged")),
            Message("d2", VoteMsg((WF, 1), "d2", True, ""))]


def late_messages(f: Federation) -> list[Message]:
    """Every message d0 was handed, again (late duplicates: votes, Paxos replies, acks,
    results, end acknowledgements), then a decision query from each participant about
    every round, and ones about rounds it never ran."""
    again = [Message(src, msg) for src, msg in f.heard]
    asked = [Message(p, DecisionQuery((WF, r), p)) for p in NAMES[1:] for r in (0, 1, 2, 3)]
    late_yes = [Message(p, VoteMsg((WF, r), p, True, "")) for p in NAMES[1:] for r in (1, 2)]
    stranger = [Message("d3", DecisionAck((WF, 2), "d3"))]
    return again + asked + late_yes + stranger


@pytest.mark.parametrize("kind", [(Federation, Whole), (Classic, ClassicWhole)],
                         ids=["paxos", "classic"])
def test_a_settled_core_is_dropped_and_every_late_message_is_answered_the_same(kind):
    dropped, whole = run(kind[0]()), run(kind[1]())
    node = dropped.nodes["d0"]
    node.get_timer()  # the turn's refresh: settled cores go to their records
    assert WF in node.coordinators.ended and not dict.__contains__(node.coordinators, WF)
    assert WF in node.coordinators and len(node.coordinators) == 1
    assert dict.__contains__(whole.nodes["d0"].coordinators, WF)
    assert tables(dropped, "d0") == tables(whole, "d0")
    late = late_messages(dropped)
    assert len(late) > 20
    assert outputs(dropped, "d0", *late) == outputs(whole, "d0", *late)
    assert tables(dropped, "d0") == tables(whole, "d0")
    # Each answered from the record (a late YES of the round told ABORT told it again,
    # a query answered from its round numbers, the rest ignored): no core rebuilt.
    assert node.stats["coordinator revived after its end"] == 0
    # Once the messages are answered, the core is a record again.
    node.get_timer()
    assert WF in node.coordinators.ended


def test_the_record_holds_round_numbers_only():
    f = run(Federation())
    f.nodes["d0"].get_timer()
    record = f.nodes["d0"].coordinators.ended[WF]
    assert record == Ended(round=2, committed=True, consensus=True, cells=(1, 2),
                           aborted=(1,), told=(1,), collected=(2,))
    size = sys.getsizeof(record)  # its tuples are shared between records
    assert size < 120, size


def test_a_restart_settles_the_restored_core_and_answers_the_same():
    dropped, whole = run(Federation()), run(Whole())
    late = late_messages(dropped)
    for f in (dropped, whole):
        f.restore("d0")
        f.nodes["d0"].get_timer()
        f.deliver()
    restored = dropped.nodes["d0"]
    assert WF in restored.coordinators.ended
    assert restored.coordinators.ended[WF].round == 2
    assert restored.coordinators.ended[WF].committed
    assert tables(dropped, "d0") == tables(whole, "d0")
    assert outputs(dropped, "d0", *late) == outputs(whole, "d0", *late)
    assert tables(dropped, "d0") == tables(whole, "d0")


def test_a_core_with_work_left_is_kept_whole():
    f = Federation()
    spec = spec_pb2.WorkflowSpec(name="w1", steps=[spec_pb2.StepSpec(id="s1", capability="a")])
    f.step("d0", Submit(WF, spec, placement={"s1": "d1"}))
    # The votes are in, the steps have not ended: live here.
    f.deliver(keep=lambda src, dst, msg: type(msg) is not VoteMsg and dst == "d0"
              and src != "d0")
    node = f.nodes["d0"]
    node.get_timer()
    assert WF not in node.coordinators.ended
    assert dict.__contains__(node.coordinators, WF)
    assert node.coordinators[WF].phase in (Phase.PREPARING, Phase.DECIDING, Phase.COMMITTED)


def test_forgetting_the_workflow_forgets_its_record():
    f = run(Federation())
    node = f.nodes["d0"]
    node.get_timer()
    assert WF in node.coordinators.ended
    del node.coordinators[WF]  # as retention forgets a workflow
    assert WF not in node.coordinators and node.coordinators.get(WF) is None
    f.step("d0", Tick())


@pytest.mark.parametrize("kind", [(Federation, Whole), (Classic, ClassicWhole)],
                         ids=["paxos", "classic"])
def test_late_and_lying_messages_through_the_authority_table_revive_no_core(kind):
    """The table reads an ended core's transaction from its record: a refused message
    costs no core, nor does one the record answers (before, each vote and
    acknowledgement checked rebuilt the core: a liar's message cost one core each)."""
    dropped, whole = run(kind[0]()), run(kind[1]())
    node = dropped.nodes["d0"]
    node.get_timer()
    late = lies() + late_messages(dropped)
    got = checked_outputs(dropped, "d0", *late)
    assert got == checked_outputs(whole, "d0", *late)
    assert "refused" in got
    assert tables(dropped, "d0") == tables(whole, "d0")
    assert node.stats["coordinator revived after its end"] == 0
    assert WF in node.coordinators.ended


def test_a_message_the_record_cannot_answer_revives_the_core_and_is_answered_the_same():
    """A cancel on record, the end not (cancel.py reads the core after each of its
    inputs until then): the core is rebuilt for the message, as before, and answers as
    the whole one does."""
    dropped, whole = run(Federation()), run(Whole())
    for f in (dropped, whole):
        f.nodes["d0"].state.cancels[WF] = "late"
        del f.nodes["d0"].state.final[WF]
    node = dropped.nodes["d0"]
    node.get_timer()
    late = [Message("d1", DecisionQuery((WF, 1), "d1"))]
    assert outputs(dropped, "d0", *late) == outputs(whole, "d0", *late)
    assert node.stats["coordinator revived after its end"] == 1
