"""The driver's input counter (runtime/driver.py, `NodeDriver.inputs`, read as the
fedorch_node_driver_inputs metric) counts the inputs stepped: a refused one too, and
the one that broke a turn, but not those after it, which were never stepped."""

from __future__ import annotations

import random

import pytest
from fedorch.core.node import Message, Node, Tick
from fedorch.core.node.records import Timing
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.driver import DriverStopped, NodeDriver
from fedorch.runtime.node_engine.boundary import AuthorizedNode
from fedorch.runtime.node_engine.layer import NodeLayer

# Kept: a layer with a per-input rule, keeping each input that reached it.
from tests.unit.runtime.node_engine.test_layer_batch import Kept
from tests.unit.runtime.test_driver import NAMES, MemoryDisk


class FixedClock:
    def monotonic(self) -> float:
        return 100.0

    def wall_ms(self) -> int:
        return 1_700_000_000_000


class NotAnInput:
    """No input the Node knows: stepping it breaks the Node (a broken invariant)."""


class Nowhere:
    """Transport, Executors: nothing is expected to leave in these turns."""

    def send(self, dst: str, msg: object) -> None:
        raise AssertionError(f"sent {msg!r} to {dst}")

    def start(self, run: object) -> None:
        raise AssertionError(f"started {run!r}")

    def stop(self, run: object) -> None:
        raise AssertionError(f"stopped {run!r}")


class TurnRuleBreaks(NodeLayer):
    """A layer whose rule for the whole turn breaks before it hands the turn on."""

    def step_batch(self, now, events, refuse) -> None:
        raise ValueError("the turn's rule broke")


def driver_around(wrap=lambda node: node) -> NodeDriver:
    node = Node("d0", policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 2},
                timing=Timing(), peers=NAMES, rng=random.Random(0), now=100.0)
    return NodeDriver(wrap(node), FixedClock(), MemoryDisk(), Nowhere(), Nowhere())


def turn_breaking_at(broken: int, length: int) -> list[object]:
    return [NotAnInput() if i == broken else Tick() for i in range(length)]


# The Node bare (the driver's own one-by-one loop), inside a layer with a per-input rule,
# and inside the engine's innermost layer (the authority table's own loop).
STACKS = {"bare": lambda node: node, "layer": Kept,
          "authorized": lambda node: Kept(AuthorizedNode(node))}


@pytest.mark.parametrize("stack", sorted(STACKS))
@pytest.mark.parametrize(("broken", "length"), [(0, 1), (0, 3), (1, 3), (2, 3), (3, 7)])
def test_a_broken_turn_counts_the_inputs_up_to_the_one_that_broke(stack, broken, length):
    driver = driver_around(STACKS[stack])
    driver.turn([Tick(), Tick()])
    assert driver.inputs == 2
    inputs = turn_breaking_at(broken, length)
    with pytest.raises(DriverStopped) as stopped:
        driver.turn(inputs)
    assert stopped.value.input is inputs[broken]
    assert driver.inputs == 2 + broken + 1  # not the length - broken - 1 never stepped
    if stack != "bare":  # what the counter says is what went down the layers
        assert driver.node.kept[2:] == inputs[:broken + 1]


def test_an_input_that_broke_and_comes_again_later_in_the_turn_counts_at_its_first_place():
    driver = driver_around(Kept)
    first, bad = Tick(), NotAnInput()
    with pytest.raises(DriverStopped):
        driver.turn([first, bad, Tick(), bad])
    assert driver.node.kept == [first, bad] and driver.inputs == 2


def test_a_refused_input_counts_and_so_do_the_rest_of_its_turn():
    driver = driver_around(lambda node: AuthorizedNode(node))
    inputs = [Tick(), Message("d1", "not a protocol message"), Tick()]
    driver.turn(inputs)
    assert driver.refused == {"Message": 1} and driver.inputs == 3


def test_a_turn_whose_layer_rule_broke_counts_none():
    driver = driver_around(TurnRuleBreaks)
    with pytest.raises(DriverStopped, match="a turn of 3 inputs"):
        driver.turn([Tick(), Tick(), Tick()])
    assert driver.inputs == 0

