"""The node engine's membership input (runtime/node_engine/engine.py,
`NodeAgent.member_changes`): what SWIM's view shows that the Node was not told, as one
look, each member's state as the workflows act on it; nothing twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from fedorch.core.node.inputs import MemberState
from fedorch.runtime.node_engine.engine import NodeAgent


@dataclass
class Membership:
    """A view: member -> the state the workflows act on (state_for_work)."""

    states: dict[str, str] = field(default_factory=dict)

    def members(self):
        return [SimpleNamespace(domain=d, state=s) for d, s in self.states.items()]

    def state_for_work(self, domain: str) -> str:
        return self.states.get(domain, "")


def engine(membership: Membership) -> SimpleNamespace:
    """What member_changes reads of a NodeAgent: its agent's membership, its name, and
    what it told its Node."""
    return SimpleNamespace(agent=SimpleNamespace(membership=membership), domain="n1",
                           _told={})


def changes(holder: SimpleNamespace) -> tuple[MemberState, ...]:
    return NodeAgent.member_changes(holder)  # type: ignore[arg-type]


def test_the_whole_view_first_then_only_what_changed():
    view = Membership({"n1": "ALIVE", "n2": "ALIVE", "n3": "SUSPECT"})
    holder = engine(view)
    # Itself is never told; the others, sorted, at once (a restored Node knows none).
    assert changes(holder) == (MemberState("n2", "ALIVE"), MemberState("n3", "SUSPECT"))
    assert changes(holder) == ()
    view.states["n3"] = "DEAD"
    assert changes(holder) == (MemberState("n3", "DEAD"),)
    assert changes(holder) == ()


def test_a_member_gone_from_the_view_reads_unknown():
    view = Membership({"n2": "ALIVE", "n3": "ALIVE"})
    holder = engine(view)
    changes(holder)
    del view.states["n3"]  # reaped, or no longer trusted
    assert changes(holder) == (MemberState("n3", ""),)
    assert changes(holder) == ()
    view.states["n3"] = "ALIVE"  # back
    assert changes(holder) == (MemberState("n3", "ALIVE"),)


def test_no_membership_yet_tells_nothing():
    holder = SimpleNamespace(agent=SimpleNamespace(membership=None), domain="n1", _told={})
    assert changes(holder) == ()
