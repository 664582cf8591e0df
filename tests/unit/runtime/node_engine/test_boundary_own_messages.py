"""The Node's own messages past the authority table (runtime/node_engine/boundary.py,
"Own messages"): a message a Node addresses to itself is stepped without the table's
check, a peer's still with it, and what comes out of a federation is what checking
every message gives; an envelope signed as the receiving domain itself is refused
whole, so no peer's message can pass for the Node's own."""

from __future__ import annotations

import pytest
from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.messages import DecisionQuery
from fedorch.core.node import Message, Tick, authority
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.runtime.node_engine.test_boundary import ME, Harness
from tests.unit.runtime.node_engine.test_layer_batch import (
    WORKFLOWS,
    AuthorizedNode,
    Federation,
    Recording,
)
from tests.unit.runtime.node_values import same


class Named(Recording):
    """A Node stand-in with a name: its own messages come as `Message(name, ...)`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


@pytest.fixture
def checked(monkeypatch) -> list[tuple[str, object]]:
    """Every (src, msg) the authority table is asked about; a message "forged" is
    refused by it."""
    asked: list[tuple[str, object]] = []

    def check(node, src, msg):
        asked.append((src, msg))
        if msg == "forged":
            raise Refused("not_party", "forged")

    monkeypatch.setattr(authority, "check", check)
    return asked


def test_own_messages_are_stepped_unchecked_and_a_peers_checked(checked):
    node = Named("d0")
    gate = AuthorizedNode(node)
    refused: list[object] = []
    turn = [Message("d0", "vote"), Message("d1", "result"), Tick(), Message("d1", "forged"),
            Message("d0", "forged")]
    gate.step_batch(0.0, turn, lambda e, err: refused.append(e))
    assert checked == [("d1", "result"), ("d1", "forged")]
    assert refused == [Message("d1", "forged")]
    # The Node's own message is its own word: the table's answer is never asked for.
    assert node.stepped == [Message("d0", "vote"), Message("d1", "result"), Tick(),
                            Message("d0", "forged")]
    checked.clear()
    gate.step(0.0, Message("d0", "accepted"))
    gate.step(0.0, Message("d2", "accepted"))
    assert checked == [("d2", "accepted")]


def test_a_node_without_a_name_has_every_message_checked(checked):
    gate = AuthorizedNode(Recording())
    gate.step_batch(0.0, [Message("d0", "vote"), Message("d1", "vote")],
                    lambda e, err: None)
    assert checked == [("d0", "vote"), ("d1", "vote")]


def test_an_envelope_signed_as_this_domain_itself_is_refused_whole():
    h = Harness()
    query = DecisionQuery((f"{ME}.wf-1", 1), ME)
    assert h.refused_envelope(h.envelope(ME, (query,))) == "self_sent"
    assert h.posted == [] and h.boundary.refused == {"self_sent": 1}
    assert h.metric == ["self_sent"]
    # A peer's envelope with the same message is taken as before.
    assert h.boundary.receive(h.envelope("beta", (query,)))[0] == "beta"


class EveryMessageChecked(AuthorizedNode):
    """The gate as it was: the Node's own messages checked like a peer's."""

    def __init__(self, node, on_refused=None) -> None:
        super().__init__(node, on_refused)
        self.own = None


def _run(monkeypatch, gate: type, cuts: list[int], forged_at: set[int],
         reloads: set[int], faults: set[int]) -> tuple[Federation, list[tuple[str, str]]]:
    """A federation of three engine-layered Nodes (test_layer_batch.py) with `gate`
    innermost; the (asker, src) of every check the table made."""
    import tests.unit.runtime.node_engine.test_layer_batch as layered

    asked: list[tuple[str, str]] = []
    real = authority.check

    def check(node, src, msg, **kw):
        asked.append((node.name, src))
        return real(node, src, msg, **kw)

    with monkeypatch.context() as m:
        m.setattr(layered, "AuthorizedNode", gate)
        m.setattr(authority, "check", check)
        fed = Federation(True, cuts, set(forged_at), set(reloads), set(faults))
        fed.run()
    return fed, asked


def test_a_federation_checks_no_own_message_and_ends_as_with_every_one_checked(monkeypatch):
    plan = ([6, 3, 8], {1, 2, 4, 7, 9, 12, 15}, set(), set())
    fed, asked = _run(monkeypatch, AuthorizedNode, *plan)
    before, asked_before = _run(monkeypatch, EveryMessageChecked, *plan)
    own = sum(a.driver.looped_back for a in fed.agents.values())
    assert own > 0, "the Nodes sent themselves messages"
    assert [a for a in asked if a[0] == a[1]] == []
    assert len([a for a in asked_before if a[0] == a[1]]) == own
    assert [a for a in asked if a[0] != a[1]] == [a for a in asked_before if a[0] != a[1]]
    same(fed.outcome(), before.outcome(), "outcome")
    assert any(a.refusals for a in fed.agents.values()), "the forged messages were refused"
    for wf in WORKFLOWS:
        assert fed.agents[wf[:2]].disk.disk.rows[wf].state.name in ("SUCCEEDED", "ABORTED")


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(1, 9), min_size=1, max_size=6),
       forged_at=st.sets(st.integers(1, 60), max_size=8),
       reloads=st.sets(st.integers(0, 40), max_size=3),
       faults=st.sets(st.integers(0, 40), max_size=4))
def test_own_messages_unchecked_give_what_every_message_checked_gives(
        monkeypatch, cuts, forged_at, reloads, faults):
    fed, asked = _run(monkeypatch, AuthorizedNode, cuts, forged_at, reloads, faults)
    before, _ = _run(monkeypatch, EveryMessageChecked, cuts, forged_at, reloads, faults)
    assert [a for a in asked if a[0] == a[1]] == []
    same(fed.outcome(), before.outcome(), "outcome")
