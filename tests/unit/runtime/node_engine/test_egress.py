"""Egress on the node engine's step results (runtime/node_engine/egress.py): a result's
outputs leave only for a domain this domain's egress lets them go to, checked as each
Ready (and each resend) leaves, with the Node's policy as reloaded."""

from __future__ import annotations

from types import SimpleNamespace

from fedorch.core.node.ready import Outgoing, Ready
from fedorch.core.node.records import AckMsg, ResultMsg
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, peer_pb2
from fedorch.runtime.node_engine.egress import EgressNode

RESULT = ResultMsg("eu-west.w", "read", 1, StepState.SUCCEEDED, {"secret": 42}, "")
RECORDS = {"eu-west": peer_pb2.DomainRecord(domain="eu-west", labels={"jurisdiction": "EU"}),
           "us-east": peer_pb2.DomainRecord(domain="us-east", labels={"jurisdiction": "US"})}


class Inner:
    def __init__(self, ready: Ready) -> None:
        self._ready = ready

    def ready(self) -> Ready:
        return self._ready


def _layer(allowed: list[str], *outs: Outgoing) -> EgressNode:
    policy = config_pb2.Policy(egress=config_pb2.Egress(
        to_labels={"jurisdiction": config_pb2.LabelValues(values=allowed)}))
    ready = Ready((), (), tuple(outs), (), (), ())
    return EgressNode(Inner(ready), SimpleNamespace(policy=policy), "partner",
                      lambda domains: {d: RECORDS[d] for d in domains if d in RECORDS})


def test_outputs_go_where_egress_allows_and_are_withheld_elsewhere():
    layer = _layer(["EU"], Outgoing("eu-west", RESULT), Outgoing("us-east", RESULT),
                   Outgoing("unknown", RESULT), Outgoing("us-east", AckMsg(("x",))))
    eu, us, unknown, ack = (o.msg for o in layer.ready().send_after_write)
    assert eu is RESULT and type(ack) is AckMsg
    for m in (us, unknown):
        assert m.outputs == {} and m.state is StepState.SUCCEEDED
        assert m.error.startswith("outputs withheld by partner: egress: ")
    assert us.error.endswith("us-east has jurisdiction=US, to_labels allows jurisdiction in"
                             " [EU]"), us.error
    assert layer.withheld == 2


def test_a_policy_changed_since_the_vote_withholds_what_it_now_refuses():
    layer = _layer(["NOWHERE"], Outgoing("eu-west", RESULT))
    [out] = layer.ready().send_after_write
    assert out.msg.outputs == {}
    assert out.msg.error.startswith("outputs withheld by partner: egress: eu-west has "
                                    "jurisdiction=EU")


def test_without_egress_a_ready_passes_untouched():
    inner = Inner(Ready((), (Outgoing("us-east", RESULT),), (), (), (), ()))
    layer = EgressNode(inner, SimpleNamespace(policy=config_pb2.Policy()), "partner",
                       lambda domains: {})
    assert layer.ready() is inner._ready
