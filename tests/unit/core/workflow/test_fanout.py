"""Fan-out and staged rollout: the expansion into instances, its spec checks, placement of
what cannot be expanded, and the wave rules of the progress core (with properties)."""

from __future__ import annotations

import pytest
from fedorch.core.workflow import fanout
from fedorch.core.workflow.placement import Candidate, place
from fedorch.core.workflow.progress import Outcome, Progress, StepState
from fedorch.core.workflow.spec import SpecError, spec_from_mapping, validate_spec
from fedorch.gen.fedorch.v1 import peer_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

DOMAINS = ("d1", "d2", "d3", "d4", "d5")


def _member(domain: str, *, labels: dict[str, str] | None = None, alive: bool = True,
            caps: tuple[str, ...] = ("app.deploy", "ci.build")) -> Candidate:
    return Candidate(peer_pb2.DomainRecord(
        domain=domain, endpoint=f"{domain}:1", labels=labels or {"tier": "prod"},
        capabilities=[peer_pb2.CapabilityInfo(name=c, capacity=2, available=2) for c in caps],
    ), alive)


def _spec(waves: dict | None = None, each: dict | None = None, *, downstream: bool = True,
          compensate: bool = False):
    deploy = {"id": "deploy", "capability": "app.deploy", "needs": ["build"],
              "each": each if each is not None else {"labels": {"tier": "prod"}}}
    if waves is not None:
        deploy["waves"] = waves
    if compensate:
        deploy["compensate"] = {"params": {"action": "rollback"}}
    steps = [{"id": "build", "capability": "ci.build"}, deploy]
    if downstream:
        steps.append({"id": "verify", "capability": "ci.build", "needs": ["deploy"]})
    return spec_from_mapping({"name": "rollout", "steps": steps})


def _expand(spec, members):
    return fanout.expand(spec, members, coordinator="d1")


# ---- expansion ----------------------------------------------------------------------


def test_expansion_makes_one_pinned_instance_per_eligible_domain_in_waves():
    members = [_member("d3"), _member("d1"), _member("d2"),
               _member("dead", alive=False), _member("dev", labels={"tier": "dev"}),
               _member("nocap", caps=("ci.build",))]
    spec = _expand(_spec({"max_parallel": 2}), members)
    validate_spec(spec)  # what every participant checks in the PREPARE
    by_id = {s.id: s for s in spec.steps}
    assert [s.id for s in spec.steps] == ["build", "deploy@d1", "deploy@d2", "deploy@d3",
                                          "verify"]
    assert [by_id[f"deploy@{d}"].wave for d in ("d1", "d2", "d3")] == [1, 1, 2]
    for d in ("d1", "d2", "d3"):
        instance = by_id[f"deploy@{d}"]
        assert list(instance.constraints.domains) == [d]
        assert instance.instance_of == "deploy"
        assert not instance.HasField("each")
    assert list(by_id["deploy@d1"].needs) == ["build"]
    assert list(by_id["deploy@d3"].needs) == ["build", "deploy@d1", "deploy@d2"]
    assert list(by_id["verify"].needs) == ["deploy@d1", "deploy@d2", "deploy@d3"]
    placement = place(spec, members, coordinator="d1")
    assert placement.ok
    assert {k: v for k, v in placement.assignment.items() if "@" in k} == {
        "deploy@d1": "d1", "deploy@d2": "d2", "deploy@d3": "d3"}


def test_expansion_is_deterministic_whatever_the_member_order():
    members = [_member(d) for d in DOMAINS]
    first = _expand(_spec({"max_parallel": 2}), members)
    second = _expand(_spec({"max_parallel": 2}), list(reversed(members)))
    assert first.SerializeToString(deterministic=True) == \
        second.SerializeToString(deterministic=True)


@settings(max_examples=100, deadline=None)
@given(alive=st.lists(st.booleans(), min_size=5, max_size=5),
       prod=st.lists(st.booleans(), min_size=5, max_size=5),
       max_parallel=st.integers(0, 6), order=st.permutations(range(5)))
