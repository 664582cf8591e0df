"""Retention inside a Node (agent/core/node/retention.py): ended workflows are forgotten
once every participant acknowledged and the policy's time or count says so; never
while a peer may still ask; a restored Node has forgotten the same; late messages
about a forgotten workflow change nothing."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import fields

import pytest
from fedorch.core.negotiation.acceptor import RoundPastLife
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import (
    ABORT,
    Accepted,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAck,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
)
from fedorch.core.node import Message, Node, StepEnded, Submit, Tick
from fedorch.core.node.ready import DELETE, Ready
from fedorch.core.node.records import (
    TABLES,
    AckMsg,
    Disk,
    FinalMsg,
    PrepareMsg,
    ResultMsg,
    Timing,
    VoteMsg,
)
from fedorch.core.node.retention import ROUND_LIFE_TABLES, Retention
from fedorch.core.workflow.epoch_certificate import ROUNDS_PER_EPOCH
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation as Harness

NAMES = ["d0", "d1", "d2"]
POLICY = Retention(keep_ended_s=60.0, max_ended_workflows=1000, late_message_s=10.0)


class Federation(Harness):
    """Three Nodes, a FIFO network that a test may filter, every step succeeding.
    `applied`: every write group a driver applied, as (node, point, ops), in order."""

    def __init__(self, retention: Retention | None, *, classic: bool = False,
                 max_rounds: int = 2) -> None:
        self.timing = Timing(retention=retention, classic=classic, max_rounds=max_rounds)
        self.ending: deque[tuple[str, tuple[str, str, int]]] = deque()  # in start order
        self.drop: Callable[[str, str, object], bool] = lambda src, dst, msg: False
        self.applied: list[tuple[str, str, list]] = []
        self.submitted = 0
        self.failing: set[str] = set()  # steps whose attempts fail
        self.refused: Callable[[RemoteProtocolError], None] = lambda e: None
        super().__init__(NAMES)

    def make_node(self, name: str, disk: Disk | None = None) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 100}, timing=self.timing, peers=NAMES,
                    rng=random.Random(NAMES.index(name)),
                    disk=self.disks[name] if disk is None else disk, now=self.now)

    def flush(self, name: str) -> Ready:
        ready = super().flush(name)
        self.applied.extend((name, w.point, w.ops) for w in ready.writes)
        self.ending.extend((name, run) for run in ready.start_steps)
        return ready

    def submit(self, needs: dict[str, str] | None = None) -> str:
        """A step on each Node (s0 on d0, s1 on d1, s2 on d2); `needs`: step -> the
        one it needs."""
        self.submitted += 1
        wf = f"d0.w{self.submitted}"
        steps = [spec_pb2.StepSpec(id=f"s{i}", capability="a",
                                   needs=[(needs or {})[f"s{i}"]] if f"s{i}" in (needs or {})
                                   else []) for i in range(3)]
        self.step("d0", Submit(wf, spec_pb2.WorkflowSpec(name="w", steps=steps),
                               placement={f"s{i}": n for i, n in enumerate(NAMES)}))
        return wf

    def run_until(self, until: float) -> None:
        """Deliver, end steps and fire timers in time order until `until`: one message
        at a time, a step's end only on a quiet network, a timer only when both are."""
        for _ in range(100_000):
            if self.net:
                src, dst, msg = self.net.pop(0)
                if not self.drop(src, dst, msg):
                    try:
                        self.step(dst, Message(src, msg))
                    except RemoteProtocolError as e:
                        self.refused(e)
                continue
            if self.ending:
                name, (wf, step, attempt) = self.ending.popleft()
                self.step(name, StepEnded(wf, step, attempt, step not in self.failing, {},
                                          "failed" if step in self.failing else ""))
                continue
            timers = [(t, n) for n, node in self.nodes.items()
                      if (t := node.get_timer()) is not None]
            if not timers or min(timers)[0] > until:
                break
            at, name = min(timers)
            self.now = max(self.now, at)
            self.step(name, Tick())
        else:
            raise AssertionError("the federation never went quiet")
        self.now = until

    def has(self, name: str, wf: str) -> list[str]:
        """The tables of `name`'s disk that still hold anything of `wf`."""
        disk = self.disks[name]
        found = []
        for table in TABLES:
            if table in ROUND_LIFE_TABLES or table == "ended_records":
                continue  # kept for recovery ballots: see test_acceptor_records_are_kept;
                # the end kept as a compact record: test_ended_records.py
            for key in getattr(disk, table):
                of = key[0] if isinstance(key, tuple) else key
                if of == wf or table == "admitted" and getattr(disk, table)[key][0] == wf:
                    found.append(table)
                    break
        return found


