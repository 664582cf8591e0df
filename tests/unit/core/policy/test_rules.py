"""CEL policy rules: checked at config load, evaluated per step at the vote, fail closed."""

from __future__ import annotations

import datetime

import pytest
from fedorch.core.policy.engine import PolicyContext, evaluate_prepare
from fedorch.core.policy.rules import RuleError, RuleInput, check_rule, first_refusal
from fedorch.core.workflow.dataflow import merge
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.config import ConfigError, parse_config_text

BASE = """
domain: eu-west
listen: 127.0.0.1:7101
data_dir: ./data
key_file: k.key
"""


def _config(rules_yaml: str) -> config_pb2.AgentConfig:
    return parse_config_text(BASE + "policy:\n  rules:\n" + rules_yaml, "eu.yaml", "/tmp")


def _rule(name: str, expression: str, message: str = "") -> config_pb2.PolicyRule:
    return config_pb2.PolicyRule(name=name, expression=expression, message=message)


def _input(**kw) -> RuleInput:
    base = {"principal": "alice", "coordinator": "eu-west", "workflow": "wf", "step": "s",
            "capability": "ml.train", "labels": {}, "load": {}, "wall_time_s": 0.0}
    return RuleInput(**{**base, **kw})


def test_rules_load_from_config_and_a_bad_rule_is_an_error_naming_it() -> None:
    config = _config("    - {name: eu-only, expression: '\"EU\" in labels.jurisdiction', "
                     "message: EU data only}\n")
    assert [r.name for r in config.policy.rules] == ["eu-only"]
    cases = {
        "'labels.jurisdiction =='": "rule broken: does not compile",
        "'region == \"EU\"'": "rule broken: unknown name 'region'",
        "'size(labels)'": "rule broken: must evaluate to true or false, got int",
    }
    for expression, problem in cases.items():
        with pytest.raises(ConfigError) as caught:
            _config(f"    - {{name: broken, expression: {expression}}}\n")
        assert str(caught.value).startswith(
            f"eu.yaml: policy.rules[0].expression: {problem}"), str(caught.value)
    with pytest.raises(ConfigError, match=r"policy.rules\[1\].name: duplicate rule 'a'"):
        _config("    - {name: a, expression: 'true'}\n    - {name: a, expression: 'true'}\n")
    with pytest.raises(ConfigError, match=r"policy.rules\[0\].name: required"):
        _config("    - {expression: 'true'}\n")
    with pytest.raises(RuleError, match="over 2048"):
        check_rule(_rule("long", "true && " * 400 + "true"))


def test_a_rule_over_load_refuses_when_busy_with_its_message() -> None:
    busy = _rule("headroom", 'load[capability] < 0.5', "keep half of the slots free")
    policy = config_pb2.Policy(rules=[busy])
    args = {"coordinator": "us-east", "data_labels": {}, "steps": [("t", "ml.train")],
            "capacities": {"ml.train": 4}, "coordinator_in_use": 0}
    assert evaluate_prepare(policy, in_use={"ml.train": 1}, **args).yes
    verdict = evaluate_prepare(policy, in_use={"ml.train": 2}, **args)
    assert not verdict.yes
    assert verdict.reason == "rule headroom: keep half of the slots free (step 't')"


def test_a_rule_over_time_uses_the_wall_clock_handed_in() -> None:
    hours = _rule("office-hours", "time.getHours() >= 8 && time.getHours() < 18",
                  "only during office hours (UTC)")
    at = lambda hour: datetime.datetime(2026, 1, 5, hour, tzinfo=datetime.UTC).timestamp()  # noqa: E731
    assert first_refusal([hours], [_input(wall_time_s=at(9))]) is None
    assert first_refusal([hours], [_input(wall_time_s=at(22))]) == \
        "rule office-hours: only during office hours (UTC) (step 's')"
    # No clock handed in: `time` is undefined and the rule fails closed.
    refused = first_refusal([hours], [_input(wall_time_s=None)])
    assert refused is not None and refused.startswith("rule office-hours:")


def test_rules_see_principal_coordinator_and_the_labels_received() -> None:
    rules = [_rule("partners", 'coordinator in ["eu-west", "partner"]', "unknown coordinator"),
             _rule("no-us", '!("US" in labels.jurisdiction)', "no US data")]
    eu = merge({"jurisdiction": "EU"})
    mixed = merge({"jurisdiction": "EU"}, {"jurisdiction": "US"})
    assert first_refusal(rules, [_input(labels=eu)]) is None
    assert first_refusal(rules, [_input(coordinator="mallory")]).startswith(
        "rule partners: unknown coordinator")
    assert first_refusal(rules, [_input(labels=eu), _input(step="u", labels=mixed)]) == \
        "rule no-us: no US data (step 'u')"
    who = _rule("alice", 'principal == "alice"', "alice only")
    assert first_refusal([who], [_input()]) is None
    assert first_refusal([who], [_input(principal="bob")]) is not None


def test_an_evaluation_error_fails_closed_and_says_so() -> None:
    rule = _rule("needs-label", '"EU" in labels.jurisdiction')  # no such key: an error
    refused = first_refusal([rule], [_input(labels={})])
    assert refused is not None
    assert refused.startswith("rule needs-label: expression '\"EU\" in labels.jurisdiction' "
                              "is not true (step 's') (error:")


def test_rules_get_the_context_of_the_vote() -> None:
    policy = config_pb2.Policy(rules=[_rule("wf", 'workflow == "allowed" && step == "t"', "no")])
    args = {"coordinator": "a", "data_labels": {}, "steps": [("t", "x")],
            "capacities": {"x": 1}, "in_use": {}, "coordinator_in_use": 0}
    ok = PolicyContext(receives={}, workflow="allowed")
    assert evaluate_prepare(policy, context=ok, **args).yes
    assert not evaluate_prepare(policy, context=PolicyContext(receives={}, workflow="x"),
                                **args).yes
