"""with_gen (message_copy.py): replace(msg, gen=...) by a copy of the instance dict for
the Node's reliable messages, replace itself for any other class."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from fedorch.core.node.message_copy import _COPIED_BY_DICT, with_gen
from fedorch.core.node.records import CompensateMsg, FinalMsg, ResultMsg
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState


def _same(a: object, b: object) -> bool:
    return type(a) is type(b) and all(
        getattr(a, f.name) == getattr(b, f.name) for f in fields(a))  # type: ignore[arg-type]


def test_the_reliable_messages_are_copied_by_their_dict_as_replace_would() -> None:
    msgs = [ResultMsg("c1.w", "a", 2, StepState.SUCCEEDED, {"x": [1]}, "", epoch=3),
            FinalMsg("c1.w", WorkflowState.SUCCEEDED, epoch=1, owed=(("a", "c2", 3),)),
            CompensateMsg("c1.w", "a", 1)]
    for msg in msgs:
        copied = with_gen(msg, 7)
        assert _COPIED_BY_DICT[type(msg)] is True
        assert copied is not msg and msg.gen == 0 and copied.gen == 7
        assert _same(copied, replace(msg, gen=7))


@dataclass(frozen=True)
class _Checked:
    n: int
    gen: int = 0
    seen: list = field(default_factory=list, compare=False)

    def __post_init__(self) -> None:
        self.seen.append(self.gen)


@dataclass(frozen=True)
class _Derived:
    n: int
    gen: int = 0
    twice: int = field(init=False, default=0)


def test_a_class_that_computes_at_construction_goes_through_replace() -> None:
    checked = with_gen(_Checked(1), 5)
    assert checked.seen == [0, 5]  # __post_init__ ran again, as under replace
    assert _COPIED_BY_DICT[_Checked] is False
    assert with_gen(_Derived(1), 2).gen == 2 and _COPIED_BY_DICT[_Derived] is False
