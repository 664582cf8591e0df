"""A lying coordinator's PREPARE whose spec breaks the rules of a client's spec
(core/node/authority_spec.py): d0 coordinates one step placed on d1, and the PREPARE it
sends d1 is forged on the way; d1 takes its messages through the authority check, as at
the boundary. Without the check, d1's Node raised at the COMMIT (a need naming no step:
its driver stops) or held its slot for a step that never starts (a need on itself, a
cycle, no steps, a held step not in the spec or not placed on d1); with it, the PREPARE
is refused whole (`bad_spec`) and d1 holds nothing, votes nothing, raises nothing."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import pytest
from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.node import Message, Node, Submit, authority_spec
from fedorch.core.node.authority import check
from fedorch.core.node.records import PrepareMsg, Timing, VoteMsg, WfInfo
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import Federation

NAMES = ["d0", "d1"]
WF = "d0.w1"
NOW = 100.0
Forge = Callable[[PrepareMsg], PrepareMsg]


class Checked(Federation):
    """d1 checks what it is sent (refusals kept in `refused`); its PREPARE is forged."""

    def __init__(self, forge: Forge) -> None:
        self.forge = forge
        self.refused: list[Refused] = []
        self.votes: list[VoteMsg] = []
        super().__init__(NAMES, start=NOW)

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]), capacities={"a": 4},
                    timing=Timing(), peers=NAMES, rng=random.Random(NAMES.index(name)),
                    disk=self.disks[name], now=NOW)

    def step(self, name: str, *inputs: object):
        taken = []
        for event in inputs:
            if name == "d1" and isinstance(event, Message):
                msg = self.forge(event.msg) if isinstance(event.msg, PrepareMsg) else event.msg
                event = Message(event.src, msg)
                try:
                    check(self.nodes[name], event.src, msg)
                except Refused as e:
                    self.refused.append(e)
                    continue
            taken.append(event)
        ready = super().step(name, *taken)
        if name == "d1":
            self.votes += [o.msg for o in ready.send_now + ready.send_after_write
                           if isinstance(o.msg, VoteMsg)]
        return ready


def step(sid: str, *needs: str) -> spec_pb2.StepSpec:
    return spec_pb2.StepSpec(id=sid, capability="a", needs=list(needs))


def spec(*steps: spec_pb2.StepSpec) -> spec_pb2.WorkflowSpec:
    return spec_pb2.WorkflowSpec(name="w1", steps=list(steps))


def with_spec(s: spec_pb2.WorkflowSpec, placement: dict[str, str] | None = None,
              held: tuple[tuple[str, str], ...] | None = None) -> Forge:
    def forge(m: PrepareMsg) -> PrepareMsg:
        info = replace(m.info, spec=s, placement=m.info.placement if placement is None
                       else placement)
        return replace(m, info=info, steps=m.steps if held is None else held)
    return forge


def run(forge: Forge) -> Checked:
    """d0 submits one step `s` placed on d1; everything is delivered, then an hour of
    deadlines passes (the coordinator's rounds end, d1's reservation lease would)."""
    f = Checked(forge)
    f.step("d0", Submit(WF, spec(step("s")), placement={"s": "d1"}))
    f.deliver()
    f.run_until(f.now + 3600)
    return f


def test_the_prepare_of_the_spec_signed_is_taken_and_its_step_runs():
    f = run(lambda m: m)
    assert f.refused == []
    assert [run_ for node, run_ in f.started] == [(WF, "s", 1)]


BAD: dict[str, tuple[Forge, str]] = {
    # the Node raised at the COMMIT (building the progress): the driver stops
    "a need naming no step": (with_spec(spec(step("s", "ghost"))), "'ghost' names no step"),
    # the step waits forever, its slot held
    "a step needing itself": (with_spec(spec(step("s", "s"))), "needs itself"),
    "needs in a cycle": (with_spec(spec(step("s", "t"), step("t", "s")),
                                   {"s": "d1", "t": "d1"}, (("s", "a"), ("t", "a"))),
                         "cycle: s -> t -> s"),
    # nothing to run: the slot asked for held forever
    "no steps": (with_spec(spec()), "at least one step"),
    # the held step is not in the spec, or is placed elsewhere: never started here
    "a held step not in the spec": (with_spec(spec(step("s")), None,
                                              (("s", "a"), ("ghost", "a"))),
                                    "holds step 'ghost'"),
    "a held step placed elsewhere": (with_spec(spec(step("s")), {"s": "d0"}),
                                     "placed on 'd0', not here"),
    "a held step placed nowhere": (with_spec(spec(step("s")), {}),
                                   "placed on 'no domain', not here"),
    # harmless at d1 (the last duplicate runs; a placement of no step is not read),
    # refused as a client's spec would be
    "duplicate step ids": (with_spec(spec(step("s"), step("s"))), "duplicate step id 's'"),
    "a placement naming a step not in the spec": (
        with_spec(spec(step("s")), {"s": "d1", "ghost": "d1"}), "places 'ghost'"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_prepare_whose_spec_breaks_the_rules_is_refused_whole(kind):
    forge, why = BAD[kind]
    f = run(forge)  # raised here, at d1's COMMIT, without the check (a need naming no step)
    participant = f.nodes["d1"].participant
    assert participant.holds() == [] and participant.in_use() == {}, participant.holds()
    assert f.votes == [] and WF not in f.nodes["d1"].progress
    assert not any(node == "d1" for node, _ in f.started)
    assert f.refused and {e.reason for e in f.refused} == {"bad_spec"}
    assert all(why in e.detail and f"a PREPARE of {WF} from d0" in e.detail
               for e in f.refused), f.refused[0].detail


def test_the_verdict_on_a_spec_is_kept_once_per_distinct_spec(monkeypatch):
    """`validate_spec` runs once per distinct spec: a spec seen before, good or bad,
    is answered from the memo (the same answer), and the memo stays bounded."""
    monkeypatch.setattr(authority_spec, "_memo", type(authority_spec._memo)())
    calls: list[str] = []
    real = authority_spec.validate_spec
    monkeypatch.setattr(authority_spec, "validate_spec",
                        lambda s, source: (calls.append(s.name), real(s, source))[1])
    good = PrepareMsg(TxInfo(WF, 1, "d0", ("d0", "d1"), ("d0", "d1")), (("s", "a"),),
                      WfInfo(spec(step("s")), {"s": "d1"}, "d0"))
    bad = replace(good, info=replace(good.info, spec=spec(step("s", "s"))))
    for _ in range(3):
        authority_spec.held_here("d1", good, authority_spec.spec_steps(good.info.spec, "good"),
                                 "good")
        with pytest.raises(Refused) as refused:
            authority_spec.spec_steps(bad.info.spec, "bad")
        assert refused.value.reason == "bad_spec" and "needs itself" in refused.value.detail
    assert len(calls) == 2
    for i in range(authority_spec.SPEC_MEMO + 5):
        named = replace(good, info=replace(good.info, spec=spec_pb2.WorkflowSpec(
            name=f"w{i}", steps=[step("s")])))
        authority_spec.spec_steps(named.info.spec, "named")
    assert len(authority_spec._memo) == authority_spec.SPEC_MEMO
