"""Egress on the node engine's step results: outputs leave only for domains the policy
lets them go to.

Theory of operation
-------------------
A vote checks egress against the destinations a step's outputs would have as placed
(core/policy/flow.py, through `PlacedNode.vote_context`); the policy may change after
the vote (a SIGHUP) or a destination's labels may, so this layer checks again as each
result leaves.
`EgressNode` sits between the Node and the audit layer (which seals the final
results it sends: attestations.py), and rewrites each `ResultMsg` of the Ready with
outputs bound for another domain that this domain's egress refuses (the Node's own
policy, as reloaded, and the destination's labels from its record: a destination
with no record known has no labels, which egress by label refuses): the same result
without its outputs, its error saying why ("outputs withheld by DOMAIN: egress:
..."). The state travels, so the workflow does not wait for ever; no data leaves.
The Node resends an unacknowledged result from its own copy, and each resend is
checked here again, so a result withheld once is withheld every time the policy
still refuses it. With no egress policy (the common case) a Ready passes untouched.
The Ready keeps its lengths: the Node's `advance` drops what it handed out by count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from fedorch.core.node.ready import Outgoing, Ready
from fedorch.core.node.records import ResultMsg
from fedorch.core.policy.engine import egress_refusal
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.node_engine.layer import NodeLayer

__all__ = ["EgressNode", "withheld"]

log = logging.getLogger("fedorch.policy")


def withheld(policy: Any, domain: str, out: Outgoing,
             labels_of: Callable[[str], Mapping[str, str] | None]) -> Outgoing:
    """`out`, or its result without outputs when `domain`'s egress refuses its
    destination (`labels_of`: the destination's labels, None when unknown)."""
    m = out.msg
    if type(m) is not ResultMsg or not m.outputs or out.to == domain:
        return out
    why = egress_refusal(policy.egress, domain, out.to, labels_of(out.to))
    if why is None:
        return out
    log.warning("outputs of %s/%s withheld from %s: egress: %s", m.workflow_id, m.step_id,
                out.to, why)
    return Outgoing(out.to, replace(m, outputs={},
                                    error=f"outputs withheld by {domain}: egress: {why}"))


class EgressNode(NodeLayer):
    """The Node whose Readies carry no outputs egress refuses (see the header).
    `records(domains)`: the domain records this agent knows (dataflow_policy.py)."""

    def __init__(self, inner: Any, node: Any, domain: str,
                 records: Callable[[Iterable[str]], Mapping[str, peer_pb2.DomainRecord]]
                 ) -> None:
        super().__init__(inner)
        self.node = node
        self.domain = domain
        self.records = records
        self.withheld = 0  # results sent without their outputs (for tests)

    def ready(self) -> Ready:
        ready = self.inner.ready()
        policy = self.node.policy  # the Node's own copy, as reloaded
        if not policy.egress.to_labels and not policy.egress.to_domains:
            return ready

        def labels_of(dst: str) -> Mapping[str, str] | None:
            record = self.records([dst]).get(dst)
            return dict(record.labels) if record is not None else None

        queues = []
        for outs in (ready.send_now, ready.send_after_write):
            checked = tuple(withheld(policy, self.domain, out, labels_of) for out in outs)
            self.withheld += sum(1 for a, b in zip(outs, checked, strict=True) if a is not b)
            queues.append(checked)
        return ready._replace(send_now=queues[0], send_after_write=queues[1])
