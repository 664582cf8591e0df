"""The node engine's placement: the daemon's placement code behind the Node's placer.

A Node places each round of a workflow it coordinates through `Node.placer(spec,
hint)`: a function of the domains the earlier rounds' refusals excluded. The Node's
own placer picks any peer not excluded (the simulator's world has no records to place
by). `PlacedNode` is the Node with the daemon's placement instead:
`core/workflow/placement.place` over the members this agent sees
(runtime/candidates.py: capabilities, labels, residency, egress, free capacity,
liveness), with the refusers excluded. The first round keeps the placement the client
service chose when it took the submission (`hint`), made by the same code a moment
before; a restored coordinator's later rounds place anew.

`SubmissionPlans` is that first placement, with the spec's checks and fan-out
expansion, as the client service makes it for each submission: kept by spec shape and
member view, so that the same spec submitted again while the view stands is checked
and placed once (see the class). A spec no domain can take whole is not refused: its
plan names the steps and why (`Plan.unplaceable`), the Node takes the submission and
ends it ABORTED with that reason (core/node/submitting.py).

`KeptCandidates` is the candidates themselves (runtime/candidates.py
`placement_candidates`: one `Candidate` per member, each with its key's revocation
looked up), kept while the member view stands instead of built for every submission:
made again after membership's hook says the view may have changed
(`on_members_change`, each look membership takes), and at least every
`CANDIDATES_KEPT_S` seconds, since a key revocation reaches the trust store, not
membership.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from fedorch.core.node.node import Node
from fedorch.core.policy.engine import PolicyContext
from fedorch.core.policy.flow import vote_context
from fedorch.core.workflow import fanout
from fedorch.core.workflow.placement import Candidate, Placement, place
from fedorch.core.workflow.spec import check_no_expansion_fields, validate_spec
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.candidates import placement_candidates
from fedorch.runtime.node_codec import node_codec

__all__ = ["CANDIDATES_KEPT_S", "KeptCandidates", "PLANS_KEPT", "Plan", "PlacedNode",
           "SubmissionPlans"]

# Submission plans kept (distinct spec shapes: a few per client in practice).
PLANS_KEPT = 256
# Placement's candidates are made again at least this often (a revoked key reaches the
# trust store, which tells membership nothing).
CANDIDATES_KEPT_S = 1.0


class KeptCandidates:
    """`placement_candidates(agent)`, made once per member view (see the header).

    `build` makes them (tests give their own); `monotonic` is the agent's clock."""

    def __init__(self, agent: Any, *,
                 build: Callable[[Any], Sequence[Candidate]] | None = None,
                 monotonic: Callable[[], float] | None = None) -> None:
        self.agent = agent
        self._build = build if build is not None else placement_candidates
        self._monotonic = monotonic if monotonic is not None else agent.clock.monotonic
        self._kept: Sequence[Candidate] | None = None
        self._made_at = 0.0
        self.made = 0  # times made (for tests and the benchmark note)

    def now(self) -> Sequence[Candidate]:
        """The candidates as the member view stands."""
        at = self._monotonic()
        kept = self._kept
        # Made again also if the clock went back (a monotonic port never does; a fake may).
        if kept is None or not 0 <= at - self._made_at < CANDIDATES_KEPT_S:
            kept = self._kept = list(self._build(self.agent))
            self._made_at = at
            self.made += 1
        return kept

    def changed(self) -> None:
        """Membership's hook: the view may have changed; made again when next asked."""
        self._kept = None


class PlacedNode(Node):
    def __init__(self, name: str, *, candidates: Callable[[], Sequence[Candidate]],
                 records: Callable[[Iterable[str]], Mapping[str, peer_pb2.DomainRecord]]
                 | None = None, **kwargs: Any) -> None:
        """`candidates`: the members placement may choose from, as this agent sees them
        now; `records`: the domain records it knows of some domains (its own current
        one included; runtime/dataflow_policy.py), for the data flow a vote checks;
        the rest as `Node`'s."""
        self.candidates = candidates
        self.records = records
        super().__init__(name, **kwargs)

    def vote_context(self, now: float, info: Any, steps: tuple[tuple[str, str], ...],
                     principal: str) -> PolicyContext | None:
        """What a vote judges: the labels each asked
        step would receive along the DAG as placed, where its outputs go, the workflow's
        name and the wall time for rules; None when the policy checks none of them."""
        policy = self.policy
        if self.records is None or not (policy.residency.accept or policy.egress.to_labels
                                        or policy.egress.to_domains or policy.rules):
            return None
        placement = info.placement
        return vote_context(info.spec, placement, [step for step, _ in steps],
                            self.records(placement.values()), domain=self.name,
                            principal=principal, wall_time_s=self.wall_ms(now) / 1000)

    def placer(self, spec: spec_pb2.WorkflowSpec, hint: dict[str, str] | None = None):
        def placed(excluded: Mapping[str, Any]) -> Placement:
            if hint and not any(excluded.values()):
                return Placement(dict(hint), {})
            return place(spec, self.candidates(), coordinator=self.name, excluded=excluded)

        return placed


