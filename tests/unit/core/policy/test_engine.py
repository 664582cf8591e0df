"""The local policy engine: each PREPARE check, its reason, their order, the summary."""

from __future__ import annotations

import pytest
from fedorch.core.policy import (
    Verdict,
    accept_from_allows,
    evaluate_prepare,
    residency_allows,
    summarize,
)
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2


def _policy(
    accept_from: list[str] | None = None,
    residency: list[str] | None = None,
    max_steps: int = 0,
    publish: bool | None = None,
) -> config_pb2.Policy:
    policy = config_pb2.Policy(
        accept_from=accept_from or [],
        residency=config_pb2.Residency(accept=residency or []),
        quotas=config_pb2.Quotas(max_steps_per_coordinator=max_steps),
    )
    if publish is not None:
        policy.publish = publish
    return policy


def _evaluate(policy: config_pb2.Policy, **overrides: object) -> Verdict:
    args: dict[str, object] = {
        "coordinator": "eu-west",
        "data_labels": {},
        "steps": [("train", "ml.train")],
        "capacities": {"ml.train": 2, "data.extract": 4},
        "in_use": {},
        "coordinator_in_use": 0,
    }
    args.update(overrides)
    return evaluate_prepare(policy, **args)  # type: ignore[arg-type]


# ---- helpers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "labels", "allowed"),
    [
        ([], {"jurisdiction": "EU"}, True),
        (["EU"], {"jurisdiction": "EU"}, True),
        (["US", "EU"], {"jurisdiction": "EU"}, True),
        (["US"], {"jurisdiction": "EU"}, False),
        (["US"], {}, True),  # unlabelled data is allowed everywhere
        (["US"], {"owner": "sales"}, True),  # only the jurisdiction label matters
        (["eu"], {"jurisdiction": "EU"}, False),  # exact match
    ],
)
def test_residency_allows(accept: list[str], labels: dict[str, str], allowed: bool) -> None:
    assert residency_allows(accept, labels) is allowed


@pytest.mark.parametrize(
    ("accept_from", "coordinator", "allowed"),
    [
        ([], "anyone", True),
        (["*"], "anyone", True),
        (["eu-west", "partner"], "partner", True),
        (["eu-west", "partner"], "mallory", False),
        (["eu-west"], "eu-west-2", False),  # exact names, no prefixes
        (["partner", "*"], "mallory", True),
    ],
)
def test_accept_from_allows(accept_from: list[str], coordinator: str, allowed: bool) -> None:
    assert accept_from_allows(accept_from, coordinator) is allowed


# ---- evaluate_prepare: each check ---------------------------------------------


def test_default_policy_accepts_with_empty_reason() -> None:
    verdict = _evaluate(config_pb2.Policy())
    assert verdict == Verdict(True, "")


def test_accept_from_refuses_unknown_coordinator() -> None:
    verdict = _evaluate(_policy(accept_from=["eu-west", "partner"]), coordinator="mallory")
    assert not verdict.yes
    assert verdict.reason == (
        "accept_from: coordinator 'mallory' is not accepted (accepts: eu-west, partner)"
    )


def test_accept_from_takes_listed_coordinator_and_star() -> None:
    assert _evaluate(_policy(accept_from=["eu-west"]), coordinator="eu-west").yes
    assert _evaluate(_policy(accept_from=["*"]), coordinator="mallory").yes


def test_residency_refuses_foreign_data() -> None:
    verdict = _evaluate(_policy(residency=["US"]), data_labels={"jurisdiction": "EU"})
    assert not verdict.yes
    assert verdict.reason == "residency: data jurisdiction EU is not accepted here (accepts: US)"


def test_residency_allows_accepted_and_unlabelled_data() -> None:
    assert _evaluate(_policy(residency=["EU"]), data_labels={"jurisdiction": "EU"}).yes
    assert _evaluate(_policy(residency=["US"]), data_labels={}).yes
    assert _evaluate(_policy(residency=["US"]), data_labels={"team": "x"}).yes


def test_capability_refuses_what_is_not_offered() -> None:
    verdict = _evaluate(_policy(), steps=[("a", "ml.train"), ("b", "gpu.train")])
    assert not verdict.yes
    assert verdict.reason == "capability: this domain does not offer 'gpu.train'"


