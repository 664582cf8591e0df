"""Data labels along the DAG, residency and egress at the vote, placement around them,
and the dry run (`fedorch policy explain`)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fedorch.cli.main import cli
from fedorch.core.negotiation.participant import Participant
from fedorch.core.policy.engine import PolicyContext, egress_refusal, evaluate_prepare
from fedorch.core.policy.explain import PRIVATE, SUMMARY, explain
from fedorch.core.policy.flow import vote_context
from fedorch.core.workflow.dataflow import destinations, label_flow, merge, show
from fedorch.core.workflow.placement import Candidate, place
from fedorch.core.workflow.spec import parse_spec_text
from fedorch.gen.fedorch.v1 import client_pb2, config_pb2, peer_pb2

SPEC = """
name: flow
data: {source: crm}
steps:
  - {id: extract, capability: data.extract}
  - {id: clean, capability: data.clean, needs: [extract], data: {pii: removed}}
  - {id: other, capability: data.extract}
  - {id: train, capability: ml.train, needs: [clean, other]}
"""


def _egress(to_labels: dict[str, list[str]] | None = None,
            to_domains: list[str] | None = None) -> config_pb2.Egress:
    return config_pb2.Egress(
        to_labels={k: config_pb2.LabelValues(values=v) for k, v in (to_labels or {}).items()},
        to_domains=to_domains or [])


def _record(domain: str, caps: dict[str, dict[str, str]], *, labels=None, residency=None,
            egress: config_pb2.Egress | None = None, published: bool = True,
            rules: int = 0) -> peer_pb2.DomainRecord:
    policy = peer_pb2.PolicySummary(published=published, residency_accept=residency or [],
                                    private_rules=rules)
    if egress is not None:
        policy.egress.CopyFrom(egress)
    return peer_pb2.DomainRecord(
        domain=domain, labels=labels or {}, policy=policy,
        capabilities=[peer_pb2.CapabilityInfo(name=n, capacity=4, available=4, cost=1.0,
                                              produces=p) for n, p in caps.items()])


def _produces(table):
    return lambda domain, capability: table.get((domain, capability), {})


# ---- propagation ----------------------------------------------------------------------


def test_labels_follow_the_dag_from_data_steps_and_capabilities() -> None:
    spec = parse_spec_text(SPEC, "flow.yaml")
    placement = {"extract": "eu", "clean": "eu", "other": "us", "train": "eu"}
    flows = label_flow(spec, placement, _produces({
        ("eu", "data.extract"): {"jurisdiction": "EU"},
        ("us", "data.extract"): {"jurisdiction": "US"},
    }))
    assert flows["extract"].receives == {"source": {"crm"}}
    assert flows["extract"].carries == {"source": {"crm"}, "jurisdiction": {"EU"}}
    # clean adds its own label and keeps what it received: labels are never dropped
    assert flows["clean"].carries == {"source": {"crm"}, "jurisdiction": {"EU"},
                                      "pii": {"removed"}}
    # train is fed from an EU and a US step: it receives both jurisdictions
    assert flows["train"].receives == {"source": {"crm"}, "jurisdiction": {"EU", "US"},
                                       "pii": {"removed"}}
    assert show(flows["train"].receives) == "jurisdiction=EU|US, pii=removed, source=crm"


def test_capability_labels_depend_on_where_the_step_is_placed() -> None:
    spec = parse_spec_text(SPEC, "flow.yaml")
    table = _produces({("us", "data.extract"): {"jurisdiction": "US"}})
    on_eu = label_flow(spec, {"extract": "eu"}, table)
    on_us = label_flow(spec, {"extract": "us"}, table)
    assert "jurisdiction" not in on_eu["clean"].receives
    assert on_us["clean"].receives["jurisdiction"] == {"US"}


def test_destinations_are_the_domains_of_the_steps_that_need_a_step() -> None:
    spec = parse_spec_text(SPEC, "flow.yaml")
    placement = {"extract": "eu", "clean": "us", "other": "us", "train": "eu"}
    assert destinations(spec, placement, "extract") == {"us": ["clean"]}
    assert destinations(spec, placement, "clean") == {"eu": ["train"]}
    assert destinations(spec, placement, "train") == {}


def test_step_data_with_an_empty_label_name_is_refused() -> None:
    with pytest.raises(ValueError, match=r"steps\[0\]\.data"):
        parse_spec_text('name: x\nsteps: [{id: a, capability: c, data: {"": x}}]\n', "w.yaml")


# ---- residency and egress at the vote ---------------------------------------------------


def _vote(policy: config_pb2.Policy, spec_text: str, placement, records, domain: str,
          steps: list[tuple[str, str]]):
    spec = parse_spec_text(spec_text, "w.yaml")
    context = vote_context(spec, placement, [s for s, _ in steps], records, domain=domain)
    return evaluate_prepare(policy, coordinator="eu", data_labels=dict(spec.data),
                            steps=steps, capacities={c: 4 for _, c in steps}, in_use={},
                            coordinator_in_use=0, context=context)


TWO = """
name: two
steps:
  - {id: extract, capability: data.extract}
  - {id: train, capability: ml.train, needs: [extract]}
