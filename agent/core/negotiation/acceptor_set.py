"""The acceptor set of a transaction, as its coordinator fixes it at PREPARE time.

Paxos Commit needs 2F+1 acceptors, whoever they are; every one sends its Accepted to
every participant, so the set is bounded (`max_acceptors`): the messages of a round
grow with 5·N, not N². The coordinator is always one (its own acceptance travels in its
Accept); then participants, in an order fixed by the workflow id (deterministic at
every domain, yet not the same few domains in every workflow); then, when the round
has fewer than `min_acceptors`, extra live members."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def rank(workflow_id: str, domain: str) -> bytes:
    """A participant's place in the queue for the acceptor set of `workflow_id`."""
    return hashlib.blake2b(f"{workflow_id}\0{domain}".encode(), digest_size=8).digest()


def choose_acceptors(workflow_id: str, coordinator: str, participants: Sequence[str], *,
                     max_acceptors: int, min_acceptors: int,
                     extras: Iterable[str]) -> tuple[str, ...]:
    others = sorted((p for p in set(participants) if p != coordinator),
                    key=lambda p: (rank(workflow_id, p), p))
    chosen = {coordinator, *others[:max(0, max_acceptors - 1)]}
    for member in extras:
        if len(chosen) >= min_acceptors:
            break
        chosen.add(member)
    return tuple(sorted(chosen))