def _held_in_memory(node: Node, wf: str) -> bool:
    # `in` sees a core kept whole or as its Ended record (coordinator_timers.py)
    return wf in node.coordinators or wf in node.progress


# ---- forgotten after the acknowledgements and the time ------------------------------


def test_an_ended_workflow_is_forgotten_everywhere_after_keep_ended_s() -> None:
    f = Federation(POLICY)
    wf = f.submit()
    f.run_until(1.0)
    assert f.disks["d0"].rows[wf].state is WorkflowState.SUCCEEDED
    assert all(f.disks[n].final[wf] is WorkflowState.SUCCEEDED for n in NAMES)
    f.run_until(50.0)  # within keep_ended_s: everything kept
    assert all("rows" in f.has("d0", wf) and "final" in f.has(n, wf) for n in NAMES)
    f.run_until(70.0)
    for name in NAMES:
        assert f.has(name, wf) == [], (name, f.has(name, wf))
        assert not _held_in_memory(f.nodes[name], wf)
    forgetting = [(n, ops) for n, point, ops in f.applied if point == "retention"]
    assert {n for n, _ in forgetting} == set(NAMES)
    assert all(op.kind in (DELETE, "discard") or op.table == "ended_records"
               for _, ops in forgetting for op in ops)


def test_without_retention_everything_is_kept() -> None:
    f = Federation(None)
    wf = f.submit()
    f.run_until(1_000_000.0)
    assert "rows" in f.has("d0", wf) and wf in f.nodes["d0"].coordinators
    assert all("final" in f.has(n, wf) for n in NAMES)


# ---- never while a participant may still ask ----------------------------------------


def test_the_coordinator_keeps_it_while_a_participant_has_not_acknowledged_the_end() -> None:
    f = Federation(POLICY)
    f.drop = lambda src, dst, msg: src == "d2" and isinstance(msg, AckMsg) \
        and msg.msg_id[0] == "final"
    wf = f.submit()
    f.run_until(200.0)  # the end notice is resent all along; d2's answers are lost
    assert f.disks["d0"].rows[wf].state is WorkflowState.SUCCEEDED
    assert f.nodes["d0"].stats["retention kept: a participant has not acknowledged the end"]
    assert f.has("d1", wf) == []  # the others forgot theirs
    assert f.has("d2", wf) == []  # d2 too: a resent end after that keeps nothing
    f.drop = lambda src, dst, msg: False
    while "d2" not in f.disks["d0"].final_acked.get(wf, ()):  # the next resend
        f.run_until(f.now + 0.5)
    assert "rows" in f.has("d0", wf)  # just acknowledged: late_message_s from now
    assert f.has("d2", wf) == []
    f.run_until(f.now + POLICY.late_message_s + POLICY.tick_s + 1.0)
    assert f.has("d0", wf) == []
    assert not _held_in_memory(f.nodes["d0"], wf)


def test_the_coordinator_keeps_it_while_the_commit_is_not_acknowledged() -> None:
    # d1's step never runs (the step it needs fails): nothing but its DecisionAck
    # says it holds the COMMIT (a result or a start would: commit_acks.py), and that
    # is lost.
    f = Federation(POLICY)
    f.failing = {"s0"}
    f.drop = lambda src, dst, msg: src == "d1" and isinstance(msg, DecisionAck)
    wf = f.submit(needs={"s1": "s0"})
    f.run_until(200.0)
    assert (wf, 1) in f.disks["d0"].records  # the COMMIT certificate, kept
    assert f.nodes["d0"].stats["retention kept: a participant has not acknowledged the COMMIT"]
    assert "rows" in f.has("d0", wf)
    f.drop = lambda src, dst, msg: False
    f.run_until(300.0)
    assert f.has("d0", wf) == []


