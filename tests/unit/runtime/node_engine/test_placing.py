"""The client service's submission plans (placing.py `SubmissionPlans`): a spec's checks,
fan-out expansion and first placement, kept by spec shape and member view. What a
submission gets is always what the checks and `place` give it now."""

from __future__ import annotations

import random

import pytest
from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.node.inputs import Message
from fedorch.core.node.records import Disk, PrepareMsg, Timing, VoteMsg, WfInfo
from fedorch.core.workflow import fanout
from fedorch.core.workflow.placement import Candidate, place
from fedorch.core.workflow.spec import SpecError, spec_from_mapping
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2, spec_pb2
from fedorch.runtime.node_engine.placing import (
    CANDIDATES_KEPT_S,
    KeptCandidates,
    PlacedNode,
    SubmissionPlans,
)

ME = "c1"


def _record(domain: str, available: int = 4, caps: tuple[str, ...] = ("work",)
            ) -> peer_pb2.DomainRecord:
    return peer_pb2.DomainRecord(
        domain=domain, endpoint=f"{domain}:1", labels={"tier": "prod"},
        capabilities=[peer_pb2.CapabilityInfo(name=c, capacity=4, available=available)
                      for c in caps])


def _view(records: dict[str, peer_pb2.DomainRecord], states: dict[str, str] | None = None
          ) -> list[Candidate]:
    states = states or {}
    return [Candidate.of(r, states.get(d, "ALIVE")) for d, r in records.items()]


def _spec(name: str = "wf", steps: int = 3):
    return spec_from_mapping({"name": name, "steps": [
        {"id": f"s{i}", "capability": "work", **({"needs": [f"s{i - 1}"]} if i else {})}
        for i in range(steps)]})


def _placed_now(spec, candidates) -> dict[str, str]:
    placement = place(spec, candidates, coordinator=ME)
    assert placement.ok
    return dict(placement.assignment)


def test_the_same_spec_and_view_are_placed_once_and_each_submission_gets_its_own_dict():
    records = {d: _record(d) for d in ("c1", "c2", "c3")}
    plans = SubmissionPlans(ME)
    first = plans.plan(_spec(), _view(records))
    submitted = _spec()  # a new message of the same shape, as each request parses one
    second = plans.plan(submitted, _view(records))
    assert (plans.misses, plans.hits) == (1, 1)
    assert second.spec is submitted  # the submission's own spec, never a shared one
    assert second.assignment == first.assignment == _placed_now(submitted, _view(records))
    second.assignment["s0"] = "elsewhere"  # the Node keeps it: nothing else may see this
    assert plans.plan(_spec(), _view(records)).assignment == first.assignment


def test_a_changed_view_places_again():
    records = {d: _record(d) for d in ("c1", "c2", "c3")}
    plans = SubmissionPlans(ME)
    spec = _spec(steps=1)
    before = plans.plan(spec, _view(records)).assignment
    # A new record version (as membership parses it: a new object) changes the load.
    records[before["s0"]] = _record(before["s0"], available=0)
    after = plans.plan(spec, _view(records)).assignment
    assert after == _placed_now(spec, _view(records))
    assert after != before
    # A member that dies is no longer a candidate.
    states = {after["s0"]: "DEAD"}
    again = plans.plan(spec, _view(records, states)).assignment
    assert again == _placed_now(spec, _view(records, states)) and again != after
    assert (plans.misses, plans.hits) == (3, 0)


def test_an_equal_record_parsed_again_is_the_same_view():
    records = {d: _record(d) for d in ("c1", "c2")}
    plans = SubmissionPlans(ME)
    plans.plan(_spec(), _view(records))
    copies = {d: peer_pb2.DomainRecord.FromString(r.SerializeToString())
              for d, r in records.items()}
    plans.plan(_spec(), _view(copies))
    assert (plans.misses, plans.hits) == (1, 1)


def test_a_spec_of_another_shape_is_placed_apart():
    records = {d: _record(d) for d in ("c1", "c2", "c3")}
    plans = SubmissionPlans(ME)
    plans.plan(_spec(steps=2), _view(records))
    three = plans.plan(_spec(steps=3), _view(records))
    assert sorted(three.assignment) == ["s0", "s1", "s2"]
    assert (plans.misses, plans.hits) == (2, 0)


def test_a_spec_no_domain_can_take_is_planned_with_why_and_never_kept():
    records = {d: _record(d, caps=("other",)) for d in ("c1", "c2")}
    plans = SubmissionPlans(ME)
    for _ in range(2):
        plan = plans.plan(_spec(steps=1), _view(records))
        assert plan.assignment == {}
        assert plan.unplaceable == {"s0": "no eligible domain for 'work' (c1, c2: does not"
                                          " offer 'work')"}, plan.unplaceable
    cyclic = spec_pb2.WorkflowSpec(name="cyc", steps=[
        spec_pb2.StepSpec(id="a", capability="work", needs=["b"]),
        spec_pb2.StepSpec(id="b", capability="work", needs=["a"])])
    for _ in range(2):
        with pytest.raises(SpecError, match="cycle"):
            plans.plan(cyclic, _view(records))
    assert plans.hits == 0
    # Once a domain offers the capability, the same spec is placed.
    records["c2"] = _record("c2")
    placed = plans.plan(_spec(steps=1), _view(records))
    assert placed.assignment == {"s0": "c2"} and placed.unplaceable == {}


