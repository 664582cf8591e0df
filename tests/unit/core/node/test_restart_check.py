"""A restarted participant asks before it starts (agent/core/node/restart_check.py), and
a new placement is known wherever a successor may be elected (replacement.py's told
majority, placed_here.py's grants): Nodes driven by hand with coordinator takeover on
(as the node engine composes it), d0 coordinating; step attempts end only when a test
says so (test_domain_loss.py's federation)."""

from __future__ import annotations

import math
from collections import Counter
from types import SimpleNamespace as NS

from fedorch.core.negotiation.messages import (
    Accept,
    AnswerStatus,
    Decision,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
)
from fedorch.core.node import MemberState, Message, Submit, Tick
from fedorch.core.node.records import (
    FinalMsg,
    PlacedMsg,
    PlacementAnswer,
    PlacementQuery,
    ResultMsg,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.core.node.test_domain_loss import (
    NAMES,
    WF,
    Federation,
    committed,
    dies,
    step,
)
from tests.unit.core.node.test_told_ends import certificate


def runs_of(fed: Federation, step_id: str) -> list[tuple[str, int]]:
    """Every attempt of `step_id` started anywhere, as (domain, attempt), in order."""
    return [(node, run[2]) for node, run in fed.started if run[1] == step_id]


def back(fed: Federation, name: str, *, dead: tuple[str, ...] = ()) -> None:
    """`name` restarts from its disk; its view and the others' say it is back (and
    each of `dead` gone)."""
    fed.silent.discard(name)
    fed.restore(name)
    fed.step(name, *[MemberState(m, "DEAD" if m in dead else "ALIVE")
                     for m in NAMES if m != name])
    for n in NAMES:
        if n != name and n not in fed.silent:
            fed.step(n, MemberState(name, "ALIVE"))


def s1_done(fed: Federation) -> Message:
    """s1's SUCCEEDED result from its domain d2, as d2 reports it to whoever it takes
    for the coordinator or an owner of a step that needs it."""
    return Message("d2", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {}, "", 0))


def placed_again_on_d3() -> Federation:
    """s2 on d1 needs s1 on d2 (running): s2 has not started when d1 dies, and d0 places
    it again on d3, outside the electorate (d0, d1, d2)."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    dies(fed, "d1")
    assert fed.disks["d0"].placements[WF]["s2"][1:] == ("d3", "d1")
    return fed


def test_a_lost_domain_back_while_its_coordinator_is_down_starts_nothing_until_told(
) -> None:
    """d1 restarts while d0 does not answer; s1's result reaches d1 (from a domain that
    reports to it). Its restored progress still has s2 here: without the rule it
    started s2, which d3 may run already (takeover soak seed 1700761). It asks d0 and
    waits; d0's answer carries the new placement, and s2 never starts on d1."""
    fed = placed_again_on_d3()
    fed.silent.add("d0")  # down for a while: not DEAD in any view
    back(fed, "d1")
    fed.step("d1", s1_done(fed))
    fed.deliver()
    assert runs_of(fed, "s2") == []
    assert fed.nodes["d1"].restart_check.holds_back(WF)
    assert [m for to, m in fed.sent_by("d1", PlacementQuery) if to == "d0"]
    fed.silent.discard("d0")
    fed.tick(fed.now + 2.0)  # asked again: d0 answers
    assert not fed.nodes["d1"].restart_check.holds_back(WF)
    assert fed.nodes["d1"].progress[WF].steps["s2"].domain == "d3"
    assert fed.disks["d1"].placements[WF]["s2"][1] == "d3"
    fed.end("d2", "s1")
    fed.end("d3", "s2")
    fed.tick(fed.now + 2.0)
    assert runs_of(fed, "s2") == [("d3", 1)]  # once, at its new domain only
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED


def test_a_restarted_participant_starts_its_step_once_its_coordinator_confirms() -> None:
    """Nothing was lost: d1 restarts, s1's result reaches it, and s2 starts only once
    d0 confirmed s2 is still placed on d1 in its placement epoch."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    fed.restore("d1")
    fed.step("d1", s1_done(fed))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PlacementAnswer))
    assert runs_of(fed, "s2") == []
    assert [type(m) for _, _, m in fed.net] == [PlacementAnswer]
    fed.deliver()
    assert runs_of(fed, "s2") == [("d1", 1)]
    assert fed.nodes["d1"].stats["placement confirmed after a restart"] == 1


def test_a_workflow_with_nothing_left_to_run_here_is_not_asked_about() -> None:
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    fed.restore("d2")  # its s1 was running: interrupted, FAILED (no retries)
    assert not fed.nodes["d2"].restart_check.holds_back(WF)
    assert not fed.sent_by("d2", PlacementQuery)


def test_only_the_coordinator_that_drives_the_workflow_answers() -> None:
    """A participant asked where the steps are says nothing (it does not drive)."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    fed.step("d2", Message("d1", PlacementQuery(WF)))
    assert not fed.sent_by("d2", PlacementAnswer)
    fed.step("d0", Message("d1", PlacementQuery(WF)))
    [(to, answer)] = fed.sent_by("d0", PlacementAnswer)
    assert to == "d1" and answer.epoch == 0
    assert dict((s, (e, d)) for s, e, d in answer.steps) == {"s1": (0, "d2"),
                                                            "s2": (0, "d1")}


def test_a_successor_learns_the_new_placement_from_the_grants_and_never_runs_it() -> None:
    """The seed's story: s2 placed again on d3 while d1 was down; d0 then dies for good
    and d1, back, is elected (d1 and d2 of d0, d1, d2). d2's grant carries the new
    placement, so d1, acting, knows s2 is d3's and never starts it when s1's result
    comes; without it, d1 confirmed s2 to itself and ran it beside d3."""
    fed = placed_again_on_d3()
    dies(fed, "d0")
    back(fed, "d1", dead=("d0",))
    fed.tick(fed.now + 2.0)
    fed.run_until(fed.now + 10.0)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d1"].placements[WF]["s2"][1] == "d3"
    assert not fed.nodes["d1"].restart_check.holds_back(WF)
    fed.step("d1", s1_done(fed))
    fed.deliver()
    assert not [r for r in runs_of(fed, "s2") if r[0] == "d1"]
    fed.end("d2", "s1")
    fed.end("d3", "s2")
    fed.tick(fed.now + 2.0)
    assert runs_of(fed, "s2") == [("d3", 1)]
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED


def test_a_new_placement_is_sent_only_once_a_majority_of_the_electorate_holds_it(
) -> None:
    """Electorate d0, d1, d2: s2 (on d2) ended, d2 dies; s1 (on d1, idempotent) is lost
    with d1 and placed again on d3, which acknowledges. Every live member told is not
    enough: d0 and d3 hold it, d3 is no elector; d1 and d2, back, could elect one of
    them that never heard of it. The COMMIT goes once d2, back, holds it too."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d2", "s2")
    dies(fed, "d2")
    dies(fed, "d1")
    assert fed.disks["d0"].placements[WF]["s1"][1:] == ("d3", "d1")
    commits = [m for to, m in fed.sent_by("d0", Decision) if to == "d3" and m.value.commit]
    assert commits == [] and runs_of(fed, "s1") == [("d1", 1)]
    back(fed, "d2", dead=("d1",))
    fed.tick(fed.now + 2.0)  # told again: d2 acknowledges
    commits = [m for to, m in fed.sent_by("d0", Decision) if to == "d3" and m.value.commit]
    assert len(commits) == 1
    assert runs_of(fed, "s1") == [("d1", 1), ("d3", 1)]


def test_a_new_domain_counts_the_lost_domain_among_the_workflows_domains() -> None:
    """d3, new to the workflow, knows d1 only as the domain s2 was lost with: it counts
    it among the workflow's domains all the same, so that, elected, it tells d1 its end
    (d1, back, may follow d3's epoch and refuse the original's end: it kept the old
    round's reservation for ever, takeover soak seed 3201757)."""
    fed = placed_again_on_d3()
    assert "d1" in fed.nodes["d3"].replacement.domains_of(WF)


def test_an_original_that_follows_a_later_epoch_leaves_its_commit_to_the_holder() -> None:
    """s1 (on d1, idempotent) is placed again on d3; its PlacedMsg to d2 is held. d2
    takes d0 for dead and wins epoch 1, d0's grant carrying the new placement, and d0
    follows d2. d0 no longer sends the round's COMMIT, even once d2 acknowledges the
    placement (a successor that did not know it answers the round void to its new
    domain: replacement_handover.py; ours leaving then would start the step beside the
    successor's word), nor answers it to d3's query: d2, which knows the placement,
    hands it out, and s1 runs once at d3."""
    def to_d2(src: str, dst: str, msg: object) -> bool:
        # d0's tell to d2 held; and d2's own tells, so that the successor does not hand
        # the COMMIT out itself yet (replacement_handover.py).
        return isinstance(msg, PlacedMsg) and (dst == "d2" or src == "d2")

    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d1", keep=to_d2)
    fed.step("d2", MemberState("d0", "DEAD"))
    for _ in range(20):
        fed.now += 0.5
        for n in ("d0", "d2", "d3"):
            fed.step(n, Tick())
        fed.deliver(keep=to_d2)
    assert fed.evidence.acting == {(WF, 1): "d2"}
    assert not fed.nodes["d0"].domain_loss.drives(WF)
    assert fed.disks["d2"].placements[WF]["s1"][1] == "d3"  # from d0's grant

    def commits() -> list:
        return [m for to, m in fed.sent_by("d0", Decision) if to == "d3" and m.value.commit]

    assert commits() == [] and runs_of(fed, "s1") == [("d1", 1)]
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, Decision) and dst == "d3"
                or isinstance(msg, PlacedMsg) and src == "d2")
    assert commits() == []  # d2 acknowledged d0's tell: still not sent by d0
    key = (WF, fed.disks["d0"].placements[WF]["s1"][0])
    fed.net = []
    fed.step("d0", Message("d3", DecisionQuery(key, "d3")))
    answers = [m for to, m in fed.sent_by("d0", DecisionAnswer) if m.key == key]
    assert answers[-1].status is AnswerStatus.UNKNOWN
    fed.net = []
    for _ in range(6):  # d2 hands it out: told again, then made
        fed.now += 1.0
        for n in ("d0", "d2", "d3"):
            fed.step(n, Tick())
        # d3's recovery ballot of the round, which d0 refuses (its log decides it).
        fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PaxosPrepare))
        fed.net = []
    assert fed.nodes["d2"].stats["re-placement COMMIT handed out by a successor"] == 1
    assert commits() == []
    assert runs_of(fed, "s1") == [("d1", 1), ("d3", 1)]


def test_a_participant_in_doubt_at_its_restart_asks_once_it_learns_the_commit() -> None:
    """d1 voted YES and restarts before it learns the decision: it may learn the COMMIT
    from an acceptor (here d0's Accept, as a recovery would), not from the coordinator
    that would tell it its placement is over. It is held, with no deadline, while in
    doubt; committed, it asks at once (its next tick) and starts s1 on the answer."""
    fed = Federation()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1"), step("s2")]), placement={"s1": "d1", "s2": "d2"}))
    fed.deliver(keep=lambda src, dst, msg: dst == "d1" and isinstance(msg, Accept))
    held = fed.net
    fed.net = []
    assert WF not in fed.disks["d1"].committed and fed.disks["d1"].holds
    fed.restore("d1")
    assert fed.nodes["d1"].restart_check.holds_back(WF)
    assert fed.nodes["d1"].get_timer() is None or fed.nodes["d1"].get_timer() > fed.now
    fed.net = held
    fed.deliver()
    assert WF in fed.disks["d1"].committed and runs_of(fed, "s1") == []
    assert fed.nodes["d1"].get_timer() == fed.now  # asked at once
    fed.step("d1", Tick())
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PlacementAnswer))
    assert runs_of(fed, "s1") == [] and [type(m) for _, _, m in fed.net] == [PlacementAnswer]
    fed.deliver()
    assert runs_of(fed, "s1") == [("d1", 1)]