def test_expansion_property_one_instance_per_eligible_domain_waves_chained(
        alive, prod, max_parallel, order):
    members = [_member(d, alive=alive[i], labels={"tier": "prod" if prod[i] else "dev"})
               for i, d in enumerate(DOMAINS)]
    eligible = [d for i, d in enumerate(DOMAINS) if alive[i] and prod[i]]
    spec = _expand(_spec({"max_parallel": max_parallel}), [members[i] for i in order])
    instances = [s for s in spec.steps if s.instance_of]
    if not eligible:
        assert not instances and any(s.HasField("each") for s in spec.steps)
        return
    validate_spec(spec)
    assert [s.constraints.domains[0] for s in instances] == eligible
    per_wave = max_parallel or len(eligible)
    waves = [s.wave for s in instances]
    assert waves == sorted(waves) and waves[0] == 1
    assert set(waves) == set(range(1, max(waves) + 1))
    assert all(waves.count(w) <= per_wave for w in set(waves))
    for s in instances:
        before = [i.id for i in instances if i.wave == s.wave - 1]
        assert [n for n in s.needs if n != "build"] == before
    verify = next(s for s in spec.steps if s.id == "verify")
    assert list(verify.needs) == [s.id for s in instances]


def test_each_domains_names_the_domains():
    spec = _expand(_spec(each={"domains": ["d2", "d4"]}), [_member(d) for d in DOMAINS])
    assert [s.id for s in spec.steps if s.instance_of] == ["deploy@d2", "deploy@d4"]


def test_no_eligible_domain_leaves_the_step_unplaceable_with_the_reason():
    members = [_member("d1", labels={"tier": "dev"}), _member("d2", alive=False)]
    spec = _expand(_spec(), members)
    placement = place(spec, members, coordinator="d1")
    assert not placement.ok
    reason = placement.unplaceable["deploy"]
    assert reason.startswith("fan-out step deploy: no eligible domain")
    assert "d1: label tier is dev (each wants prod)" in reason
    assert "d2: not alive" in reason


def test_fewer_eligible_domains_than_min_success_is_unplaceable():
    members = [_member("d1"), _member("d2")]
    spec = _expand(_spec({"on_failure": "continue", "min_success": 3}), members)
    reason = place(spec, members, coordinator="d1").unplaceable["deploy"]
    assert "2 eligible domains (d1, d2), fewer than min_success 3" in reason


@pytest.mark.parametrize(("step", "where", "says"), [
    ({"waves": {"max_parallel": 1}}, "steps[0].waves", "add each:"),
    ({"each": {}, "waves": {"on_failure": "maybe"}}, "waves.on_failure", "stop, continue"),
    ({"each": {}, "waves": {"min_success": 2}}, "waves.min_success", "on_failure: continue"),
    ({"each": {}, "waves": {"pause_s": -1}}, "waves.pause_s", "non-negative"),
    ({"each": {"domains": ["Bad_Name"]}}, "each.domains[0]", "domain name"),
    ({"each": {"domains": ["a"]}, "waves": {"on_failure": "continue", "min_success": 2}},
     "waves.min_success", "more than the 1 domains"),
    ({"instance_of": "x", "constraints": {"domains": ["a"]}, "wave": 1}, "steps[0].instance_of",
     "set by the coordinator"),
])
def test_bad_fanout_fields_are_refused_with_the_field_named(step, where, says):
    with pytest.raises(SpecError) as caught:
        spec_from_mapping({"name": "w", "steps": [{"id": "s", "capability": "c", **step}]},
                          "w.yaml")
    assert where in str(caught.value)
    assert says in str(caught.value)


def test_a_forged_instance_id_is_refused_by_participants():
    spec = _expand(_spec(), [_member("d1"), _member("d2")])
    spec.steps[1].id = "deploy@d9"  # claims another domain than the one it is pinned to
    with pytest.raises(SpecError, match="an instance's id is 'deploy@d1'"):
        validate_spec(spec, "PREPARE spec")


