"""Coordinator core: rounds, votes, timeouts, re-placement, late votes, cancel (sans I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

import pytest
from fedorch.core.negotiation.coordinator import (
    Coordinator,
    Finished,
    PersistDecision,
    Phase,
    Refusal,
    SendDecision,
    SendPrepare,
    VoteIn,
)
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import ROUND_DECIDED
from fedorch.core.negotiation.participant import Participant
from fedorch.core.workflow.placement import Candidate, place
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2

TIMEOUT = 5.0


@dataclass
class FakeResult:
    assignment: dict[str, str]
    unplaceable: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.unplaceable


class FakePlacer:
    """Puts each step on its first preferred domain not excluded for it; records each call."""

    def __init__(self, prefs: dict[str, list[str]]) -> None:
        self.prefs = prefs
        self.calls: list[dict[str, set[str]]] = []

    def __call__(self, excluded: Mapping[str, AbstractSet[str]]) -> FakeResult:
        self.calls.append({k: set(v) for k, v in excluded.items()})
        assignment: dict[str, str] = {}
        unplaceable: dict[str, str] = {}
        for step, domains in self.prefs.items():
            left = [d for d in domains if d not in excluded.get(step, ())]
            if left:
                assignment[step] = left[0]
            else:
                unplaceable[step] = f"nowhere left for {step}"
        return FakeResult(assignment, unplaceable)


DEMO_PREFS = {
    "extract": ["eu-west"],
    "train": ["us-east", "eu-west"],
    "report": ["partner"],
}
ROUND1 = {"extract": "eu-west", "train": "us-east", "report": "partner"}
ROUND2 = {"extract": "eu-west", "train": "eu-west", "report": "partner"}


def yes(domain: str, rnd: int = 1) -> VoteIn:
    return VoteIn(rnd, domain, True, "", f"{domain}/{rnd}/yes".encode())


def no(domain: str, reason: str, rnd: int = 1) -> VoteIn:
    return VoteIn(rnd, domain, False, reason, f"{domain}/{rnd}/no".encode())


def started(prefs: dict[str, list[str]] | None = None, *, max_rounds: int = 3,
            now: float = 0.0) -> tuple[Coordinator, FakePlacer, list]:
    placer = FakePlacer(dict(DEMO_PREFS if prefs is None else prefs))
    core = Coordinator("wf-1", placer=placer, max_rounds=max_rounds, prepare_timeout_s=TIMEOUT)
    core.start(now)
    return core, placer, core.next_actions()


# ---- start ----------------------------------------------------------------------------


def test_start_sends_one_prepare_per_participant_with_its_steps() -> None:
    core, placer, actions = started()
    assert placer.calls == [{}]
    assert actions == [
        SendPrepare("eu-west", 1, ("extract",), ROUND1),
        SendPrepare("partner", 1, ("report",), ROUND1),
        SendPrepare("us-east", 1, ("train",), ROUND1),
    ]
    assert core.phase is Phase.PREPARING
    assert core.round == 1
    assert core.placement == ROUND1
    assert core.next_actions() == []  # the outbox drains


def test_two_steps_on_one_domain_share_one_prepare() -> None:
    _, _, actions = started({"a": ["x"], "b": ["y"], "c": ["x"]})
    assert actions == [
        SendPrepare("x", 1, ("a", "c"), {"a": "x", "b": "y", "c": "x"}),
        SendPrepare("y", 1, ("b",), {"a": "x", "b": "y", "c": "x"}),
    ]


def test_max_rounds_below_one_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Coordinator("wf", placer=FakePlacer({}), max_rounds=0, prepare_timeout_s=1.0)


def test_inputs_out_of_phase() -> None:
    core = Coordinator("wf", placer=FakePlacer(DEMO_PREFS), max_rounds=1, prepare_timeout_s=1.0)
    with pytest.raises(RemoteProtocolError):
        core.receive_vote(0.0, yes("eu-west"))  # nobody was asked yet
    with pytest.raises(LocalProtocolError):
        core.handle_timer(0.0)
    core.start(0.0)
    with pytest.raises(LocalProtocolError):
        core.start(0.0)


# ---- commit ---------------------------------------------------------------------------


def test_all_yes_persists_the_certificate_before_telling_anyone() -> None:
    core, _, _ = started()
    core.receive_vote(1.0, yes("us-east"))
    core.receive_vote(1.5, yes("partner"))
    assert core.next_actions() == []  # eu-west has not voted yet
    core.receive_vote(2.0, yes("eu-west"))
    actions = core.next_actions()
    assert actions == [
        PersistDecision(1, True, ROUND1, (b"eu-west/1/yes", b"partner/1/yes", b"us-east/1/yes"), ""),
        SendDecision("eu-west", 1),
        SendDecision("partner", 1),
        SendDecision("us-east", 1),
        Finished(True, 1, ROUND1, ""),
    ]
    assert core.phase is Phase.COMMITTED
    assert core.get_timer() is None
    assert core.refusals == []


def test_a_step_result_counts_as_an_acknowledgement_once_committed() -> None:
    core, _, _ = started()
    core.receive_result(0.5, "partner")  # no COMMIT yet: nothing to acknowledge
    for domain in ("us-east", "partner", "eu-west"):
        core.receive_vote(1.0, yes(domain))
    core.next_actions()
    assert core.awaiting_acks()
    for domain in ("us-east", "partner"):
        core.receive_result(2.0, domain)
    assert core.awaiting_acks()  # eu-west has not shown it holds the COMMIT
    core.receive_result(2.0, "eu-west")
    assert not core.awaiting_acks()
    with pytest.raises(RemoteProtocolError):
        core.receive_result(3.0, "elsewhere")  # ran no step of it


def test_duplicate_vote_is_ignored() -> None:
    core, _, _ = started({"a": ["x"], "b": ["y"]})
    core.receive_vote(1.0, yes("x"))
    core.receive_vote(1.1, yes("x"))  # must not count twice towards "all voted"
    assert core.next_actions() == []
    assert core.phase is Phase.PREPARING
    core.receive_vote(1.2, no("x", "changed my mind"))  # a contradicting repeat is ignored too
    assert core.next_actions() == []
    core.receive_vote(1.3, yes("y"))
    assert core.next_actions()[-1] == Finished(True, 1, {"a": "x", "b": "y"}, "")


def test_vote_from_a_domain_not_asked_is_a_remote_error() -> None:
    core, _, _ = started()
    with pytest.raises(RemoteProtocolError, match="not asked"):
        core.receive_vote(1.0, yes("mallory"))
    assert core.next_actions() == []
    assert core.phase is Phase.PREPARING


def test_votes_after_commit_are_ignored() -> None:
    core, _, _ = started({"a": ["x"]})
    core.receive_vote(1.0, yes("x"))
    assert core.next_actions()[-1].committed
    core.receive_vote(2.0, yes("x"))      # duplicate of the committed round
    core.receive_vote(2.0, yes("x", 7))   # a round that never existed
    core.handle_timer(100.0)
    core.cancel(100.0, "too late")
    assert core.next_actions() == []
    assert core.phase is Phase.COMMITTED


# ---- a NO -------------------------------------------------------------------------------


def test_a_no_aborts_the_round_and_replaces_the_refused_step() -> None:
    core, placer, _ = started()
    core.receive_vote(1.0, yes("eu-west"))
    core.receive_vote(2.0, no("us-east", "residency: data jurisdiction EU is not accepted here"))
    actions = core.next_actions()
    # The decision is persisted first, then only the possible holders hear it: the YES
    # voter and the one that had not voted yet, never the NO voter (it holds nothing).
    assert actions[:3] == [
        PersistDecision(1, False, ROUND1, (), "a participant refused or did not vote"),
        SendDecision("eu-west", 1),
        SendDecision("partner", 1),
    ]
    assert actions[3:] == [
        SendPrepare("eu-west", 2, ("extract", "train"), ROUND2),
        SendPrepare("partner", 2, ("report",), ROUND2),
    ]
    assert placer.calls == [{}, {"train": {"us-east"}}]
    # partner was still to vote: it is not a refuser and stays a candidate.
    assert core.refusals == [
        Refusal(1, "us-east", ("train",), "residency: data jurisdiction EU is not accepted here")
    ]
    assert core.round == 2
    assert core.placement == ROUND2
    assert core.get_timer() == 2.0 + TIMEOUT

    core.receive_vote(3.0, yes("partner", 2))
    core.receive_vote(3.0, yes("eu-west", 2))
    assert core.next_actions() == [
        PersistDecision(2, True, ROUND2, (b"eu-west/2/yes", b"partner/2/yes"), ""),
        SendDecision("eu-west", 2),
        SendDecision("partner", 2),
        Finished(True, 2, ROUND2, ""),
    ]


def test_no_from_a_domain_excludes_it_for_all_the_steps_it_was_asked() -> None:
    core, placer, _ = started({"a": ["x", "y"], "b": ["x", "z"]})
    core.receive_vote(1.0, no("x", "capacity: full"))
    actions = core.next_actions()
    assert placer.calls[-1] == {"a": {"x"}, "b": {"x"}}
    assert [a for a in actions if isinstance(a, SendPrepare)] == [
        SendPrepare("y", 2, ("a",), {"a": "y", "b": "z"}),
        SendPrepare("z", 2, ("b",), {"a": "y", "b": "z"}),
    ]
    assert [a for a in actions if isinstance(a, SendDecision)] == []


def test_late_yes_for_an_aborted_round_gets_its_abort_again() -> None:
    core, _, _ = started()
    core.receive_vote(1.0, no("us-east", "no"))
    core.next_actions()
    core.receive_vote(2.0, yes("partner", 1))  # missed the round; may hold a reservation
    assert core.next_actions() == [SendDecision("partner", 1)]
    core.receive_vote(2.0, no("partner", "late no", 1))  # holds nothing: nothing to say
    assert core.next_actions() == []
    assert core.round == 2 and core.phase is Phase.PREPARING
    assert [r.domain for r in core.refusals] == ["us-east"]


# ---- timeouts --------------------------------------------------------------------------


def test_timer_before_the_deadline_does_nothing() -> None:
    core, _, _ = started(now=10.0)
    assert core.get_timer() == 10.0 + TIMEOUT
    core.handle_timer(10.0 + TIMEOUT - 0.001)
    assert core.next_actions() == []
    assert core.refusals == []
    assert core.round == 1


def test_timer_at_the_deadline_counts_silent_domains_as_refusers() -> None:
    prefs = {"extract": ["eu-west"], "train": ["us-east", "eu-west"], "report": ["partner", "p2"]}
    core, placer, _ = started(prefs, now=10.0)
    core.receive_vote(11.0, yes("eu-west"))
    core.handle_timer(10.0 + TIMEOUT)
    actions = core.next_actions()
    # Everyone may hold something: the YES voter and the silent ones.
    assert actions[:4] == [
        PersistDecision(1, False, ROUND1, (), "a participant refused or did not vote"),
        SendDecision("eu-west", 1),
        SendDecision("partner", 1),
        SendDecision("us-east", 1),
    ]
    assert core.refusals == [
        Refusal(1, "partner", ("report",), "no vote within 5s"),
        Refusal(1, "us-east", ("train",), "no vote within 5s"),
    ]
    assert placer.calls[-1] == {"report": {"partner"}, "train": {"us-east"}}
    assert core.round == 2
    assert core.get_timer() == 15.0 + TIMEOUT
    placement = {"extract": "eu-west", "train": "eu-west", "report": "p2"}
    assert actions[4:] == [
        SendPrepare("eu-west", 2, ("extract", "train"), placement),
        SendPrepare("p2", 2, ("report",), placement),
    ]


def test_timeout_reason_formats_fractional_seconds() -> None:
    core = Coordinator("wf", placer=FakePlacer({"a": ["x"]}), max_rounds=1,
                       prepare_timeout_s=2.5)
    core.start(0.0)
    core.next_actions()
    core.handle_timer(2.5)
    assert core.refusals == [Refusal(1, "x", ("a",), "no vote within 2.5s")]


# ---- giving up -------------------------------------------------------------------------


def test_max_rounds_exhausted_lists_every_refusal() -> None:
    core, _, _ = started({"a": ["x"], "train": ["us-east", "eu-west"]}, max_rounds=2)
    core.receive_vote(1.0, yes("x"))
    core.receive_vote(1.0, no("us-east", "residency: EU not accepted"))
    core.next_actions()
    core.receive_vote(2.0, no("eu-west", "capacity: ml.train has 0 of 2 slots free", 2))
    actions = core.next_actions()
    assert actions == [
        PersistDecision(2, False, {"a": "x", "train": "eu-west"}, (),
                        "a participant refused or did not vote"),
        SendDecision("x", 2),
        Finished(
            False, 2, {},
            "no placement agreed after 2 round(s); refusals: "
            "round 1 us-east (train): residency: EU not accepted; "
            "round 2 eu-west (train): capacity: ml.train has 0 of 2 slots free",
        ),
    ]
    assert core.phase is Phase.ABORTED
    assert core.get_timer() is None
    # A late YES of the last round still gets its ABORT; the timer does nothing.
    core.handle_timer(1000.0)
    core.receive_vote(3.0, yes("x", 2))
    assert core.next_actions() == [SendDecision("x", 2)]


def test_one_round_only_gives_up_at_the_first_no() -> None:
    core, placer, _ = started(max_rounds=1)
    core.receive_vote(1.0, no("partner", "accept_from: no"))
    actions = core.next_actions()
    assert not any(isinstance(a, SendPrepare) for a in actions)
    assert actions[-1] == Finished(
        False, 1, {},
        "no placement agreed after 1 round(s); refusals: round 1 partner (report): accept_from: no",
    )
    assert len(placer.calls) == 1


def test_no_placement_at_start_finishes_without_a_round() -> None:
    core, _, actions = started({"a": ["x"], "b": []})
    assert actions == [Finished(False, 0, {}, "no placement: b: nowhere left for b")]
    assert core.phase is Phase.ABORTED
    assert core.get_timer() is None


def test_no_placement_after_a_refusal_names_the_step_and_the_refusal() -> None:
    core, placer, _ = started({"a": ["x"], "b": ["y"]})
    core.receive_vote(1.0, no("y", "quota: full"))
    actions = core.next_actions()
    assert actions == [
        PersistDecision(1, False, {"a": "x", "b": "y"}, (), "a participant refused or did not vote"),
        SendDecision("x", 1),
        Finished(
            False, 1, {},
            "no placement: b: nowhere left for b; refusals: round 1 y (b): quota: full",
        ),
    ]
    assert placer.calls[-1] == {"b": {"y"}}
    assert core.phase is Phase.ABORTED


def _fan_out(width: int) -> dict[str, list[str]]:
    return {f"t{i:02d}": [f"org-{i:02d}"] for i in range(1, width + 1)}


def test_a_wide_round_that_timed_out_is_one_readable_group() -> None:
    # A 50-domain fan-out none of whose domains voted in time: one group, named by its
    # first few, its last and a count, not fifty entries.
    core, _, _ = started(_fan_out(50), max_rounds=1)
    core.handle_timer(TIMEOUT + 0.1)
    (finished,) = [a for a in core.next_actions() if isinstance(a, Finished)]
    assert finished.reason == (
        "no placement agreed after 1 round(s); refusals: round 1 org-01 (t01), org-02 (t02),"
        f" org-03 (t03) … org-50 (t50) (50 domains): no vote within {TIMEOUT:g}s")


def test_many_unplaceable_steps_are_named_by_the_first_few_and_counted() -> None:
    core, _, _ = started(_fan_out(50), max_rounds=2)
    core.handle_timer(TIMEOUT + 0.1)  # round 1 refused by silence: nowhere left for any
    (finished,) = [a for a in core.next_actions() if isinstance(a, Finished)]
    assert finished.reason.startswith(
        "no placement: t01: nowhere left for t01; t02: nowhere left for t02; t03: nowhere"
        " left for t03; … and 47 more steps; refusals: round 1 org-01 (t01), ")


def test_refusals_are_grouped_by_round_and_reason() -> None:
    core, _, _ = started({"a": ["x", "w"], "b": ["y"], "c": ["z"]}, max_rounds=2)
    core.receive_vote(1.0, no("x", "quota: full"))  # round 1 ends; a moves to w
    core.next_actions()
    core.handle_timer(1.0 + TIMEOUT + 0.1)  # round 2: nobody votes
    (finished,) = [a for a in core.next_actions() if isinstance(a, Finished)]
    assert finished.reason == (
        "no placement agreed after 2 round(s); refusals: round 1 x (a): quota: full;"
        f" round 2 w (a), y (b), z (c): no vote within {TIMEOUT:g}s")


# ---- cancel ----------------------------------------------------------------------------


def test_cancel_while_preparing_aborts_the_round() -> None:
    core, _, _ = started()
    core.receive_vote(1.0, yes("partner"))
    core.cancel(2.0, "by request")
    assert core.next_actions() == [
        PersistDecision(1, False, ROUND1, (), "cancelled: by request"),
        SendDecision("eu-west", 1),
        SendDecision("partner", 1),
        SendDecision("us-east", 1),
        Finished(False, 1, {}, "cancelled: by request", cancelled=True),
    ]
    assert core.phase is Phase.ABORTED
    assert core.get_timer() is None
    core.receive_vote(3.0, yes("us-east"))
    assert core.next_actions() == [SendDecision("us-east", 1)]


# ---- get_timer -------------------------------------------------------------------------


def test_get_timer_follows_the_current_round() -> None:
    core = Coordinator("wf", placer=FakePlacer(DEMO_PREFS), max_rounds=3,
                       prepare_timeout_s=TIMEOUT)
    assert core.get_timer() is None
    core.start(100.0)
    assert core.get_timer() == 100.0 + TIMEOUT
    core.receive_vote(101.0, no("us-east", "no"))
    assert core.get_timer() == 101.0 + TIMEOUT
    core.receive_vote(102.0, yes("eu-west", 2))
    core.receive_vote(102.0, yes("partner", 2))
    assert core.get_timer() is None


# ---- with the real placement and a real participant: the demo ----------------------------

DEMO_SPEC = """
name: eu-sales-model
data: {jurisdiction: EU}
steps:
  - id: extract
    capability: data.extract
    params: {table: sales}
  - id: train
    capability: ml.train
    needs: [extract]
    retries: 1
    timeout_s: 30
  - id: report
    capability: report.publish
    needs: [train]