def test_a_step_running_at_a_restart_fails_in_the_words_both_engines_use() -> None:
    """A step not idempotent that was running when its domain stopped FAILS at the
    restore, its error in the shells' words (a client sees the same either way)."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    fed.restore("d2")
    _, state, _, error = fed.disks["d2"].results[WF]["s1"]
    assert state is StepState.FAILED
    assert error.startswith("interrupted by an agent restart; not run again"), error



def test_a_lost_domain_back_after_the_end_is_told_it_by_the_coordinator_it_asks() -> None:
    """s2 placed again on d3 while d1 was down; then d0 follows d2, which won epoch 1,
    and takes its end (no end of its own: nobody but d2 tells one). d1 back holds s2's
    reservation and asks d0, the coordinator it follows: d0 does not drive an ended
    workflow, and answers with its end, so d1 ends it and lets its hold go (takeover
    soak seed 4900881: it asked for ever, and refused the successor's end, as one that
    places no step in the round it knows)."""
    fed = placed_again_on_d3()
    won = certificate(fed, "d2", ("d0", "d2"))
    fed.step("d0", Message("d2", FinalMsg(WF, WorkflowState.SUCCEEDED, 1, won=won)))
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    fed.net.clear()
    back(fed, "d1")
    fed.deliver()
    fed.tick(fed.now + 2.0)
    assert fed.nodes["d1"].stats["placement asked after a restart"] >= 1
    assert fed.disks["d1"].final[WF] is WorkflowState.SUCCEEDED
    assert not fed.nodes["d1"].restart_check.holds_back(WF)
    assert not [h for h in fed.nodes["d1"].participant.holds() if h.workflow_id == WF]
    assert fed.nodes["d0"].stats["placement asked of an ended workflow: the end told"] == 1


def test_a_domain_that_holds_a_step_still_is_told_the_end_by_the_sagas_driver_only() -> None:
    """Asked by a domain whose step is still placed on it, an ended original tells it
    nothing: the driver of the epoch that ended the workflow tells it the end with the
    saga's plan it owes (takeover soak seed 5200672). (A spec with a compensate block:
    one with none owes no plan, and is told: test_ended_records.py.)"""
    comp = spec_pb2.Compensation(params_json="{}")
    s1 = step("s1")
    s1.compensate.CopyFrom(comp)
    fed = committed([s1, step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    won = certificate(fed, "d2", ("d0", "d2"))
    fed.step("d0", Message("d2", FinalMsg(WF, WorkflowState.FAILED, 1, won=won)))
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    fed.net.clear()
    fed.step("d0", Message("d1", PlacementQuery(WF)))
    assert not [m for to, m in fed.sent_by("d0", FinalMsg) if to == "d1"]
    assert fed.nodes["d0"].stats["placement asked of an ended workflow: the end told"] == 0


def test_a_domain_that_holds_a_step_is_told_the_end_once_the_saga_is_over() -> None:
    """d2 won epoch 1 (its certificate kept), then followed d3's later epoch, took its
    end, FAILED, and was told its saga is over (the plan closed here). d1, whose step is
    still placed on it as d2 knows and as the saga's driver never learned, asks d2, the
    coordinator it follows: no plan will ever reach it, so d2 tells it the end in the
    epoch it won, with its certificate, and d1 lets its hold go (takeover soak seed
    43007752: d1 asked for ever and held its reservation)."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    won = certificate(fed, "d2", ("d0", "d2"))
    d2 = fed.nodes["d2"].state
    d2.certificates[WF] = (1, won)
    d2.epochs[WF] = (2, "d3")
    d2.final[WF] = WorkflowState.FAILED
    d2.plans[WF] = ()
    fed.net.clear()
    fed.step("d2", Message("d1", PlacementQuery(WF)))
    told = [m for to, m in fed.sent_by("d2", FinalMsg) if to == "d1"]
    assert [(m.state, m.epoch, m.won) for m in told] == [(WorkflowState.FAILED, 1, won)]
    fed.deliver()
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    assert not [h for h in fed.nodes["d1"].participant.holds() if h.workflow_id == WF]


# ---- the next asks from a table, against the walk of every workflow held ------------

def _running() -> NS:
    return NS(local_steps=lambda: [NS(state=StepState.RUNNING)])


class _FakeNode:
    """What RestartCheck reads of its Node: workflows committed (each with one step
    running here, or done), in doubt (a hold, no progress), or ended."""

    def __init__(self, committed: set[str], doubt: set[str]) -> None:
        self.name, self.now = "d2", 0.0
        self.t = NS(reliable_resend_s=0.5)
        self.state = NS(holds={w: NS(workflow_id=w) for w in sorted(doubt)},
                        committed={w: None for w in sorted(committed)}, final={})
        self.progress = {w: _running() for w in sorted(committed)}
        self.participant = NS(holds=lambda: list(self.state.holds.values()))
        self.domain_loss = NS(drives=lambda wf: False)
        self.takeover = None
        self.running = NS(info=lambda wf: NS(coordinator="d0"),
                          start_ready=lambda now, wf: self.did.append(("go", wf)))
        self.stats = Counter()
        self.did: list[tuple] = []

    def send(self, to: str, msg) -> None:
        self.did.append(("ask", msg.workflow_id, self.now))


