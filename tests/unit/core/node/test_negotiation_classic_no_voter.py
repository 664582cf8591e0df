"""A NO voter in classic two-phase commit answers an in-doubt peer ABORT
(core/node/no_votes.py, core/negotiation/termination.py: cooperative termination).

d0 coordinates; s1 is on d1, s2 on d2, s3 on d3, which has no slot and votes NO. d0
hears the three votes, decides ABORT, and dies before any participant hears it: d1
and d2, YES voters, are in doubt. d3's NO is on record as the round's ABORT, so once
d0 is DEAD in their view, d3 tells them."""

from __future__ import annotations

from fedorch.core.negotiation.messages import (
    AnswerStatus,
    Decision,
    DecisionAnswer,
    DecisionQuery,
)
from fedorch.core.node import MemberState, Message, Submit
from fedorch.core.node.records import PrepareMsg, Timing, VoteMsg
from fedorch.core.node.retention import Retention
from fedorch.gen.fedorch.v1 import spec_pb2

from tests.unit.core.node.test_negotiation_classic import CLASSIC, PAXOS_KINDS, Federation

WF = "d0.w"
KEY = (WF, 1)
SPEC = spec_pb2.WorkflowSpec(name="w", steps=[
    spec_pb2.StepSpec(id="s1", capability="a"),
    spec_pb2.StepSpec(id="s2", capability="a"),
    spec_pb2.StepSpec(id="s3", capability="a")])
PLACEMENT = {"s1": "d1", "s2": "d2", "s3": "d3"}
ANSWERED = "in-doubt query answered ABORT from our NO"


class NoAtD3(Federation):
    """d3 offers no slot (until a test gives it some)."""

    d3_slots = 0

    def capacities_of(self, name: str) -> dict[str, int]:
        return {"a": self.d3_slots} if name == "d3" else {"a": 4}


def d0_decided_and_died(fed: Federation) -> None:
    """The round is voted; d0's decision reaches nobody, and d0 goes silent."""
    fed.step("d0", Submit(WF, SPEC, placement=PLACEMENT))
    fed.deliver(keep=lambda src, dst, msg: src == "d0" and type(msg) is Decision)
    fed.net = []  # d0's ABORT is lost with it
    fed.silent.add("d0")


def test_a_classic_no_is_recorded_as_the_rounds_abort() -> None:
    fed = NoAtD3()
    d0_decided_and_died(fed)
    assert [m.yes for _, m in fed.sent_by("d3", VoteMsg)] == [False]
    assert not fed.disks["d3"].learned[KEY].commit  # written with the NO's turn
    assert fed.disks["d3"].holds == {}
    for n in ("d1", "d2"):
        assert fed.nodes[n].participant.status(KEY) == "prepared"
        assert KEY not in fed.disks[n].learned


def test_an_in_doubt_yes_voter_learns_the_abort_from_the_no_voter() -> None:
    fed = NoAtD3()
    d0_decided_and_died(fed)
    fed.step("d1", MemberState("d0", "DEAD"))
    assert sorted(to for to, _ in fed.sent_by("d1", DecisionQuery)) == ["d0", "d2", "d3"]
    fed.deliver()
    answers = [m for to, m in fed.sent_by("d3", DecisionAnswer) if to == "d1"]
    assert [(a.status, a.value.commit) for a in answers] == [(AnswerStatus.DECIDED, False)]
    assert fed.nodes["d3"].stats[ANSWERED] == 1
    assert not fed.disks["d1"].learned[KEY].commit  # from d3's answer
    assert fed.disks["d1"].holds == {}  # released
    assert fed.nodes["d1"].participant.status(KEY) == "aborted"
    assert fed.sent_everywhere(PAXOS_KINDS) == []


def test_after_a_restart_the_record_still_answers_and_a_prepare_again_gets_no() -> None:
    fed = NoAtD3()
    d0_decided_and_died(fed)
    prepare = next(m for to, m in fed.sent_by("d0", PrepareMsg) if to == "d3")
    fed.d3_slots = 4  # d3 has room now: only its record keeps its NO
    fed.restore("d3")
    fed.step("d3", Message("d0", prepare))  # d0's PREPARE, sent again before it died
    again = fed.sent_by("d3", VoteMsg)[-1][1]
    assert again.key == KEY and not again.yes
    assert KEY not in fed.disks["d3"].holds
    fed.net = []
    fed.step("d2", MemberState("d0", "DEAD"))
    fed.deliver()
    assert not fed.disks["d2"].learned[KEY].commit  # from d3's record
    assert fed.disks["d2"].holds == {}


def test_paxos_commit_rounds_keep_no_record_of_a_no() -> None:
    class Paxos(NoAtD3):
        timing = Timing(max_rounds=1, lease_s=CLASSIC.lease_s,
                        query_interval_s=CLASSIC.query_interval_s)

    fed = Paxos()
    fed.step("d0", Submit(WF, SPEC, placement=PLACEMENT))
    fed.deliver(keep=lambda src, dst, msg: type(msg) is Decision)
    fed.net = []
    assert [m.yes for _, m in fed.sent_by("d3", VoteMsg)] == [False]
    assert KEY not in fed.disks["d3"].learned  # recovery ballots decide there
    assert fed.nodes["d3"].stats["classic NO recorded as the round's ABORT"] == 0


def test_retention_forgets_the_record_with_its_round() -> None:
    retention = Retention(keep_ended_s=10.0, max_ended_workflows=1000, late_message_s=10.0)

    class Retained(NoAtD3):
        timing = Timing(max_rounds=1, classic=True, lease_s=CLASSIC.lease_s,
                        query_interval_s=CLASSIC.query_interval_s, retention=retention)

    fed = Retained()
    d0_decided_and_died(fed)
    d3 = fed.disks["d3"]
    assert not d3.learned[KEY].commit and WF in d3.endings  # its clock started
    fed.run_until(fed.now + retention.keep_ended_s + 1.0)
    assert WF not in d3.endings and KEY in d3.learned  # the workflow forgotten; it waits
    fed.run_until(fed.now + fed.timing.retention.round_kept_s + 1.0)
    assert KEY not in d3.learned  # gone by its round's life, as any learned decision
    assert fed.nodes["d3"].stats["retention: learned decision forgotten"] == 1