# ---- progress -----------------------------------------------------------------------


def _progress(spec, me: str) -> Progress:
    placement = {s.id: (s.constraints.domains[0] if s.instance_of else "d1")
                 for s in spec.steps}
    return Progress(spec, placement, me)


def _succeed(progress: Progress, step_id: str, outputs: dict | None = None) -> None:
    assert progress.apply_result(step_id, 1, StepState.SUCCEEDED, outputs or {}, "")


def test_a_later_wave_starts_only_after_the_earlier_one_and_its_pause():
    spec = _expand(_spec({"max_parallel": 1, "pause_s": 30}), [_member("d1"), _member("d2")])
    p = _progress(spec, "d2")
    _succeed(p, "build")
    assert p.start_ready(100.0) == []  # wave 1 (d1) has not ended
    assert p.next_start_at() is None
    _succeed(p, "deploy@d1", {"version": 7})
    assert p.start_ready(100.0) == []  # the pause starts now
    assert p.next_start_at() == 130.0
    assert p.start_ready(129.9) == []
    (started,) = p.start_ready(130.0)
    assert started.step_id == "deploy@d2"
    assert started.inputs == {"build": {}}  # no outputs from its own wave barriers


def test_downstream_gets_every_instance_outputs_keyed_by_domain():
    spec = _expand(_spec({"max_parallel": 2}), [_member(d) for d in ("d1", "d2", "d3")])
    p = _progress(spec, "d1")
    for step_id, outputs in (("build", {}), ("deploy@d1", {"n": 1}), ("deploy@d2", {"n": 2})):
        _succeed(p, step_id, outputs)
    assert [a.step_id for a in p.start_ready(0.0)] == []  # deploy@d3 still open
    _succeed(p, "deploy@d3", {"n": 3})
    (verify,) = p.start_ready(0.0)
    assert verify.inputs == {"deploy": {"d1": {"n": 1}, "d2": {"n": 2}, "d3": {"n": 3}}}


def test_stop_a_failure_in_wave_one_skips_later_waves_and_fails_the_workflow():
    spec = _expand(_spec({"max_parallel": 1}), [_member(d) for d in ("d1", "d2", "d3")])
    p = _progress(spec, "d1")
    _succeed(p, "build")
    assert p.apply_result("deploy@d1", 1, StepState.FAILED, {}, "boom")
    assert p.steps["deploy@d2"].state is StepState.SKIPPED
    assert p.steps["deploy@d3"].state is StepState.SKIPPED
    assert p.steps["verify"].state is StepState.SKIPPED
    assert p.outcome() is Outcome.FAILED
    assert "fan-out step deploy failed: 0 of 3 instances succeeded, 3 needed" in \
        p.failure_reasons()


def test_continue_with_min_success_goes_on_and_succeeds():
    spec = _expand(_spec({"max_parallel": 1, "on_failure": "continue", "min_success": 2}),
                   [_member(d) for d in ("d1", "d2", "d3")])
    p = _progress(spec, "d2")
    _succeed(p, "build")
    p.apply_result("deploy@d1", 1, StepState.FAILED, {}, "boom")
    assert p.outcome() is None
    (started,) = p.start_ready(0.0)  # wave 2 starts although wave 1 failed
    assert started.step_id == "deploy@d2"
    assert p.attempt_ended("deploy@d2", 1, True, {"ok": True}, "") is StepState.SUCCEEDED
    _succeed(p, "deploy@d3", {"ok": True})
    assert p.group_outcome("deploy") is Outcome.SUCCEEDED
    _succeed(p, "verify")
    assert p.outcome() is Outcome.SUCCEEDED