class Plan(NamedTuple):
    """What a submitted spec becomes at its coordinator: checked, its fan-out steps
    expanded (`spec`), its steps placed (`assignment`, the submission's own dict), and
    the steps no domain can take, each with why (`unplaceable`; empty when every step
    is placed: the workflow ends ABORTED with them at once)."""

    spec: spec_pb2.WorkflowSpec
    assignment: dict[str, str]
    unplaceable: dict[str, str]


class SubmissionPlans:
    """The client service's checks, fan-out expansion and first placement of a submitted
    spec, made once per spec shape and member view.

    `validate_spec`, `fanout.expand` and `place` are pure functions of the spec, the
    candidates (each member's record and liveness, as runtime/candidates.py builds them)
    and this coordinator's name, and a federation's clients submit the same few specs
    again and again. So a plan is kept by the spec's deterministic bytes, with the
    candidates it was made from, and reused while the candidates are the same: the same
    records (membership parses a record once per version, so an unchanged member's is
    the same object, compared by identity; another one is compared by value, which
    gives the same answer at a higher cost), the same liveness and revocations, in the
    same order. Any change of the view makes the plan again. Only a spec that passes
    and is placed whole is kept: a refusal is made again, so its error is the one the
    checks give now; nor is one whose fan-out steps were expanded (its expansion is a
    new message, never shared between workflows). So a submission gets what the checks
    and `place` would give it now: the spec object it came with, and an assignment
    dict of its own. A spec some step of which no domain can take is planned too (its
    `unplaceable` says why), and never kept."""

    def __init__(self, coordinator: str, kept: int = PLANS_KEPT) -> None:
        self.coordinator = coordinator
        self.kept = kept
        self._plans: OrderedDict[bytes, tuple[tuple, dict[str, str]]] = OrderedDict()
        self.hits = 0    # plans reused
        self.misses = 0  # plans made

    def plan(self, spec: spec_pb2.WorkflowSpec, candidates: Sequence[Candidate]) -> Plan:
        """The checked, expanded, placed spec. Raises SpecError (the spec's fault, as
        `validate_spec` says it)."""
        # The spec's bytes, kept for its rows and PREPAREs too (node_codec_protos.py).
        key = node_codec().proto_bytes.of(spec)
        view = tuple((c.record, c.alive, c.suspect, c.revoked) for c in candidates)
        kept = self._plans.get(key)
        if kept is not None and kept[0] == view:
            self._plans.move_to_end(key)
            self.hits += 1
            return Plan(spec, dict(kept[1]), {})
        self.misses += 1
        check_no_expansion_fields(spec, "request")
        validate_spec(spec, "request")
        # Fan-out steps become one instance per eligible domain, once, here
        # (core/workflow/fanout.py): the row keeps the expanded spec and every
        # PREPARE carries it, with the signed spec it was expanded from (a participant
        # checks it is an expansion of that: core/identity/submission.py).
        expanded = fanout.expand(spec, candidates, coordinator=self.coordinator)
        if expanded is not spec:
            validate_spec(expanded, "request (fan-out steps expanded)")
        placement = place(expanded, candidates, coordinator=self.coordinator)
        if not placement.ok:
            return Plan(expanded, dict(placement.assignment), dict(placement.unplaceable))
        if expanded is spec:
            self._plans[key] = (view, dict(placement.assignment))
            self._plans.move_to_end(key)
            while len(self._plans) > self.kept:
                self._plans.popitem(last=False)
        return Plan(expanded, dict(placement.assignment), {})
