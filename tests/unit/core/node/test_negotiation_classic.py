"""The Node's rounds in classic two-phase commit (`Timing.classic`, the daemon's
`negotiation.commit: 2pc`; core/node/negotiation.py, core/negotiation/termination.py):
no acceptors and no Paxos message; the COMMIT is the coordinator's alone; a participant
in doubt asks the coordinator (and, once it is gone, the other participants); a
restarted coordinator presumes abort; takeover's electorate is the participants and the
original coordinator. d0 coordinates; the steps are on d1 and d2; d3 holds none."""

from __future__ import annotations

from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    Decision,
    DecisionQuery,
    PaxosPrepare,
    Promise,
)
from fedorch.core.negotiation.termination import DoubtState
from fedorch.core.node import MemberState, Message, StepEnded, Submit, Tick
from fedorch.core.node.records import ClaimMsg, PrepareMsg, Timing
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_takeover import Federation as TakeoverFederation

NAMES = ["d0", "d1", "d2", "d3"]
WF = "d0.w"
LEASE_S = 8.0
QUERY_INTERVAL_S = 2.0
CLASSIC = Timing(max_rounds=1, classic=True, lease_s=LEASE_S,
                 query_interval_s=QUERY_INTERVAL_S)
PAXOS_KINDS = (PaxosPrepare, Accept, Promise, Accepted)


class Federation(TakeoverFederation):
    """The takeover tests' four certified Nodes, on classic rounds, every attempt left
    running until a test ends it."""

    steps_end_at_once = False
    timing = CLASSIC

    def sent_everywhere(self, kind) -> list:
        return [m for n in self.names for _, m in self.sent_by(n, kind)]


class WithTakeover(Federation):
    timing = Timing(max_rounds=1, classic=True, lease_s=LEASE_S,
                    query_interval_s=QUERY_INTERVAL_S, takeover_after_s=3.0)


SPEC = spec_pb2.WorkflowSpec(name="w", steps=[
    spec_pb2.StepSpec(id="s1", capability="a"),
    spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])])


def submit(fed: Federation, placement: dict[str, str] | None = None) -> None:
    fed.step("d0", Submit(WF, SPEC, placement=placement or {"s1": "d1", "s2": "d2"}))


def no_step_ends(fed: Federation) -> None:
    """What is on the network delivered, step attempts left running."""
    for _ in range(50):
        fed.net = [m for m in fed.net if not isinstance(m[2], StepEnded)]
        if not fed.net:
            return
        batch, fed.net = fed.net, []
        for src, dst, msg in batch:
            if src not in fed.silent and dst not in fed.silent:
                fed.step(dst, Message(src, msg))


def test_a_classic_round_has_no_acceptors_and_commits_without_a_paxos_message() -> None:
    fed = Federation()
    fed.steps_end_at_once = True
    submit(fed)
    fed.deliver()
    prepares = fed.sent_everywhere(PrepareMsg)
    assert prepares and all(p.tx.acceptors == () for p in prepares)
    assert fed.disks["d0"].rows[WF].acceptors == ()
    assert fed.sent_everywhere(PAXOS_KINDS) == []
    assert not fed.disks["d0"].acceptor and not fed.disks["d1"].acceptor
    # The COMMIT went from the coordinator's log to each participant, with its votes.
    commits = [(to, m) for to, m in fed.sent_by("d0", Decision) if m.value.commit]
    assert sorted(to for to, _ in commits) == ["d1", "d2"]
    for n in ("d1", "d2"):
        assert fed.disks[n].learned[(WF, 1)].commit
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED


def test_the_paxos_default_is_unchanged() -> None:
    class Paxos(Federation):
        timing = Timing(max_rounds=1)

    fed = Paxos()
    submit(fed)
    no_step_ends(fed)
    assert all(p.tx.acceptors for p in fed.sent_everywhere(PrepareMsg))
    assert fed.sent_everywhere(PAXOS_KINDS)


def test_a_participant_in_doubt_asks_the_coordinator_at_its_lease_then_again() -> None:
    fed = Federation()
    submit(fed)
    # d0 reads no vote: d1 and d2 voted YES and wait for its decision.
    fed.deliver(keep=lambda src, dst, msg: dst == "d0")
    fed.net = []
    assert fed.nodes["d1"].participant.status((WF, 1)) == "prepared"
    fed.silent.add("d0")
    fed.run_until(LEASE_S - 0.1)
    assert fed.sent_by("d1", DecisionQuery) == []
    fed.run_until(LEASE_S + 3 * QUERY_INTERVAL_S + 0.1)
    asked = fed.sent_by("d1", DecisionQuery)
    # Only the coordinator (it is not known gone), at the lease and every interval after,
    # and never a ballot: nobody but the coordinator decides in 2PC.
    assert [to for to, _ in asked] == ["d0"] * 4
    assert fed.sent_everywhere(PAXOS_KINDS) == []
    assert fed.disks["d1"].learned == {} and fed.disks["d2"].learned == {}
    assert fed.nodes["d1"].participant.status((WF, 1)) == "prepared"
    assert fed.nodes["d1"].termination.state((WF, 1)) is DoubtState.ASKING  # no ballot


def test_a_restarted_coordinator_presumes_abort_and_releases_the_participants() -> None:
    fed = Federation()
    submit(fed)
    fed.deliver(keep=lambda src, dst, msg: dst == "d0")
    fed.net = []  # the votes are lost with d0's crash
    fed.silent.add("d0")
    fed.run_until(LEASE_S + 0.1)  # d1 and d2 have asked the dead coordinator
    fed.silent.discard("d0")
    fed.restore("d0")
    fed.deliver()
    row = fed.disks["d0"].rows[WF]
    assert row.state is WorkflowState.ABORTED and "presumed abort" in row.reason
    fed.run_until(LEASE_S + 2 * QUERY_INTERVAL_S + 0.2)
    for n in ("d1", "d2"):
        assert not fed.disks[n].learned[(WF, 1)].commit
        assert fed.disks[n].holds == {}
    assert fed.sent_everywhere(PAXOS_KINDS) == []


