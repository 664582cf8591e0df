"""One rule for who placement may choose, at the first placement and at a re-placement:
SUSPECT members are candidates (after ALIVE ones), DEAD and LEFT ones are not, and a
member whose key is revoked here is not either."""

from __future__ import annotations

from types import SimpleNamespace

from fedorch.core.workflow.placement import place
from fedorch.gen.fedorch.v1 import peer_pb2, spec_pb2
from fedorch.runtime.candidates import placement_candidates
from fedorch.runtime.membership import Member


def _member(domain: str, state: str) -> Member:
    record = peer_pb2.DomainRecord(domain=domain, capabilities=[
        peer_pb2.CapabilityInfo(name="x", capacity=1, available=1)])
    return Member(domain=domain, address=f"127.0.0.1:{ord(domain[0])}", state=state,
                  incarnation=1, last_heard=None, record=record, record_version=1)


class _Trust:
    def __init__(self, revoked: set[str]) -> None:
        self._revoked = revoked

    def keys_of(self, domain: str):
        if domain in self._revoked:
            return SimpleNamespace(current=None, revoked=["old"])
        return SimpleNamespace(current="key", revoked=[])


def _agent(members: list[Member], revoked: set[str] = frozenset()) -> SimpleNamespace:
    return SimpleNamespace(membership=SimpleNamespace(members=lambda: members),
                           trust=_Trust(set(revoked)))


def test_states_and_revocation_decide_who_is_a_candidate() -> None:
    agent = _agent([_member("alive", "ALIVE"), _member("suspect", "SUSPECT"),
                    _member("dead", "DEAD"), _member("left", "LEFT"),
                    _member("revoked", "ALIVE")], revoked={"revoked"})
    seen = {c.record.domain: (c.alive, c.suspect, c.revoked)
            for c in placement_candidates(agent)}
    assert seen == {"alive": (True, False, False), "suspect": (True, True, False),
                    "dead": (False, False, False), "left": (False, False, False),
                    "revoked": (True, False, True)}


def test_a_step_goes_to_a_suspect_member_before_a_dead_or_revoked_one() -> None:
    spec = spec_pb2.WorkflowSpec(name="w", steps=[spec_pb2.StepSpec(id="s", capability="x")])
    agent = _agent([_member("alive", "ALIVE"), _member("suspect", "SUSPECT"),
                    _member("dead", "DEAD"), _member("revoked", "ALIVE")],
                   revoked={"revoked"})
    candidates = placement_candidates(agent)
    assert place(spec, candidates, coordinator="alive").assignment == {"s": "alive"}
    second = place(spec, candidates, coordinator="alive", excluded={"s": {"alive"}})
    assert second.assignment == {"s": "suspect"}
    third = place(spec, candidates, coordinator="alive",
                  excluded={"s": {"alive", "suspect"}})
    assert not third.ok and "s" in third.unplaceable