def test_continue_fails_once_min_success_is_out_of_reach():
    spec = _expand(_spec({"max_parallel": 1, "on_failure": "continue", "min_success": 2}),
                   [_member(d) for d in ("d1", "d2", "d3")])
    p = _progress(spec, "d1")
    _succeed(p, "build")
    p.apply_result("deploy@d1", 1, StepState.FAILED, {}, "boom")
    p.apply_result("deploy@d2", 1, StepState.FAILED, {}, "boom")
    assert p.outcome() is Outcome.FAILED
    assert p.steps["deploy@d3"].state is StepState.SKIPPED


# Random rollouts: instance results in any order and outcome; the properties below hold
# whatever the order in which they arrive.
@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 5), max_parallel=st.integers(0, 5),
    keep_going=st.booleans(), min_success=st.integers(0, 5),
    results=st.lists(st.tuples(st.integers(0, 4), st.booleans()), max_size=30),
)
def test_no_wave_starts_before_the_one_before_it_ended(n, max_parallel, keep_going,
                                                       min_success, results):
    waves = {"max_parallel": max_parallel, "on_failure": "continue" if keep_going else "stop"}
    if keep_going:
        waves["min_success"] = min(min_success, n)
    domains = DOMAINS[:n]
    spec = _expand(_spec(waves, downstream=False), [_member(d) for d in domains])
    cores = {d: _progress(spec, d) for d in domains}
    wave_of = {s.id: s.wave for s in spec.steps if s.instance_of}
    for core in cores.values():
        _succeed(core, "build")
    started: list[str] = []

    def start_what_is_ready() -> None:
        for core in cores.values():
            for attempt in core.start_ready(0.0):
                wave = wave_of[attempt.step_id]
                earlier = [core.steps[s].state for s, w in wave_of.items() if w < wave]
                assert all(s in (StepState.SUCCEEDED, StepState.FAILED) for s in earlier)
                if not keep_going:  # stop: only after every earlier instance succeeded
                    assert all(s is StepState.SUCCEEDED for s in earlier)
                started.append(attempt.step_id)

    start_what_is_ready()
    for index, ok in results:
        running = [s for s in started if cores["d1"].steps[s].state is StepState.RUNNING]
        if not running:
            break
        step_id = running[index % len(running)]
        domain = step_id.split("@")[1]
        cores[domain].attempt_ended(step_id, 1, ok, {}, "" if ok else "boom")
        state = cores[domain].steps[step_id].state
        for core in cores.values():  # every domain hears every result here
            core.apply_result(step_id, 1, state, {}, cores[domain].steps[step_id].error)
        start_what_is_ready()
    view = cores["d1"]
    states = [view.steps[s].state for s in wave_of]
    need = fanout.required_successes(spec.steps[1].waves, n)
    outcome = view.group_outcome("deploy")
    if outcome is Outcome.SUCCEEDED:  # min_success holds, and everything ended
        assert states.count(StepState.SUCCEEDED) >= need
        assert all(s in (StepState.SUCCEEDED, StepState.FAILED) for s in states)
    if states.count(StepState.SUCCEEDED) == n:
        assert outcome is Outcome.SUCCEEDED
    if outcome is Outcome.FAILED and not keep_going:
        assert StepState.FAILED in states


def test_policy_explain_judges_each_instance_as_the_coordinator_would_expand_it():
    from fedorch.core.policy.explain import explain

    members = [_member("d1"), _member("d2")]
    result = explain(_spec({"max_parallel": 1}), members, coordinator="d1")
    assert result.placement.ok
    chosen = {(v.step, v.domain) for v in result.verdicts if v.chosen}
    assert {("deploy@d1", "d1"), ("deploy@d2", "d2")} <= chosen
    refused = next(v for v in result.verdicts if (v.step, v.domain) == ("deploy@d1", "d2"))
    assert not refused.allowed


# ---- status: JSON, the CLI's table, the client -------------------------------------