def run_dropping(fed: Federation, end: float, lost) -> None:
    """Every deadline up to `end`, what `lost(src, dst, msg)` says dropped on the way,
    and no step attempt ending (what is on the network first)."""
    while True:
        for _ in range(50):
            fed.net = [m for m in fed.net if not isinstance(m[2], StepEnded)
                       and not lost(*m)]
            if not fed.net:
                break
            batch, fed.net = fed.net, []
            for src, dst, msg in batch:
                if src not in fed.silent and dst not in fed.silent:
                    fed.step(dst, Message(src, msg))
        due = [(t, n) for n in fed.names if n not in fed.silent
               and (t := fed.nodes[n].get_timer()) is not None and t <= end]
        if not due:
            fed.now = max(fed.now, end)
            return
        at, name = min(due)
        fed.now = max(fed.now, at)
        fed.step(name, Tick())


def commit_lost_to_d2(src: str, dst: str, msg: object) -> bool:
    return type(msg) is Decision and dst == "d2"


def test_a_commit_not_acknowledged_is_sent_again() -> None:
    fed = Federation()
    submit(fed)
    run_dropping(fed, fed.now, commit_lost_to_d2)  # the first COMMIT to d2 is lost
    assert fed.disks["d1"].learned[(WF, 1)].commit
    assert (WF, 1) not in fed.disks["d2"].learned
    sent_before = len(fed.sent_by("d0", Decision))
    run_dropping(fed, fed.now + CLASSIC.decision_resend_s + 0.01, lambda *m: False)
    again = fed.sent_by("d0", Decision)[sent_before:]
    assert [to for to, m in again if m.value.commit] == ["d2"]  # d1 acknowledged it
    assert fed.disks["d2"].learned[(WF, 1)].commit
    assert fed.sent_by("d2", DecisionQuery) == []  # told before its lease passed


def test_an_in_doubt_participant_learns_the_commit_from_the_coordinators_log() -> None:
    fed = Federation()
    submit(fed)
    run_dropping(fed, LEASE_S - 0.1, commit_lost_to_d2)  # every COMMIT to d2 lost
    assert (WF, 1) not in fed.disks["d2"].learned
    fed.restore("d0")  # its COMMIT record, unacknowledged by d2, is kept
    run_dropping(fed, LEASE_S + 0.1, commit_lost_to_d2)
    assert [to for to, _ in fed.sent_by("d2", DecisionQuery)] == ["d0"]
    assert fed.disks["d2"].learned[(WF, 1)].commit  # from the answer to its query
    assert WF in fed.disks["d2"].committed


def test_with_the_coordinator_dead_an_in_doubt_participant_asks_the_others() -> None:
    fed = Federation()
    submit(fed)
    run_dropping(fed, fed.now, commit_lost_to_d2)
    fed.silent.add("d0")
    fed.step("d2", MemberState("d0", "DEAD"))
    asked = sorted(to for to, _ in fed.sent_by("d2", DecisionQuery))
    assert asked == ["d0", "d1"]  # the coordinator and the other participant, at once
    fed.deliver()
    # d1 learned the COMMIT from d0: its answer carries the certificate.
    assert fed.disks["d2"].learned[(WF, 1)].commit
    assert fed.sent_everywhere(PAXOS_KINDS) == []


def test_the_takeover_electorate_is_the_participants_and_the_original() -> None:
    fed = WithTakeover()
    submit(fed)
    no_step_ends(fed)
    assert WF in fed.disks["d1"].committed and WF in fed.disks["d2"].committed
    for n in ("d1", "d2"):
        assert fed.nodes[n].takeover.electorate_of(WF) == frozenset({"d0", "d1", "d2"})
    fed.silent.add("d0")
    for n in ("d1", "d2", "d3"):
        fed.step(n, MemberState("d0", "DEAD"))
    claims = {to for to, m in fed.sent_by("d1", ClaimMsg)}
    assert claims >= {"d2"}
    no_step_ends(fed)
    assert fed.evidence.acting == {(WF, 1): "d1"}  # d1 and d2: a majority of three
    assert fed.disks["d2"].epochs[WF] == (1, "d1")


def test_one_participant_and_a_dead_coordinator_are_no_majority() -> None:
    fed = WithTakeover()
    submit(fed, {"s1": "d1", "s2": "d1"})
    no_step_ends(fed)
    assert fed.nodes["d1"].takeover.electorate_of(WF) == frozenset({"d0", "d1"})
    fed.silent.add("d0")
    fed.step("d1", MemberState("d0", "DEAD"))
    no_step_ends(fed)
    fed.run_until(30.0)
    assert fed.evidence.acting == {}  # the electorate of two waits for its coordinator


def test_a_prepare_lost_on_the_way_is_sent_again_before_the_deadline() -> None:
    fed = Federation()
    submit(fed)
    fed.net = [m for m in fed.net if not (type(m[2]) is PrepareMsg and m[1] == "d2")]
    no_step_ends(fed)
    assert fed.nodes["d2"].participant.status((WF, 1)) is None  # its PREPARE was lost
    run_dropping(fed, fed.now + CLASSIC.resend_s + 0.01, lambda *m: False)
    to_d2 = [m for to, m in fed.sent_by("d0", PrepareMsg) if to == "d2"]
    assert len(to_d2) == 2 and to_d2[0].tx == to_d2[1].tx
    assert fed.disks["d1"].learned[(WF, 1)].commit  # the round committed, in time