def test_fan_out_is_expanded_each_time_and_never_shared():
    records = {d: _record(d, caps=("work", "deploy")) for d in ("c1", "c2", "c3")}
    spec = spec_from_mapping({"name": "rollout", "steps": [
        {"id": "build", "capability": "work"},
        {"id": "deploy", "capability": "deploy", "needs": ["build"],
         "each": {"labels": {"tier": "prod"}}}]})
    plans = SubmissionPlans(ME)
    first = plans.plan(spec, _view(records))
    second = plans.plan(spec, _view(records))
    assert first.spec is not spec and second.spec is not first.spec
    assert first.spec == second.spec == fanout.expand(spec, _view(records), coordinator=ME)
    assert [s.id for s in first.spec.steps] == ["build", "deploy@c1", "deploy@c2",
                                                "deploy@c3"]
    assert first.assignment == _placed_now(first.spec, _view(records))
    assert plans.hits == 0


def test_plans_kept_are_bounded():
    records = {d: _record(d) for d in ("c1", "c2")}
    plans = SubmissionPlans(ME, kept=2)
    for name in ("a", "b", "c"):
        plans.plan(_spec(name), _view(records))
    plans.plan(_spec("a"), _view(records))  # the oldest went
    plans.plan(_spec("c"), _view(records))
    assert (plans.misses, plans.hits) == (4, 1)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def test_candidates_are_kept_until_the_view_changes_or_their_span_ends():
    records = {d: _record(d) for d in ("c1", "c2", "c3")}
    clock = _Clock()
    kept = KeptCandidates(object(), build=lambda agent: _view(records),
                          monotonic=clock.monotonic)
    first = kept.now()
    assert kept.now() is first and kept.made == 1  # many submissions, one build
    # Membership's hook: the next ask builds them from the view as it is now.
    records["c2"] = _record("c2", available=0)
    kept.changed()
    second = kept.now()
    assert kept.made == 2 and second is not first
    assert [c.record for c in second] == [records[d] for d in ("c1", "c2", "c3")]
    # A revoked key tells membership nothing: the span bounds how long it is missed.
    clock.now += CANDIDATES_KEPT_S / 2
    assert kept.now() is second
    clock.now += CANDIDATES_KEPT_S
    assert kept.now() is not second and kept.made == 3
    clock.now -= 5.0  # a clock that goes back (a fake one may): built again
    kept.now()
    assert kept.made == 4


# ---- the vote's data flow (PlacedNode.vote_context) ---------------------------------


def _voter(policy: config_pb2.Policy, records: dict[str, peer_pb2.DomainRecord]) -> PlacedNode:
    return PlacedNode("d2", candidates=lambda: [], records=lambda domains: {
        d: records[d] for d in domains if d in records}, policy=policy,
        capacities={"us.score": 2}, timing=Timing(), peers=["d0", "d1", "d2"],
        rng=random.Random(0), disk=Disk(), now=0.0)


def _vote(node: PlacedNode, spec: spec_pb2.WorkflowSpec, placement: dict[str, str],
          steps: tuple[tuple[str, str], ...]) -> VoteMsg:
    tx = TxInfo("d0.wf-1", 1, "d0", tuple(sorted(set(placement.values()))), ("d0",))
    node.step(0.0, Message("d0", PrepareMsg(tx, steps, WfInfo(spec, placement, "d0"))))
    [vote] = [o.msg for o in (*node.ready().send_now, *node.ready().send_after_write)
              if type(o.msg) is VoteMsg]
    return vote


def test_a_vote_refuses_the_labels_a_step_would_receive_along_the_dag():
    # load's own data label makes score's input EU data: the workflow carries none.
    spec = spec_from_mapping({"name": "eu-score", "steps": [
        {"id": "load", "capability": "data.load", "data": {"jurisdiction": "EU"}},
        {"id": "score", "capability": "us.score", "needs": ["load"]}]})
    policy = config_pb2.Policy(residency=config_pb2.Residency(accept=["US"]))
    records = {"d1": _record("d1"), "d2": _record("d2", caps=("us.score",))}
    vote = _vote(_voter(policy, records), spec, {"load": "d1", "score": "d2"},
                 (("score", "us.score"),))
    assert not vote.yes
    assert vote.reason.startswith("residency: step 'score' would receive jurisdiction EU")


def test_a_vote_runs_the_rules_on_the_workflows_name():
    spec = spec_from_mapping({"name": "forbidden", "steps": [
        {"id": "score", "capability": "us.score"}]})
    policy = config_pb2.Policy(rules=[config_pb2.PolicyRule(
        name="no-forbidden", expression='workflow != "forbidden"',
        message="this workflow is not taken here")])
    node = _voter(policy, {"d2": _record("d2", caps=("us.score",))})
    vote = _vote(node, spec, {"score": "d2"}, (("score", "us.score"),))
    assert (vote.yes, vote.reason) == (
        False, "rule no-forbidden: this workflow is not taken here (step 'score')")