"""


def _record(domain: str, caps: dict[str, tuple[int, float]], *, labels: dict[str, str],
            policy: peer_pb2.PolicySummary) -> peer_pb2.DomainRecord:
    return peer_pb2.DomainRecord(
        domain=domain, endpoint=f"{domain}:7100", labels=labels,
        capabilities=[peer_pb2.CapabilityInfo(name=n, capacity=c, available=c, cost=cost)
                      for n, (c, cost) in caps.items()],
        policy=policy,
    )


def test_demo_us_east_is_cheaper_but_refuses_and_round_two_picks_eu_west() -> None:
    spec = parse_spec_text(DEMO_SPEC, "demo.yaml")
    candidates = [
        Candidate(_record("eu-west", {"data.extract": (4, 0.0), "ml.train": (2, 5.0)},
                          labels={"jurisdiction": "EU"},
                          policy=peer_pb2.PolicySummary(published=True, accept_from=["*"],
                                                        residency_accept=["EU"])), True),
        # us-east keeps its policy private: only its vote tells that it takes US data only.
        Candidate(_record("us-east", {"ml.train": (8, 1.0)}, labels={"jurisdiction": "US"},
                          policy=peer_pb2.PolicySummary(published=False)), True),
        Candidate(_record("partner", {"report.publish": (2, 0.0)},
                          labels={"jurisdiction": "EU"},
                          policy=peer_pb2.PolicySummary(published=True,
                                                        accept_from=["eu-west", "us-east"],
                                                        residency_accept=["EU"])), True),
    ]
    seen: list[dict[str, set[str]]] = []

    def placer(excluded: Mapping[str, AbstractSet[str]]):
        seen.append({k: set(v) for k, v in excluded.items()})
        return place(spec, candidates, coordinator="eu-west", excluded=excluded)

    us_east = Participant(
        "us-east",
        config_pb2.Policy(accept_from=["*"], residency=config_pb2.Residency(accept=["US"])),
        {"ml.train": 8}, lease_s=30.0, query_interval_s=5.0,
    )
    core = Coordinator("wf-demo", placer=placer, max_rounds=3, prepare_timeout_s=TIMEOUT)
    core.start(0.0)
    assert core.next_actions() == [
        SendPrepare("eu-west", 1, ("extract",), ROUND1),
        SendPrepare("partner", 1, ("report",), ROUND1),
        SendPrepare("us-east", 1, ("train",), ROUND1),
    ]
    out = us_east.prepare(0.1, workflow_id="wf-demo", round=1, coordinator="eu-west",
                          data_labels=dict(spec.data), steps=[("train", "ml.train")])
    assert not out.yes and out.hold is None
    core.receive_vote(0.2, yes("eu-west"))
    core.receive_vote(0.3, VoteIn(1, "us-east", out.yes, out.reason, b"us-east-no"))
    actions = core.next_actions()
    assert [a for a in actions if isinstance(a, SendPrepare)] == [
        SendPrepare("eu-west", 2, ("extract", "train"), ROUND2),
        SendPrepare("partner", 2, ("report",), ROUND2),
    ]
    assert seen == [{}, {"train": {"us-east"}}]
    assert core.refusals == [Refusal(
        1, "us-east", ("train",),
        "residency: data jurisdiction EU is not accepted here (accepts: US)",
    )]
    core.receive_vote(0.5, yes("partner", 2))
    core.receive_vote(0.6, yes("eu-west", 2))
    assert core.next_actions()[-1] == Finished(True, 2, ROUND2, "")


# ---- decision queries and records (classic mode) ------------------------------------------


def test_queries_are_answered_from_the_log() -> None:
    from fedorch.core.negotiation.messages import AnswerStatus
    core, _, _ = started()
    assert core.answer_query(1.0, 1).status is AnswerStatus.UNKNOWN  # still voting
    core.receive_vote(1.0, no("us-east", "no"))
    core.next_actions()
    aborted = core.answer_query(2.0, 1)
    assert aborted.status is AnswerStatus.DECIDED and not aborted.value.commit
    with pytest.raises(RemoteProtocolError):
        core.answer_query(2.0, 7)  # a round that never existed
    core.receive_vote(3.0, yes("eu-west", 2))
    core.receive_vote(3.0, yes("partner", 2))
    core.next_actions()
    committed = core.answer_query(4.0, 2)
    assert committed.value.commit and len(committed.value.votes) == 2
    assert core.collectable() == [("wf-1", 1)]  # ABORT: never needed (presumed abort)
    core.receive_ack(5.0, "eu-west", 2)
    core.receive_ack(5.0, "partner", 2)
    assert core.collectable() == [("wf-1", 1), ("wf-1", 2)]


def test_peer_inputs_out_of_phase_are_remote_errors() -> None:
    core = Coordinator("wf", placer=FakePlacer(DEMO_PREFS), max_rounds=1, prepare_timeout_s=1.0)
    for call in (lambda: core.receive_paxos(0.0, object()),
                 lambda: core.receive_ack(0.0, "x", 1),
                 lambda: core.answer_query(0.0, 1)):
        with pytest.raises(RemoteProtocolError):
            call()
    assert core.phase is Phase.IDLE


def test_a_no_for_a_round_decided_elsewhere_keeps_the_domain_a_candidate() -> None:
    # The participants' recovery chose ABORT while y's PREPARE was on its way: y learned
    # it first and answers the PREPARE "round already decided". The round is over, but y
    # refused nothing: round 2 asks y again for b (the only domain b may go to).
    core, placer, _ = started({"a": ["x"], "b": ["y"]})
    core.receive_vote(1.0, yes("x"))
    core.receive_vote(2.0, no("y", ROUND_DECIDED))
    actions = core.next_actions()
    assert actions[0] == PersistDecision(1, False, {"a": "x", "b": "y"}, (),
                                         "a participant refused or did not vote")
    assert placer.calls[-1] == {}
    assert [a for a in actions if isinstance(a, SendPrepare)] == [
        SendPrepare("x", 2, ("a",), {"a": "x", "b": "y"}),
        SendPrepare("y", 2, ("b",), {"a": "x", "b": "y"}),
    ]
    assert core.phase is Phase.PREPARING and core.round == 2
    # Named in the refusals all the same, should the workflow abort in the end.
    assert core.refusals == [Refusal(1, "y", ("b",), ROUND_DECIDED)]
