"""accept_from entries that name principals: `{domain: eu-west, principals: [alice]}`
takes eu-west's work only for alice (as eu-west vouches for her); the vote names the
principal it refuses; the config, the gossiped summary, placement and the dry run all
read the same entries."""

from __future__ import annotations

import pytest
from fedorch.core.policy import accept_from_possible, accept_from_refusal, evaluate_prepare
from fedorch.core.policy.engine import summarize
from fedorch.core.policy.explain import explain
from fedorch.core.workflow.placement import Candidate, place
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2, spec_pb2
from fedorch.runtime.config import ConfigError, parse_config_text
from google.protobuf import json_format

CONFIG = """\
domain: us-east
listen: 127.0.0.1:7101
data_dir: ./data
key_file: keys/us-east.key
policy:
  accept_from: {accept_from}
"""


def _config(accept_from: str) -> config_pb2.AgentConfig:
    return parse_config_text(CONFIG.format(accept_from=accept_from), "us.yaml", "/base")


def _policy(names: list[str], entries: dict[str, list[str]]) -> config_pb2.Policy:
    return config_pb2.Policy(accept_from=names, accept_from_principals=[
        config_pb2.AcceptFrom(domain=d, principals=p) for d, p in entries.items()])


ALICE_ONLY = _policy([], {"eu-west": ["alice"]})


@pytest.mark.parametrize("policy, coordinator, principal, accepted", [
    (ALICE_ONLY, "eu-west", "alice@eu-west", True),
    (ALICE_ONLY, "eu-west", "bob@eu-west", False),
    (ALICE_ONLY, "eu-west", "domain:eu-west", False),  # unsigned work of eu-west itself
    (ALICE_ONLY, "eu-west", "", False),
    (ALICE_ONLY, "us-east", "alice@us-east", False),  # no plain entry: only those listed
    (_policy(["*"], {"eu-west": ["alice"]}), "us-east", "bob@us-east", True),
    (_policy(["*"], {"eu-west": ["alice"]}), "eu-west", "bob@eu-west", False),  # entry decides
    (_policy([], {"eu-west": ["alice@eu-west", "domain:eu-west"]}), "eu-west",
     "domain:eu-west", True),
    (_policy([], {"eu-west": ["*"]}), "eu-west", "anyone@eu-west", True),
    (_policy(["*"], {}), "eu-west", "bob@eu-west", True),
    (_policy([], {}), "eu-west", "", True),  # nothing configured: any trusted coordinator
    (_policy(["us-east"], {}), "eu-west", "alice@eu-west", False),
])
def test_accept_from_weighs_the_principal_where_an_entry_names_principals(
        policy, coordinator, principal, accepted):
    refusal = accept_from_refusal(policy.accept_from, policy.accept_from_principals,
                                  coordinator, principal)
    assert (refusal is None) == accepted, refusal


def test_the_vote_names_the_principal_it_refuses():
    verdict = evaluate_prepare(ALICE_ONLY, coordinator="eu-west", data_labels={},
                               steps=[("a", "x")], capacities={"x": 1}, in_use={},
                               coordinator_in_use=0, principal="mallory@eu-west")
    assert not verdict.yes
    assert verdict.reason == ("accept_from: principal 'mallory@eu-west' is not accepted from "
                              "coordinator 'eu-west' (accepts from it: alice)")
    allowed = evaluate_prepare(ALICE_ONLY, coordinator="eu-west", data_labels={},
                               steps=[("a", "x")], capacities={"x": 1}, in_use={},
                               coordinator_in_use=0, principal="alice@eu-west")
    assert allowed.yes, allowed.reason


def test_yaml_accept_from_mixes_names_and_principal_entries():
    config = _config('["us-east", {domain: eu-west, principals: [alice, "bob@eu-west"]}]')
    assert list(config.policy.accept_from) == ["us-east"]
    assert [(e.domain, list(e.principals)) for e in config.policy.accept_from_principals] == [
        ("eu-west", ["alice", "bob@eu-west"])]


