"""What the rounds a Node coordinates are made with (node.py `consensus`, `placer`):
the consensus options of its Coordinator cores, one frozen set per view of the peers,
and the placer of a workflow's steps on the members its view does not say are gone."""

from __future__ import annotations

from typing import Any

from fedorch.core.negotiation.coordinator import ConsensusOptions
from fedorch.core.workflow.placement import Placement
from fedorch.gen.fedorch.v1 import spec_pb2

COMMIT_NOTICE_S = ConsensusOptions.commit_notice_s  # a participant's DecisionAck waits more


class RoundMaking:
    def __init__(self, node: Any) -> None:
        self.n = node
        self._consensus: tuple[tuple[str, ...], ConsensusOptions] | None = None

    def consensus(self) -> ConsensusOptions:
        # One (frozen) set of options per view of the peers, shared by the Coordinators
        # made under it: each is kept until retention forgets its workflow, and its own
        # copy with its closure cost some 600 bytes a workflow.
        n = self.n
        peers = tuple(n.peers)
        if self._consensus is not None and self._consensus[0] == peers:
            return self._consensus[1]
        others = [p for p in peers if p != n.name]

        def extras() -> list[str]:
            return n.rng.sample(others, len(others))

        t = n.t
        # The first COMMIT notice as late again as a participant's DecisionAck may wait
        # for a result to stand for it (commit_acks.py): it asks for nothing owed.
        options = ConsensusOptions(n.name, n.rng, extras, resend_s=t.resend_s,
                                   backoff_s=t.backoff_s,
                                   decision_resend_s=t.decision_resend_s,
                                   max_acceptors=t.max_acceptors,
                                   commit_notice_s=COMMIT_NOTICE_S + t.decision_ack_s,
                                   wall_ms=n.wall_ms)  # each round's creation time
        self._consensus = (peers, options)
        return options

    def placer(self, spec: spec_pb2.WorkflowSpec, hint: dict[str, str] | None = None):
        n = self.n

        def place(excluded) -> Placement:
            assignment, unplaceable = {}, {}
            for s in spec.steps:
                # Not on a member the view says is DEAD or LEFT: it would not vote.
                left = [p for p in n.peers if p not in excluded.get(s.id, ())
                        and not n.member_loss.gone(p)]
                if hint and hint.get(s.id) in left:
                    assignment[s.id] = hint[s.id]
                elif left:
                    assignment[s.id] = n.rng.choice(left)
                else:
                    unplaceable[s.id] = "every domain refused"
            return Placement(assignment, unplaceable)
        return place
