"""The runtime's side of data-flow policy: the domain records as this agent knows them,
what placement's votes and the egress checks read (node_engine/placing.py, egress.py;
the policy itself is agent/core/policy)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fedorch.gen.fedorch.v1 import peer_pb2

if TYPE_CHECKING:
    from fedorch.runtime.context import AgentContext

log = logging.getLogger("fedorch.policy")


def domain_records(agent: AgentContext, domains: Iterable[str]) -> dict[str, peer_pb2.DomainRecord]:
    """The latest records of ``domains`` that this agent knows (its own current one for
    itself); a domain without a record is left out."""
    records = {}
    membership = agent.membership  # its cached parse of each gossiped record
    for domain in set(domains):
        if domain == agent.domain:
            records[domain] = agent.current_record()
            continue
        view = membership.swim.member(domain) if membership is not None else None
        if view is not None and view.record:
            record = membership._record(domain, view.record_version, view.record)
            if record.domain == domain:
                records[domain] = record
    return records