def test_a_participant_in_doubt_keeps_what_it_asks_about() -> None:
    """d2 voted YES and accepted the coordinator's COMMIT proposal as an acceptor, then
    hears nothing more: it keeps its reservation and the records of it, however old."""
    f = Federation(Retention(keep_ended_s=5.0, max_ended_workflows=0, late_message_s=1.0))
    accepted: set[str] = set()

    def cut(src: str, dst: str, msg: object) -> bool:
        if dst == "d2" and "d2" in accepted:
            return True
        if src == "d2" and isinstance(msg, Accepted):
            accepted.add("d2")
        return False

    f.drop = cut
    wf = f.submit()
    f.run_until(100.0)
    assert wf in f.disks["d2"].endings  # tracked since its acceptor record
    assert f.nodes["d2"].participant.keys_of(wf)
    assert {"holds", "info"} <= set(f.has("d2", wf))
    assert any(k[0] == wf for k in f.disks["d2"].acceptor)
    assert f.nodes["d2"].stats["retention kept: a reservation here"] > 0


# ---- a restored Node ---------------------------------------------------------------


def _keys(disk: Disk) -> dict[str, set]:
    return {t.name: set(getattr(disk, t.name)) for t in fields(Disk)}


def test_a_restored_node_has_forgotten_the_same() -> None:
    f = Federation(POLICY)
    first = f.submit()
    f.run_until(30.0)
    second = f.submit()
    f.run_until(61.0)  # the first is due, the second not
    before = Disk(**{t: type(v)(v) for t, v in vars(f.disks["d0"]).items()})
    f.run_until(62.0)  # d0's tick forgets the first
    assert f.has("d0", first) == [] and "rows" in f.has("d0", second)
    restored = f.make_node("d0")  # from what the driver applied
    assert first not in restored.coordinators
    assert second in restored.coordinators
    assert not restored.has_ready()
    # A Node restored before the tick forgets exactly what the live one did.
    copy = Disk(**{t: type(v)(v) for t, v in vars(before).items()})
    early = f.make_node("d0", disk=copy)
    f.disks["d0"], live_disk = copy, f.disks["d0"]
    f.nodes["d0"], f.nodes["other"] = early, f.nodes["d0"]
    early.step(62.0, Tick())
    f.flush("d0")
    assert _keys(copy) == _keys(live_disk)


# ---- the count bound ---------------------------------------------------------------


def test_beyond_max_ended_workflows_the_oldest_settled_ones_go() -> None:
    f = Federation(Retention(keep_ended_s=1e9, max_ended_workflows=2, late_message_s=5.0))
    flows = []
    for i in range(8):
        flows.append(f.submit())
        f.run_until(2.0 * (i + 1))
    f.run_until(30.0)
    for name in NAMES:
        kept = [wf for wf in flows if f.has(name, wf) != []]
        assert kept == flows[-2:], (name, kept)
        assert len(f.disks[name].endings) == 2
    assert len(f.nodes["d0"].coordinators) == 2


def test_an_unsettled_acceptor_record_goes_by_age_only() -> None:
    """The end notice said not every participant had acknowledged the COMMIT (d1's
    acknowledgements were lost until after the end): d2, an acceptor, keeps the
    workflow past the count, until keep_ended_s."""
    f = Federation(Retention(keep_ended_s=100.0, max_ended_workflows=0, late_message_s=5.0))
    f.failing = {"s0"}  # d1's step never runs: no result of its stands for its ack
    f.drop = lambda src, dst, msg: src == "d1" and isinstance(msg, DecisionAck)
    wf = f.submit(needs={"s1": "s0"})
    f.run_until(1.0)
    assert f.disks["d0"].rows[wf].state is WorkflowState.FAILED
    f.drop = lambda src, dst, msg: False
    f.run_until(40.0)
    assert wf not in f.disks["d2"].settled and "final" in f.has("d2", wf)
    assert f.has("d0", wf) == []  # its own, acknowledged meanwhile: gone for the count
    f.run_until(105.0)
    assert f.has("d2", wf) == []
    # ...but not its acceptor records nor what it learned: a recovery ballot of a
    # participant still in doubt may need them until the round's life (102.5 s) and
    # late_message_s more have passed (a chosen value forgotten at a majority of the
    # acceptors could be chosen over, were the round not refused by then).
    assert any(k[0] == wf for k in f.disks["d2"].acceptor)
    assert any(k[0] == wf for k in f.disks["d2"].learned)
    created = f.disks["d2"].acceptor[(wf, 1)].tx.created_ms
    f.run_until(120.0)
    assert not any(k[0] == wf for k in f.disks["d2"].acceptor)
    assert not any(k[0] == wf for k in f.disks["d2"].learned)
    assert f.nodes["d2"].acceptor.record((wf, 1)) is None  # the core's memory too
    assert f.disks["d2"].horizons == {"d0": created}  # refused from now on


