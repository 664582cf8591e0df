"""NodeLayer (runtime/node_engine/layer.py): a layer passes on what it does not change,
as `inner`'s own methods, and does what it changes itself."""

from __future__ import annotations

from fedorch.runtime.node_engine.layer import NodeLayer


class _Inner:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def step(self, now, event):
        self.calls.append(("step", now, event))

    def get_timer(self):
        return 5.0

    def ready(self):
        return "ready"

    def advance(self, ready):
        self.calls.append(("advance", ready))


class _Counting(NodeLayer):
    """A layer with a rule for steps only."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.stepped = 0

    def step(self, now, event):
        self.stepped += 1
        self.inner.step(now, event)


def test_a_layer_that_changes_nothing_hands_each_call_to_inner_itself():
    inner = _Inner()
    layer = NodeLayer(NodeLayer(inner))
    assert layer.step == inner.step and layer.ready == inner.ready
    assert layer.get_timer == inner.get_timer and layer.advance == inner.advance
    layer.step(1.0, "e")
    layer.advance("r")
    assert inner.calls == [("step", 1.0, "e"), ("advance", "r")]
    assert layer.get_timer() == 5.0 and layer.ready() == "ready"


def test_a_layer_keeps_what_it_changes_and_passes_on_the_rest():
    inner = _Inner()
    layer = _Counting(inner)
    outer = NodeLayer(layer)
    outer.step(2.0, "e")
    assert layer.stepped == 1 and inner.calls == [("step", 2.0, "e")]
    assert outer.step == layer.step and layer.step != inner.step
    assert layer.ready == inner.ready and outer.get_timer() == 5.0