class _WalkCheck:
    """RestartCheck's `timer` and `tick` as they were: every workflow held, walked."""

    @staticmethod
    def timer(check) -> float | None:
        t = min(check.held.values(), default=math.inf)
        return None if t == math.inf else t

    @staticmethod
    def tick(check, now: float) -> None:
        for wf in sorted(wf for wf, t in check.held.items() if t <= now):
            check._ask(now, wf)


_wfs = [f"w{i}" for i in range(6)]
_check_ops = st.lists(st.tuples(
    st.sampled_from(["tick", "tick", "resumed", "done", "forget", "answer"]),
    st.sampled_from(_wfs), st.integers(0, 12).map(lambda t: t / 2)), max_size=50)


@settings(max_examples=300, deadline=None)
@given(st.sets(st.sampled_from(_wfs)), st.sets(st.sampled_from(_wfs)), _check_ops)
def test_the_next_asks_are_the_walks(committed, doubt, ops) -> None:
    """Any restore, then any sequence of ticks, commits of a workflow in doubt, steps
    ending, ends and answers: the table's earliest ask and the workflows asked at each
    tick are the walk's, in the same order, with the same next asks."""
    _against_the_walk(committed, doubt, ops)


def test_the_walk_comparison_sees_asks_again_and_lets_go() -> None:
    """The comparison above is not of quiet tables: asked again, doubt resumed, let go."""
    did = _against_the_walk({"w0", "w1", "w2"}, {"w3", "w4"}, [
        ("tick", "w0", 0.5), ("tick", "w0", 1.0), ("resumed", "w3", 0.0),
        ("tick", "w0", 0.5), ("done", "w1", 0.0), ("tick", "w0", 6.0),
        ("forget", "w2", 0.0), ("answer", "w0", 0.5), ("tick", "w0", 6.0)])
    assert did == [
        ("ask", "w0", 0.0), ("ask", "w1", 0.0), ("ask", "w2", 0.0),  # restored
        ("ask", "w0", 0.5), ("ask", "w1", 0.5), ("ask", "w2", 0.5),  # the wait doubles
        ("ask", "w0", 1.5), ("ask", "w1", 1.5), ("ask", "w2", 1.5),
        ("ask", "w3", 2.0),  # committed at 1.5: out of doubt, asked at the next tick
        ("ask", "w0", 8.0), ("go", "w1"), ("ask", "w2", 8.0), ("ask", "w3", 8.0),
        ("go", "w0"), ("ask", "w3", 14.5)]  # w0 answered at 8.5, w2 ended; w4 in doubt


def _against_the_walk(committed: set[str], doubt: set[str], ops: list) -> list:
    from fedorch.core.node.restart_check import RestartCheck

    doubt = doubt - committed
    nodes = [_FakeNode(committed, doubt), _FakeNode(committed, doubt)]
    checks = [RestartCheck(n) for n in nodes]
    for check in checks:
        check.hold_all(0.0)
        check.restored(0.0)
    now = 0.0
    for op, wf, dt in ops:
        now += dt
        for check, node in zip(checks, nodes, strict=True):
            node.now = now
            if op == "tick" and check is checks[0]:
                check.tick(now)
            elif op == "tick":
                _WalkCheck.tick(check, now)
            elif op == "resumed" and wf in node.state.holds:
                node.state.committed[wf] = None
                node.progress[wf] = _running()
                check.resumed(wf)
            elif op == "done" and wf in node.progress:
                node.progress[wf] = NS(local_steps=lambda: [])  # nothing left to hold
            elif op == "forget":
                node.state.final[wf] = "ended"
                check.forget(wf)
            elif op == "answer" and wf in check.held:
                check._let_go(now, wf)
        heap, walk = checks
        assert dict(heap.held) == dict(walk.held) and heap.wait == walk.wait
        assert heap.timer() == _WalkCheck.timer(walk)
        assert nodes[0].did == nodes[1].did
    return nodes[0].did