def test_an_extra_acceptor_keeps_a_chosen_commit_for_a_participant_in_doubt_past_it() -> None:
    """The soak's seed 201539 (range 200000), by hand: d0's one step is placed on d2, so
    d1 is an extra acceptor. d0's COMMIT reaches d1 (d0 and d1: a majority, chosen) and
    d0 is cut off before d2 hears it. d2, in doubt, is cut off past d1's keep_ended_s;
    d1 forgets the workflow by age, and the round's acceptor record once the round is
    past its life (22.5 s) and late_message_s more. d2's recovery ballot then asks d1
    and d2: d1 must refuse it (below its horizon of d0's rounds), never promise it
    blank, or it chooses ABORT over a chosen COMMIT. d2 stays in doubt, its
    reservation held, until d0, back, tells it the COMMIT."""
    f = Federation(Retention(keep_ended_s=20.0, max_ended_workflows=0, late_message_s=5.0))
    wf = "d0.w1"
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s0", capability="a")])
    key = (wf, 1)
    f.drop = lambda src, dst, msg: src == "d0" and dst == "d2" \
        and not isinstance(msg, PrepareMsg)
    f.step("d0", Submit(wf, spec, placement={"s0": "d2"}))
    f.run_until(0.5)
    assert f.disks["d1"].acceptor[key].tx.acceptors == ("d0", "d1", "d2")
    assert f.disks["d1"].acceptor[key].tx.participants == ("d2",)
    assert f.disks["d1"].acceptor[key].accepted_value.commit  # with d0's own: chosen
    assert key not in f.disks["d2"].learned
    cut_off = {"d0", "d2"}
    f.drop = lambda src, dst, msg: src != dst and bool({src, dst} & cut_off)
    f.run_until(60.0)
    assert f.has("d1", wf) == []  # forgotten by age...
    assert key not in f.disks["d1"].acceptor and key not in f.disks["d1"].learned  # ...all
    assert f.disks["d1"].horizons == {"d0": f.disks["d0"].acceptor[key].tx.created_ms}
    assert f.nodes["d2"].participant.keys_of(wf) and key not in f.disks["d2"].learned
    refused: list[RoundPastLife] = []
    f.refused = refused.append
    cut_off = {"d0"}
    f.run_until(100.0)
    assert key not in f.disks["d2"].learned  # no ABORT chosen over the COMMIT...
    assert f.nodes["d2"].participant.status(key) == "prepared"  # ...in doubt, held
    assert refused and {(e.sender, e.key, e.why) for e in refused} \
        == {("d2", key, "forgotten")}
    assert key not in f.disks["d1"].acceptor  # nothing recorded of it again
    cut_off = set()
    f.run_until(101.0)  # d2 asks d0 again: its COMMIT record is kept (d2 never acked)
    learned = f.disks["d2"].learned.get(key)
    assert learned is not None and learned.commit, learned  # the COMMIT chosen at 0.5


def test_a_restored_node_keeps_its_horizon() -> None:
    """After a restart (its acceptor rebuilt from node.db), a forgotten round is still
    refused, the wall clock stepped back or not."""
    f = Federation(Retention(keep_ended_s=20.0, max_ended_workflows=0, late_message_s=5.0))
    wf = f.submit()
    key = (wf, 1)
    f.run_until(1.0)
    tx = f.disks["d1"].acceptor[key].tx
    f.run_until(100.0)
    assert key not in f.disks["d1"].acceptor and key not in f.disks["d1"].learned
    assert f.disks["d1"].horizons["d0"] == tx.created_ms > 0
    restored = f.make_node("d1")  # from what the driver applied
    prepare = PaxosPrepare(tx, Ballot(1, "d2"))
    with pytest.raises(RoundPastLife) as refused:
        restored.step(f.now, Message("d2", prepare))
    assert refused.value.why == "forgotten"
    assert restored.acceptor.horizon("d0") == tx.created_ms