def test_principal_entries_alone_do_not_default_to_everyone():
    config = _config("[{domain: eu-west, principals: [alice]}]")
    assert list(config.policy.accept_from) == []
    assert accept_from_refusal(config.policy.accept_from,
                               config.policy.accept_from_principals, "ap-south",
                               "domain:ap-south") is not None


@pytest.mark.parametrize("accept_from, where, needle", [
    ("[{domain: eu-west}]", "policy.accept_from[0].principals", "required"),
    ("[{domain: eu-west, principals: []}]", "policy.accept_from_principals[0].principals",
     "must not be empty"),
    ("[{domain: eu-west, principals: [alice@us-east]}]",
     "policy.accept_from_principals[0].principals[0]", "eu-west vouches for"),
    ("[{domain: 'Not A Domain', principals: [alice]}]",
     "policy.accept_from_principals[0].domain", "must be a domain name"),
    ("[{domain: eu-west, principals: [a]}, {domain: eu-west, principals: [b]}]",
     "policy.accept_from_principals[1].domain", "listed twice"),
    ("[{domain: eu-west, principals: [a], role: x}]", "policy.accept_from_principals[0].role",
     "unknown key"),
])
def test_bad_principal_entries_are_refused_naming_the_field(accept_from, where, needle):
    with pytest.raises(ConfigError) as info:
        _config(accept_from)
    assert f"us.yaml: {where}: " in str(info.value) and needle in str(info.value)


def test_the_summary_publishes_principal_entries_and_placement_keeps_such_domains():
    summary = summarize(ALICE_ONLY)
    assert [(e.domain, list(e.principals)) for e in summary.accept_from_principals] == [
        ("eu-west", ["alice"])]
    assert accept_from_possible(summary.accept_from, summary.accept_from_principals, "eu-west")
    assert not accept_from_possible(summary.accept_from, summary.accept_from_principals,
                                    "ap-south")
    spec = json_format.ParseDict({"name": "w", "steps": [{"id": "a", "capability": "x"}]},
                                 spec_pb2.WorkflowSpec())
    record = peer_pb2.DomainRecord(
        domain="us-east", capabilities=[peer_pb2.CapabilityInfo(name="x", capacity=1,
                                                                available=1)],
        policy=summary)
    assert place(spec, [Candidate(record, True)], coordinator="eu-west").assignment == {
        "a": "us-east"}
    assert place(spec, [Candidate(record, True)], coordinator="ap-south").assignment == {}


def test_the_dry_run_weighs_the_principal_it_is_given():
    spec = json_format.ParseDict({"name": "w", "steps": [{"id": "a", "capability": "x"}]},
                                 spec_pb2.WorkflowSpec())
    record = peer_pb2.DomainRecord(
        domain="us-east", capabilities=[peer_pb2.CapabilityInfo(name="x", capacity=1,
                                                                available=1)],
        policy=summarize(ALICE_ONLY))
    for principal, allowed in (("alice@eu-west", True), ("bob@eu-west", False)):
        result = explain(spec, [Candidate(record, True)], coordinator="eu-west",
                         principal=principal)
        verdict = result.verdicts[0]
        assert verdict.allowed == allowed, verdict.reasons
        assert result.to_dict()["principal"] == principal
        if not allowed:
            assert any(f"principal '{principal}'" in r for r in verdict.reasons)


def test_cel_rules_see_the_verified_principal():
    policy = config_pb2.Policy(rules=[config_pb2.PolicyRule(
        name="only-alice", expression='principal == "alice@eu-west"',
        message="only alice's work")])
    for principal, allowed in (("alice@eu-west", True), ("bob@eu-west", False)):
        verdict = evaluate_prepare(policy, coordinator="eu-west", data_labels={},
                                   steps=[("a", "x")], capacities={"x": 1}, in_use={},
                                   coordinator_in_use=0, principal=principal)
        assert verdict.yes == allowed, verdict.reason
        if not allowed:
            assert "only alice's work" in verdict.reason