"""


def test_residency_is_checked_against_what_a_step_would_receive() -> None:
    records = {"eu": _record("eu", {"data.extract": {"jurisdiction": "EU"}}),
               "us": _record("us", {"ml.train": {}})}
    us_policy = config_pb2.Policy(residency=config_pb2.Residency(accept=["US"]))
    verdict = _vote(us_policy, TWO, {"extract": "eu", "train": "us"}, records, "us",
                    [("train", "ml.train")])
    assert not verdict.yes
    assert verdict.reason.startswith("residency: step 'train' would receive jurisdiction EU")
    # The workflow's data carries no jurisdiction: the old check alone would say yes.
    assert evaluate_prepare(us_policy, coordinator="eu", data_labels={},
                            steps=[("train", "ml.train")], capacities={"ml.train": 1},
                            in_use={}, coordinator_in_use=0).yes


def test_egress_refuses_outputs_to_a_domain_with_other_labels() -> None:
    records = {"eu": _record("eu", {"data.extract": {}}, labels={"jurisdiction": "EU"}),
               "us": _record("us", {"ml.train": {}}, labels={"jurisdiction": "US"}),
               "eu2": _record("eu2", {"ml.train": {}}, labels={"jurisdiction": "EU"})}
    policy = config_pb2.Policy(egress=_egress({"jurisdiction": ["EU"]}))
    verdict = _vote(policy, TWO, {"extract": "eu", "train": "us"}, records, "eu",
                    [("extract", "data.extract")])
    assert not verdict.yes
    assert verdict.reason == ("egress: step 'extract' outputs may not go to us: us has "
                              "jurisdiction=US, to_labels allows jurisdiction in [EU]")
    assert _vote(policy, TWO, {"extract": "eu", "train": "eu2"}, records, "eu",
                 [("extract", "data.extract")]).yes
    assert _vote(policy, TWO, {"extract": "eu", "train": "eu"}, records, "eu",
                 [("extract", "data.extract"), ("train", "ml.train")]).yes


def test_egress_to_domains_and_unknown_destinations() -> None:
    only_b = _egress(to_domains=["b"])
    assert egress_refusal(only_b, "a", "a", None) is None  # always to itself
    assert egress_refusal(only_b, "a", "b", None) is None
    assert "not in to_domains (b)" in egress_refusal(only_b, "a", "c", {"x": "y"})
    either = _egress({"jurisdiction": ["EU"]}, ["b"])
    assert egress_refusal(either, "a", "b", {"jurisdiction": "US"}) is None
    assert egress_refusal(either, "a", "c", {"jurisdiction": "EU"}) is None
    assert egress_refusal(either, "a", "c", None) == "c's labels are unknown"
    assert "jurisdiction=none" in egress_refusal(either, "a", "c", {})
    assert egress_refusal(config_pb2.Egress(), "a", "c", None) is None


def test_participant_votes_no_with_the_flow_reason_and_reserves_nothing() -> None:
    policy = config_pb2.Policy(residency=config_pb2.Residency(accept=["US"]))
    participant = Participant("us", policy, {"ml.train": 2}, lease_s=5, query_interval_s=1)
    context = PolicyContext(receives={"train": merge({"jurisdiction": "EU"})}, domain="us")
    out = participant.prepare(1.0, workflow_id="eu.w1", round=1, coordinator="eu",
                              data_labels={}, steps=[("train", "ml.train")], context=context)
    assert not out.yes and out.reason.startswith("residency: step 'train'")
    assert participant.in_use() == {} and participant.holds() == []


# ---- placement avoids what the votes would refuse ------------------------------------------


def test_placement_avoids_a_domain_whose_residency_refuses_upstream_labels() -> None:
    spec = parse_spec_text(TWO, "w.yaml")
    members = [
        Candidate(_record("eu", {"data.extract": {"jurisdiction": "EU"}}), True),
        # us is cheaper for ml.train, but the EU outputs of extract would reach it
        Candidate(_record("us", {"ml.train": {}}, residency=["US"]), True),
        Candidate(_record("eu2", {"ml.train": {}}, residency=["EU"]), True),
    ]
    members[2].record.capabilities[0].cost = 3.0
    result = place(spec, members, coordinator="eu")
    assert result.assignment == {"extract": "eu", "train": "eu2"}
    alone = place(spec, members[:2], coordinator="eu")
    assert alone.unplaceable == {
        "train": "no eligible domain for 'ml.train' (eu: does not offer 'ml.train'; "
                 "us: residency EU not accepted)"}


def test_placement_avoids_a_domain_the_upstream_egress_refuses() -> None:
    spec = parse_spec_text(TWO, "w.yaml")
    eu = _record("eu", {"data.extract": {}}, labels={"jurisdiction": "EU"},
                 egress=_egress({"jurisdiction": ["EU"]}))
    us = _record("us", {"ml.train": {}}, labels={"jurisdiction": "US"})
    eu2 = _record("eu2", {"ml.train": {}}, labels={"jurisdiction": "EU"})
    eu2.capabilities[0].cost = 3.0
    members = [Candidate(r, True) for r in (eu, us, eu2)]
    assert place(spec, members, coordinator="eu").assignment == {"extract": "eu",
                                                                "train": "eu2"}
    reason = place(spec, members[:2], coordinator="eu").unplaceable["train"]
    assert "us: egress of eu refuses: us has jurisdiction=US" in reason
    # A private policy is not guessed at: the vote decides.
    eu.policy.published = False
    assert place(spec, members[:2], coordinator="eu").assignment["train"] == "us"


# ---- the dry run -----------------------------------------------------------------------------


def _explain_members():
    eu = _record("eu", {"data.extract": {"jurisdiction": "EU"}}, labels={"jurisdiction": "EU"},
                 egress=_egress({"jurisdiction": ["EU"]}), rules=1)
    us = _record("us", {"ml.train": {}}, labels={"jurisdiction": "US"}, residency=["US"])
    priv = _record("priv", {"ml.train": {}}, labels={"jurisdiction": "EU"}, published=False)
    return [Candidate(r, True) for r in (eu, us, priv)]


def test_explain_gives_every_step_and_domain_a_verdict_with_reasons() -> None:
    spec = parse_spec_text(TWO, "w.yaml")
    result = explain(spec, _explain_members(), coordinator="eu")
    assert result.placement.assignment == {"extract": "eu", "train": "priv"}
    verdicts = {(v.step, v.domain): v for v in result.verdicts}
    assert len(verdicts) == 6
    assert verdicts[("extract", "eu")].allowed and verdicts[("extract", "eu")].chosen
    assert verdicts[("extract", "eu")].basis.startswith("summary; private rules")
    us = verdicts[("train", "us")]
    assert not us.allowed
    assert "residency: would receive jurisdiction EU, accepts US" in us.reasons
    assert any(r.startswith("egress of eu (step 'extract'): us has jurisdiction=US")
               for r in us.reasons)
    assert us.basis == SUMMARY
    assert verdicts[("train", "priv")].allowed and verdicts[("train", "priv")].basis == PRIVATE
    assert verdicts[("extract", "us")].reasons == ["capability: does not offer 'data.extract'"]


def test_policy_explain_cli_prints_verdicts_and_refuses_a_bad_file(tmp_path, monkeypatch):
    spec_file = tmp_path / "w.yaml"
    spec_file.write_text(TWO)
    members = [
        client_pb2.MemberInfo(
            domain=c.record.domain, labels=dict(c.record.labels),
            capabilities=list(c.record.capabilities), policy=c.record.policy,
            state=client_pb2.MEMBER_STATE_ALIVE, self=c.record.domain == "eu")
        for c in _explain_members()
    ]

    class FakeClient:
        def __init__(self, peer, timeout, *credentials):  # identity, agent key
            pass

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

        async def list_members(self):
            return members

    monkeypatch.setattr("fedorch.cli.common.AgentClient", FakeClient)
    runner = CliRunner()
    done = runner.invoke(cli, ["policy", "explain", str(spec_file), "--json"])
    assert done.exit_code == 0, done.output
    data = json.loads(done.output)
    assert data["coordinator"] == "eu" and data["placement"] == {"extract": "eu",
                                                                 "train": "priv"}
    assert {(v["step"], v["domain"], v["verdict"]) for v in data["verdicts"]} >= {
        ("train", "us", "no"), ("train", "priv", "yes"), ("extract", "eu", "yes")}
    table = runner.invoke(cli, ["policy", "explain", str(spec_file)])
    assert table.exit_code == 0 and "residency" in table.output
    spec_file.write_text("name: x\nsteps: [{id: a, capability: c, needs: [zz]}]\n")
    bad = runner.invoke(cli, ["policy", "explain", str(spec_file)])
    assert bad.exit_code == 2 and "names no step" in bad.output


def test_a_voter_that_lacks_an_upstream_record_refuses_under_residency() -> None:
    spec = parse_spec_text(SPEC, "flow.yaml")
    placement = {"extract": "eu", "clean": "mid", "other": "us", "train": "us"}
    flows = label_flow(spec, placement, _produces({}))
    assert flows["train"].sources == {"eu", "mid", "us"}
    assert flows["extract"].sources == frozenset()
    records = {"us": _record("us", {"ml.train": {}}), "mid": _record("mid", {})}
    context = vote_context(spec, placement, ["train"], records, domain="us")
    assert context.unknown_sources == {"train": ["eu"]}
    args = {"coordinator": "eu", "data_labels": {}, "steps": [("train", "ml.train")],
            "capacities": {"ml.train": 1}, "in_use": {}, "coordinator_in_use": 0,
            "context": context}
    strict = config_pb2.Policy(residency=config_pb2.Residency(accept=["US"]))
    verdict = evaluate_prepare(strict, **args)
    assert verdict.reason == ("residency: step 'train' would receive data from eu, whose "
                              "record is unknown here")
    assert evaluate_prepare(config_pb2.Policy(), **args).yes  # no residency: no matter