# ---- late messages about a forgotten workflow --------------------------------------


def _forgotten() -> tuple[Federation, str]:
    f = Federation(POLICY)
    wf = f.submit()
    f.run_until(100.0)
    assert f.has("d0", wf) == []
    return f, wf


def _answer(f: Federation, name: str, src: str, msg: object) -> list:
    node = f.nodes[name]
    node.step(f.now, Message(src, msg))
    ready = node.ready()
    node.advance(ready)
    assert not ready.writes, ready.writes  # nothing written about it
    return [(o.to, o.msg) for o in (*ready.send_now, *ready.send_after_write)]


def test_a_query_about_a_forgotten_workflow_is_answered_unknown() -> None:
    f, wf = _forgotten()
    out = _answer(f, "d0", "d1", DecisionQuery((wf, 1), "d1"))
    assert out == [("d1", DecisionAnswer((wf, 1), "d0", AnswerStatus.UNKNOWN))]


def test_a_late_end_or_result_is_acknowledged_and_not_kept() -> None:
    f, wf = _forgotten()
    out = _answer(f, "d1", "d0", FinalMsg(wf, WorkflowState.SUCCEEDED))
    assert out == [("d0", AckMsg(("final", wf, "d1")))]
    out = _answer(f, "d0", "d2", ResultMsg(wf, "s2", 1, StepState.SUCCEEDED, {}, ""))
    assert out == [("d2", AckMsg(("result", wf, "s2", "d0")))]


def test_a_late_vote_finds_no_workflow() -> None:
    f, wf = _forgotten()
    with pytest.raises(RemoteProtocolError):
        f.nodes["d0"].step(f.now, Message("d1", VoteMsg((wf, 1), "d1", True, "")))


# ---- presumed abort under classic 2PC ----------------------------------------------


def test_a_classic_participant_in_doubt_about_a_forgotten_round_hears_abort() -> None:
    """d1 is silent, so d0 aborts round 1; d2 never hears the ABORT, nor an answer to
    its queries, until d0 has forgotten the workflow. Asked then, d0 presumes ABORT
    (nothing written) and d2 releases its reservation (takeover soak seed 9301034)."""
    f = Federation(POLICY, classic=True, max_rounds=1)
    forgotten = False

    def cut(src: str, dst: str, msg: object) -> bool:
        return src == "d1" and isinstance(msg, VoteMsg) or not forgotten and dst == "d2" \
            and isinstance(msg, (Decision, DecisionAnswer))

    f.drop = cut
    wf = f.submit()
    f.run_until(100.0)
    assert f.disks["d0"].rows == {} and "rows" not in f.has("d0", wf)
    assert f.nodes["d2"].participant.status((wf, 1)) == "prepared"
    out = _answer(f, "d0", "d2", DecisionQuery((wf, 1), "d2"))
    assert out == [("d2", DecisionAnswer((wf, 1), "d0", AnswerStatus.DECIDED, ABORT))]
    forgotten = True
    f.run_until(200.0)
    assert not f.nodes["d2"].participant.keys_of(wf)
    assert f.nodes["d0"].stats["query about a forgotten round: ABORT presumed"] > 0


def test_no_abort_is_presumed_of_a_successors_round_nor_under_paxos_commit() -> None:
    """A round of a later epoch's range is a successor's: the original's log has no word
    on it, forgotten or not. Under Paxos Commit the acceptors answer: UNKNOWN as before."""
    f = Federation(POLICY, classic=True)
    wf = f.submit()
    f.run_until(100.0)
    assert f.has("d0", wf) == []
    later = ROUNDS_PER_EPOCH + 1
    out = _answer(f, "d0", "d1", DecisionQuery((wf, later), "d1"))
    assert out == [("d1", DecisionAnswer((wf, later), "d0", AnswerStatus.UNKNOWN))]
    f, wf = _forgotten()  # Paxos Commit
    out = _answer(f, "d0", "d1", DecisionQuery((wf, 1), "d1"))
    assert out == [("d1", DecisionAnswer((wf, 1), "d0", AnswerStatus.UNKNOWN))]