def _rollout_status():
    from fedorch.gen.fedorch.v1 import status_pb2

    return status_pb2.WorkflowStatus(id="w", state=3, steps=[
        status_pb2.StepStatus(id="deploy@d1", domain="d1", state=4, instance_of="deploy",
                              wave=1, capability="app.deploy"),
        status_pb2.StepStatus(id="deploy@d2", domain="d2", state=2, instance_of="deploy",
                              wave=2, capability="app.deploy"),
        status_pb2.StepStatus(id="verify", domain="d1", state=2, capability="ci.build"),
    ])


def test_status_json_and_the_cli_table_show_instances_and_waves():
    from fedorch.cli import render
    from rich.console import Console

    status = _rollout_status()
    steps = render.status_to_dict(status)["steps"]
    assert [(s["id"], s.get("instance_of"), s.get("wave")) for s in steps] == [
        ("deploy@d1", "deploy", 1), ("deploy@d2", "deploy", 2), ("verify", None, None)]
    console = Console(width=200, record=True)
    console.print(render.steps_table(status))
    lines = console.export_text().splitlines()
    assert "wave" in lines[1]
    row = next(line for line in lines if "deploy@d2" in line)
    assert "deploy 2" in row and "WAITING" in row
    plain = Console(width=200, record=True)
    del status.steps[:2]  # no fan-out: no wave column
    plain.print(render.steps_table(status))
    assert "wave" not in plain.export_text()


def test_the_python_client_status_carries_instances_and_waves():
    from fedorch.client.models import WorkflowStatus

    status = WorkflowStatus.from_proto(_rollout_status())
    assert status.step("deploy@d2").wave == 2
    assert status.step("deploy@d2").instance_of == "deploy"
    assert status.to_dict()["steps"][0]["instance_of"] == "deploy"
    assert "wave" not in status.to_dict()["steps"][2]


def test_compensation_undoes_the_later_wave_before_the_earlier_one():
    from fedorch.core.workflow.compensation import Compensation, plan

    spec = _expand(_spec({"max_parallel": 1}, compensate=True),
                   [_member(d) for d in ("d1", "d2", "d3")])
    states = {"build": "SUCCEEDED", "deploy@d1": "SUCCEEDED", "deploy@d2": "SUCCEEDED",
              "deploy@d3": "FAILED", "verify": "SKIPPED"}
    domains = {s.id: (s.constraints.domains[0] if s.instance_of else "d1") for s in spec.steps}
    saga = Compensation(spec, plan(spec, states, domains))
    assert [(a.step_id, a.domain) for a in saga.start_ready()] == [("deploy@d2", "d2")]
    saga.attempt_ended("deploy@d2", 1, True, "")
    assert [(a.step_id, a.domain) for a in saga.start_ready()] == [("deploy@d1", "d1")]


# ---- a PREPARE's expanded spec against the signed original ---------------------------

def test_an_expansion_within_the_original_bounds_is_recognised():
    spec = _spec(each={"labels": {"tier": "prod"}})
    assert fanout.is_expansion_of(fanout.expand_into(spec, {"deploy": ["d2", "d3"]}), spec)


@pytest.mark.parametrize("bound", ["each", "constraints"])
def test_an_expansion_onto_a_domain_the_original_excludes_is_not_one(bound):
    """An instance's constraints.domains is its one domain: a coordinator that chose a
    domain outside the original step's each.domains or constraints.domains must not pass
    its expansion off as the submitter's spec."""
    spec = _spec(each={"domains": ["d2", "d3"]} if bound == "each" else {})
    if bound == "constraints":
        spec.steps[1].constraints.domains.extend(["d2", "d3"])
    assert fanout.is_expansion_of(fanout.expand_into(spec, {"deploy": ["d2"]}), spec)
    assert not fanout.is_expansion_of(fanout.expand_into(spec, {"deploy": ["d2", "d4"]}), spec)


def test_another_change_than_the_choice_of_domains_is_not_an_expansion():
    spec = _spec()
    expanded = fanout.expand_into(spec, {"deploy": ["d2"]})
    expanded.steps[1].params["action"] = "wipe"
    assert not fanout.is_expansion_of(expanded, spec)