def test_quota_counts_held_and_asked_steps() -> None:
    policy = _policy(max_steps=4)
    full = _evaluate(policy, coordinator_in_use=4, capacities={"ml.train": 10})
    assert not full.yes
    assert full.reason.startswith("quota: coordinator 'eu-west' already holds 4 of 4 steps here")
    # 3 held + 2 asked > 4
    over = _evaluate(
        policy,
        coordinator_in_use=3,
        steps=[("a", "ml.train"), ("b", "ml.train")],
        capacities={"ml.train": 10},
    )
    assert not over.yes
    assert over.reason.startswith("quota: coordinator 'eu-west' already holds 3 of 4")
    assert "2 more asked" in over.reason
    # 3 held + 1 asked == 4: allowed
    assert _evaluate(policy, coordinator_in_use=3, capacities={"ml.train": 10}).yes


def test_quota_zero_means_no_limit() -> None:
    assert _evaluate(_policy(max_steps=0), coordinator_in_use=1000).yes


def test_capacity_refuses_when_full() -> None:
    verdict = _evaluate(_policy(), in_use={"ml.train": 2})
    assert not verdict.yes
    assert verdict.reason == "capacity: ml.train has 0 of 2 slots free, 1 needed"


def test_capacity_counts_several_steps_of_one_capability() -> None:
    steps = [("a", "ml.train"), ("b", "ml.train")]
    assert _evaluate(_policy(), steps=steps).yes  # 2 of 2 free
    verdict = _evaluate(_policy(), steps=steps, in_use={"ml.train": 1})
    assert not verdict.yes
    assert verdict.reason == "capacity: ml.train has 1 of 2 slots free, 2 needed"


def test_capacity_is_per_capability() -> None:
    steps = [("a", "ml.train"), ("b", "data.extract")]
    assert _evaluate(_policy(), steps=steps, in_use={"data.extract": 3}).yes
    verdict = _evaluate(_policy(), steps=steps, in_use={"data.extract": 4})
    assert verdict.reason == "capacity: data.extract has 0 of 4 slots free, 1 needed"


def test_capacity_overbooked_reports_zero_free() -> None:
    verdict = _evaluate(_policy(), in_use={"ml.train": 5})
    assert verdict.reason == "capacity: ml.train has 0 of 2 slots free, 1 needed"


# ---- evaluate_prepare: order of checks ------------------------------------------


def test_order_of_checks() -> None:
    everything_wrong = {
        "coordinator": "mallory",
        "data_labels": {"jurisdiction": "EU"},
        "steps": [("a", "gpu.train"), ("b", "ml.train"), ("c", "ml.train")],
        "in_use": {"ml.train": 2},
        "coordinator_in_use": 9,
    }
    policy = _policy(accept_from=["eu-west"], residency=["US"], max_steps=4)
    expected = ["accept_from:", "residency:", "capability:", "quota:", "capacity:"]
    fixes = [
        {"coordinator": "eu-west"},
        {"data_labels": {"jurisdiction": "US"}},
        {"steps": [("b", "ml.train"), ("c", "ml.train")]},
        {"coordinator_in_use": 0},
    ]
    args = dict(everything_wrong)
    for i, prefix in enumerate(expected):
        verdict = _evaluate(policy, **args)
        assert not verdict.yes
        assert verdict.reason.startswith(prefix), (i, verdict.reason)
        if i < len(fixes):
            args.update(fixes[i])
    args["in_use"] = {}
    assert _evaluate(policy, **args) == Verdict(True, "")


# ---- summarize --------------------------------------------------------------------


def test_summarize_publishes_by_default() -> None:
    summary = summarize(_policy(accept_from=["eu-west", "partner"], residency=["EU"]))
    assert summary == peer_pb2.PolicySummary(
        published=True, accept_from=["eu-west", "partner"], residency_accept=["EU"]
    )
    assert summarize(_policy(publish=True, residency=["EU"])).residency_accept == ["EU"]


def test_summarize_hides_private_policy() -> None:
    summary = summarize(
        _policy(accept_from=["eu-west"], residency=["EU"], max_steps=3, publish=False)
    )
    assert summary == peer_pb2.PolicySummary(published=False)
    assert summary.SerializeToString() == b""  # nothing leaks on the wire
