"""Placement: candidates, constraints, ranking, exclusions, reasons, and a property test."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from fedorch.core.policy.engine import accept_from_allows, residency_allows
from fedorch.core.workflow.placement import Candidate, Placement, place, topological_order
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

Cap = tuple[int, int, float]  # capacity, available, cost


def _member(
    domain: str,
    caps: dict[str, Cap] | None = None,
    *,
    labels: dict[str, str] | None = None,
    published: bool = False,
    accept_from: list[str] | None = None,
    residency: list[str] | None = None,
    leaving: bool = False,
    alive: bool = True,
    suspect: bool = False,
    revoked: bool = False,
) -> Candidate:
    record = peer_pb2.DomainRecord(
        domain=domain,

        endpoint=f"{domain}:7100",
        labels=labels or {},
        capabilities=[
            peer_pb2.CapabilityInfo(name=n, capacity=c, available=a, cost=cost)
            for n, (c, a, cost) in (caps or {}).items()
        ],
        policy=peer_pb2.PolicySummary(
            published=published,
            accept_from=accept_from or [],
            residency_accept=residency or [],
        ),
        leaving=leaving,
    )
    return Candidate(record=record, alive=alive, suspect=suspect, revoked=revoked)


def _step(
    step_id: str,
    capability: str,
    *,
    needs: list[str] | None = None,
    labels: dict[str, str] | None = None,
    domains: list[str] | None = None,
) -> spec_pb2.StepSpec:
    return spec_pb2.StepSpec(
        id=step_id,
        capability=capability,
        needs=needs or [],
        constraints=spec_pb2.Constraints(labels=labels or {}, domains=domains or []),
    )


def _spec(*steps: spec_pb2.StepSpec, data: dict[str, str] | None = None) -> spec_pb2.WorkflowSpec:
    return spec_pb2.WorkflowSpec(name="wf", data=data or {}, steps=list(steps))


# ---- basics -------------------------------------------------------------------------


def test_placement_ok_property() -> None:
    assert Placement({"a": "x"}, {}).ok
    assert not Placement({}, {"a": "why"}).ok


def test_capability_match() -> None:
    members = [
        _member("a", {"data.extract": (4, 4, 1.0)}),
        _member("b", {"ml.train": (2, 2, 1.0)}),
    ]
    result = place(
        _spec(_step("extract", "data.extract"), _step("train", "ml.train", needs=["extract"])),
        members,
        coordinator="a",
    )
    assert result.ok
    assert result.assignment == {"extract": "a", "train": "b"}
    assert result.unplaceable == {}


def test_cheapest_wins_and_ties_go_to_domain_name() -> None:
    members = [
        _member("c", {"x": (2, 2, 1.0)}),
        _member("b", {"x": (2, 2, 3.0)}),
        _member("a", {"x": (2, 2, 1.0)}),
    ]
    assert place(_spec(_step("s", "x")), members, coordinator="a").assignment == {"s": "a"}


def test_load_breaks_equal_cost() -> None:
    members = [
        _member("a", {"x": (4, 1, 1.0)}),  # 75% loaded
        _member("b", {"x": (4, 4, 1.0)}),  # idle
    ]
    assert place(_spec(_step("s", "x")), members, coordinator="a").assignment == {"s": "b"}


def test_label_constraint() -> None:
    members = [
        _member("a", {"x": (2, 2, 1.0)}, labels={"cloud": "gcp"}),
        _member("b", {"x": (2, 2, 5.0)}, labels={"cloud": "aws", "tier": "gold"}),
        _member("c", {"x": (2, 2, 1.0)}),
    ]
    result = place(_spec(_step("s", "x", labels={"cloud": "aws"})), members, coordinator="a")
    assert result.assignment == {"s": "b"}
    result = place(
        _spec(_step("s", "x", labels={"cloud": "aws", "tier": "silver"})),
        members,
        coordinator="a",
    )
    assert not result.ok
    reason = result.unplaceable["s"]
    assert "a: label cloud is gcp (step wants aws)" in reason
    assert "b: label tier is gold (step wants silver)" in reason
    assert "c: no label cloud (step wants aws)" in reason


def test_domain_constraint() -> None:
    members = [_member("a", {"x": (2, 2, 1.0)}), _member("b", {"x": (2, 2, 9.0)})]
    result = place(_spec(_step("s", "x", domains=["b"])), members, coordinator="a")
    assert result.assignment == {"s": "b"}
    result = place(_spec(_step("s", "x", domains=["zz"])), members, coordinator="a")
    assert result.unplaceable == {
        "s": "no eligible domain for 'x' (a, b: not in the step's domains)"
    }


# ---- exclusions, co-location, policy --------------------------------------------------


def test_exclusion_after_refusal_moves_to_next_best() -> None:
    members = [
        _member("a", {"x": (2, 2, 1.0)}),
        _member("b", {"x": (2, 2, 2.0)}),
        _member("c", {"x": (2, 2, 3.0)}),
    ]
    spec = _spec(_step("s", "x"), _step("t", "x"))
    assert place(spec, members, coordinator="a").assignment == {"s": "a", "t": "a"}
    result = place(spec, members, coordinator="a", excluded={"s": {"a"}})
    assert result.assignment == {"s": "b", "t": "a"}  # only s moves
    result = place(spec, members, coordinator="a", excluded={"s": {"a", "b"}})
    assert result.assignment["s"] == "c"
    result = place(spec, members, coordinator="a", excluded={"s": {"a", "b", "c"}})
    assert result.unplaceable == {"s": "no eligible domain for 'x' (a, b, c: refused earlier)"}
    assert result.assignment == {"t": "a"}


def _demo_members(us_cost: float) -> list[Candidate]:
    return [
        _member("eu-west", {"data.extract": (4, 4, 1.0), "ml.train": (2, 2, 5.0)}),
        _member("us-east", {"ml.train": (2, 2, us_cost)}),
    ]


def _demo_spec() -> spec_pb2.WorkflowSpec:
    return _spec(
        _step("extract", "data.extract"),
        _step("train", "ml.train", needs=["extract"]),
    )


def test_colocation_beats_slightly_cheaper_domain() -> None:
    # eu-west: 5 - 2 (extract is local) = 3; us-east: 4.5
    result = place(_demo_spec(), _demo_members(us_cost=4.5), coordinator="eu-west")
    assert result.assignment == {"extract": "eu-west", "train": "eu-west"}


def test_much_cheaper_domain_beats_colocation() -> None:
    # The demo: us-east cost 1 vs eu-west cost 5 for ml.train; 1 < 5 - 2.
    result = place(_demo_spec(), _demo_members(us_cost=1.0), coordinator="eu-west")
    assert result.assignment == {"extract": "eu-west", "train": "us-east"}


def test_colocation_counts_each_upstream_step() -> None:
    members = [
        _member("a", {"src": (4, 4, 1.0), "join": (2, 2, 6.0)}),
        _member("b", {"join": (2, 2, 3.0)}),
    ]
    one = _spec(_step("s1", "src"), _step("j", "join", needs=["s1"]))
    two = _spec(_step("s1", "src"), _step("s2", "src"), _step("j", "join", needs=["s1", "s2"]))
    assert place(one, members, coordinator="a").assignment["j"] == "b"  # 6-2=4 > 3
    assert place(two, members, coordinator="a").assignment["j"] == "a"  # 6-4=2 < 3


def test_published_residency_filters_but_private_policy_does_not() -> None:
    spec = _spec(_step("s", "x"), data={"jurisdiction": "EU"})
    public = [
        _member("cheap-us", {"x": (2, 2, 1.0)}, published=True, residency=["US"]),
        _member("eu", {"x": (2, 2, 5.0)}, published=True, residency=["EU"]),
    ]
    assert place(spec, public, coordinator="eu").assignment == {"s": "eu"}
    private = [
        _member("cheap-us", {"x": (2, 2, 1.0)}, published=False, residency=["US"]),
        _member("eu", {"x": (2, 2, 5.0)}, published=True, residency=["EU"]),
    ]
    # Only the PREPARE vote can refuse a private policy.
    assert place(spec, private, coordinator="eu").assignment == {"s": "cheap-us"}
    # Unlabelled data goes anywhere.
    assert place(_spec(_step("s", "x")), public, coordinator="eu").assignment == {"s": "cheap-us"}


def test_published_accept_from_filters() -> None:
    members = [
        _member("a", {"x": (2, 2, 1.0)}, published=True, accept_from=["partner"]),
        _member("b", {"x": (2, 2, 5.0)}, published=True, accept_from=["*"]),
    ]
    spec = _spec(_step("s", "x"))
    assert place(spec, members, coordinator="mallory").assignment == {"s": "b"}
    assert place(spec, members, coordinator="partner").assignment == {"s": "a"}


# ---- capacity, liveness, reasons, determinism ---------------------------------------


def test_capacity_counted_within_one_workflow() -> None:
    members = [
        _member("a", {"x": (4, 2, 1.0)}),  # only 2 free
        _member("b", {"x": (4, 4, 3.0)}),
    ]
    spec = _spec(*[_step(f"s{i}", "x") for i in range(4)])
    result = place(spec, members, coordinator="a")
    assert result.ok
    assert Counter(result.assignment.values()) == {"a": 2, "b": 2}
    # Past every free slot the record gossips, a step goes to the cheapest full domain:
    # the domain's vote, not a record that may be late, has the last word.
    spec = _spec(*[_step(f"s{i}", "x") for i in range(7)])
    result = place(spec, members, coordinator="a")
    assert result.ok
    assert Counter(result.assignment.values()) == {"a": 3, "b": 4}
    assert result.assignment["s6"] == "a"


def test_a_full_domain_is_a_last_resort() -> None:
    full = _member("a", {"x": (2, 0, 1.0)})
    free = _member("b", {"x": (2, 1, 5.0)})  # far more expensive, but has a free slot
    assert place(_spec(_step("s", "x")), [full], coordinator="a").assignment == {"s": "a"}
    assert place(_spec(_step("s", "x")), [full, free], coordinator="a").assignment == {"s": "b"}
    # Co-location does not beat a free slot either.
    spec = _spec(_step("up", "y"), _step("s", "x", needs=["up"]))
    full_with_up = _member("a", {"x": (2, 0, 1.0), "y": (1, 1, 1.0)})
    assert place(spec, [full_with_up, free], coordinator="a").assignment == {"up": "a", "s": "b"}
    # A full domain that refused the step is not asked again.
    result = place(_spec(_step("s", "x")), [full], coordinator="a", excluded={"s": {"a"}})
    assert result.unplaceable == {"s": "no eligible domain for 'x' (a: refused earlier)"}


def test_dead_and_leaving_members_skipped() -> None:
    members = [
        _member("a", {"x": (2, 2, 1.0)}, alive=False),
        _member("b", {"x": (2, 2, 1.0)}, leaving=True),
        _member("c", {"x": (2, 2, 9.0)}),
    ]
    assert place(_spec(_step("s", "x")), members, coordinator="c").assignment == {"s": "c"}
    result = place(_spec(_step("s", "x")), members[:2], coordinator="c")
    assert result.unplaceable == {"s": "no eligible domain for 'x' (a: not alive; b: leaving)"}


def test_a_suspect_member_is_a_candidate_ranked_after_alive_ones() -> None:
    suspect = _member("a", {"x": (2, 2, 0.0)}, suspect=True)  # cheapest, idle
    alive_full = _member("b", {"x": (2, 0, 5.0)})  # dearest, full
    # Alone, a SUSPECT member takes the step (SUSPECT is not DEAD).
    assert place(_spec(_step("s", "x")), [suspect], coordinator="c").assignment == {"s": "a"}
    # With a choice, any ALIVE member goes first, even a full, dearer one.
    assert place(_spec(_step("s", "x")), [suspect, alive_full],
                 coordinator="c").assignment == {"s": "b"}
    # Once the ALIVE one refused it, the SUSPECT one is asked.
    assert place(_spec(_step("s", "x")), [suspect, alive_full], coordinator="c",
                 excluded={"s": {"b"}}).assignment == {"s": "a"}
    # Among SUSPECT members, the usual ranking: a free one before a full one.
    full_suspect = _member("b", {"x": (2, 0, 0.0)}, suspect=True)
    free_suspect = _member("d", {"x": (2, 2, 5.0)}, suspect=True)
    assert place(_spec(_step("s", "x")), [full_suspect, free_suspect],
                 coordinator="c").assignment == {"s": "d"}


def test_candidate_of_a_member_state() -> None:
    record = peer_pb2.DomainRecord(domain="a")
    assert Candidate.of(record, "ALIVE") == Candidate(record, alive=True)
    assert Candidate.of(record, "SUSPECT") == Candidate(record, alive=True, suspect=True)
    for state in ("DEAD", "LEFT"):
        assert Candidate.of(record, state) == Candidate(record, alive=False)
    assert Candidate.of(record, "ALIVE", revoked=True).revoked


def test_a_revoked_member_is_refused_naming_the_revocation() -> None:
    members = [
        _member("a", {"x": (2, 2, 1.0)}, revoked=True),  # still ALIVE in the view
        _member("b", {"x": (2, 2, 1.0)}, alive=False, revoked=True),
        _member("c", {"x": (2, 2, 1.0)}, alive=False),
    ]
    result = place(_spec(_step("s", "x")), members, coordinator="c")
    assert result.unplaceable == {
        "s": "no eligible domain for 'x' (a, b: key revoked; c: not alive)"}


def test_unplaceable_reasons_group_domains() -> None:
    members = [
        _member("us-east", {"ml.train": (2, 2, 1.0)}),
        _member("eu-west", {"ml.train": (2, 2, 5.0)}, published=True, residency=["US"]),
        _member("partner", {"data.extract": (2, 2, 1.0)}),
        _member("edge", {"data.extract": (2, 2, 1.0)}),
    ]
    spec = _spec(_step("train", "ml.train"), data={"jurisdiction": "EU"})
    result = place(spec, members, coordinator="eu-west", excluded={"train": {"us-east"}})
    assert not result.ok
    assert result.assignment == {}
    assert result.unplaceable == {
        "train": "no eligible domain for 'ml.train' (edge, partner: does not offer "
        "'ml.train'; eu-west: residency EU not accepted; us-east: refused earlier)"
    }


def test_a_long_group_of_domains_is_summarised_by_its_first_last_and_count() -> None:
    # A 50-domain fan-out after a timed-out round: each instance step is pinned to its
    # domain, which went silent (refused earlier); the 49 others are not in its domains.
    names = [f"org-{i:02d}" for i in range(1, 51)]
    members = [_member(n, {"app.deploy": (1, 1, 1.0)}) for n in names]
    steps = [_step(f"deploy[{n}]", "app.deploy", domains=[n]) for n in names]
    result = place(_spec(*steps), members, coordinator="org-01",
                   excluded={f"deploy[{n}]": {n} for n in names})
    assert not result.ok and len(result.unplaceable) == 50
    assert result.unplaceable["deploy[org-01]"] == (
        "no eligible domain for 'app.deploy' (org-01: refused earlier; "
        "org-02, org-03, org-04 … org-50 (49 domains): not in the step's domains)")
    assert result.unplaceable["deploy[org-50]"] == (
        "no eligible domain for 'app.deploy' (org-01, org-02, org-03 … org-49 "
        "(49 domains): not in the step's domains; org-50: refused earlier)")
    # Every step's reason stays one short line: the whole ABORT reason is a few kB for
    # 50 steps, not tens of kB.
    assert max(len(why) for why in result.unplaceable.values()) < 160


@pytest.mark.parametrize(("count", "named"), [
    (1, "d01"),
    (5, "d01, d02, d03, d04, d05"),
    (6, "d01, d02, d03 … d06 (6 domains)"),
])
def test_groups_up_to_five_are_named_in_full(count: int, named: str) -> None:
    members = [_member(f"d{i:02d}", {"y": (1, 1, 1.0)}) for i in range(1, count + 1)]
    result = place(_spec(_step("s", "x")), members, coordinator="d01")
    assert result.unplaceable == {"s": f"no eligible domain for 'x' ({named}: does not "
                                       "offer 'x')"}


def test_no_members() -> None:
    result = place(_spec(_step("s", "x")), [], coordinator="a")
    assert result.unplaceable == {"s": "no eligible domain for 'x' (no members known)"}


def test_later_steps_still_placed_after_unplaceable_one() -> None:
    members = [_member("a", {"y": (2, 2, 1.0)})]
    spec = _spec(_step("s", "x"), _step("t", "y", needs=["s"]))
    result = place(spec, members, coordinator="a")
    assert set(result.unplaceable) == {"s"}
    assert result.assignment == {"t": "a"}


def test_deterministic_regardless_of_member_order() -> None:
    members = [
        _member(f"d{i}", {"x": (3, 1 + i % 3, 1.0 + i % 2), "y": (2, 2, 2.0)}) for i in range(8)
    ]
    spec = _spec(
        _step("a", "x"),
        _step("b", "y", needs=["a"]),
        _step("c", "x", needs=["a"]),
        _step("d", "y", needs=["b", "c"]),
    )
    first = place(spec, members, coordinator="d0")
    rng = random.Random(7)
    for _ in range(20):
        shuffled = list(members)
        rng.shuffle(shuffled)
        assert place(spec, shuffled, coordinator="d0") == first


def test_steps_placed_in_topological_order() -> None:
    # "t" is listed first but needs "s": co-location must see s's placement.
    members = [
        _member("a", {"src": (2, 2, 1.0), "x": (2, 2, 2.5)}),
        _member("b", {"x": (2, 2, 1.0)}),
    ]
    spec = _spec(_step("t", "x", needs=["s"]), _step("s", "src"))
    assert place(spec, members, coordinator="a").assignment == {"s": "a", "t": "a"}


def test_topological_order_and_invalid_graphs() -> None:
    order = topological_order(
        [_step("c", "x", needs=["a", "b"]), _step("b", "x", needs=["a"]), _step("a", "x")]
    )
    assert [s.id for s in order] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="cycle"):
        topological_order([_step("a", "x", needs=["b"]), _step("b", "x", needs=["a"])])
    with pytest.raises(ValueError, match="unknown"):
        topological_order([_step("a", "x", needs=["zz"])])
    with pytest.raises(ValueError, match="duplicate"):
        topological_order([_step("a", "x"), _step("a", "x")])


# ---- property: every assignment meets the constraints; capacity is a preference ----

DOMAINS = ["d0", "d1", "d2", "d3", "d4"]
CAPS = ["x", "y", "z"]
JURIS = ["EU", "US"]


@st.composite
def _scenario(draw: st.DrawFn) -> tuple[spec_pb2.WorkflowSpec, list[Candidate], dict]:
    members = []
    for domain in draw(st.lists(st.sampled_from(DOMAINS), unique=True, max_size=5)):
        caps = {}
        for cap in draw(st.lists(st.sampled_from(CAPS), unique=True, max_size=3)):
            capacity = draw(st.integers(0, 3))
            caps[cap] = (capacity, draw(st.integers(0, capacity)), draw(st.sampled_from([0, 1, 3])))
        members.append(
            _member(
                domain,
                caps,
                labels=draw(st.dictionaries(st.sampled_from(["cloud"]), st.sampled_from("ab"))),
                published=draw(st.booleans()),
                accept_from=draw(st.lists(st.sampled_from(["*", "d0", "d1"]), max_size=2)),
                residency=draw(st.lists(st.sampled_from(JURIS), max_size=2)),
                leaving=draw(st.booleans()),
                alive=draw(st.booleans()),
                suspect=draw(st.booleans()),
                revoked=draw(st.booleans()),
            )
        )
    steps = []
    n = draw(st.integers(1, 7))
    for i in range(n):
        earlier = [f"s{j}" for j in range(i)]
        steps.append(
            _step(
                f"s{i}",
                draw(st.sampled_from(CAPS)),
                needs=draw(st.lists(st.sampled_from(earlier), unique=True)) if earlier else [],
                labels=draw(st.dictionaries(st.sampled_from(["cloud"]), st.sampled_from("ab"))),
                domains=draw(st.lists(st.sampled_from(DOMAINS), unique=True, max_size=3)),
            )
        )
    draw(st.randoms()).shuffle(steps)
    data = draw(st.dictionaries(st.sampled_from(["jurisdiction"]), st.sampled_from(JURIS)))
    excluded = draw(
        st.dictionaries(
            st.sampled_from([s.id for s in steps]),
            st.frozensets(st.sampled_from(DOMAINS)),
        )
    )
    return _spec(*steps, data=data), members, excluded


def _eligible(member: Candidate, step: spec_pb2.StepSpec, spec: spec_pb2.WorkflowSpec,
              coordinator: str, excluded: dict) -> bool:
    """The placement rules other than free capacity, restated independently."""
    record = member.record
    return (
        member.alive and not member.revoked and not record.leaving
        and record.domain not in excluded.get(step.id, ())
        and (not step.constraints.domains or record.domain in step.constraints.domains)
        and all(record.labels.get(k) == v for k, v in step.constraints.labels.items())
        and (not record.policy.published
             or (accept_from_allows(record.policy.accept_from, coordinator)
                 and residency_allows(record.policy.residency_accept, spec.data)))
        and any(c.name == step.capability for c in record.capabilities)
    )


@settings(max_examples=300, deadline=None)
@given(_scenario(), st.sampled_from(["d0", "d1", "d9"]))
def test_every_assignment_satisfies_constraints(scenario: tuple, coordinator: str) -> None:
    spec, members, excluded = scenario
    result = place(spec, members, coordinator=coordinator, excluded=excluded)
    ids = {s.id for s in spec.steps}
    assert set(result.assignment) | set(result.unplaceable) == ids
    assert not set(result.assignment) & set(result.unplaceable)
    assert result.ok == (set(result.assignment) == ids)
    assert all(reason for reason in result.unplaceable.values())

    steps = {s.id: s for s in spec.steps}
    load: Counter[tuple[str, str]] = Counter()

    def free(member: Candidate, capability: str) -> int:
        info = next(c for c in member.record.capabilities if c.name == capability)
        return info.available - load[(member.record.domain, capability)]

    # The assignment lists steps in the order they were placed, so `load` replays it.
    for step_id, domain in result.assignment.items():
        step = steps[step_id]
        eligible = [m for m in members if _eligible(m, step, spec, coordinator, excluded)]
        chosen = next(m for m in eligible if m.record.domain == domain)
        # A SUSPECT domain only when no ALIVE one is eligible; among those as sure to
        # be alive, one past its gossiped free slots only when none has one.
        if chosen.suspect:
            assert all(m.suspect for m in eligible)
        if free(chosen, step.capability) <= 0:
            assert all(free(m, step.capability) <= 0 for m in eligible
                       if m.suspect == chosen.suspect)
        load[(domain, step.capability)] += 1
    for step_id in result.unplaceable:
        step = steps[step_id]
        assert not [m for m in members if _eligible(m, step, spec, coordinator, excluded)]

    # Same inputs, same answer.
    assert place(spec, list(reversed(members)), coordinator=coordinator, excluded=excluded) == (
        result
    )
