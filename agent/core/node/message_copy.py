"""A message sent reliably, as a generation of its own (Node.reliable, pending.py).

`with_gen(msg, gen)` is `dataclasses.replace(msg, gen=gen)`, flattened: it runs for
every result, end notice and compensation sent reliably (several per workflow), and
replace asks each field by getattr while the frozen dataclass's __init__ stores each
through object.__setattr__, some twenty calls a message, where a copy of the
instance's dict is two. The copy is replace's result exactly for a frozen dataclass
whose every field is an __init__ argument and that has no __post_init__ and no
__slots__ (nothing is computed at construction, every field is in the dict); any other
class goes through replace itself.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from typing import Any

# Classes `with_gen` may copy by their instance dict: frozen dataclasses whose every
# field is an __init__ argument, with no __post_init__ and no __slots__ (True), or not
# (False: dataclasses.replace). Worked out once per class.
_COPIED_BY_DICT: dict[type, bool] = {}


def with_gen(msg: Any, gen: int) -> Any:
    """`dataclasses.replace(msg, gen=gen)` (see the header)."""
    cls = msg.__class__
    by_dict = _COPIED_BY_DICT.get(cls)
    if by_dict is None:
        by_dict = _COPIED_BY_DICT[cls] = is_dataclass(cls) and (
            not hasattr(cls, "__post_init__") and not hasattr(cls, "__slots__")
            and all(f.init for f in fields(cls)) and "gen" in {f.name for f in fields(cls)})
    if not by_dict:
        return replace(msg, gen=gen)
    new = object.__new__(cls)
    state = new.__dict__
    state.update(msg.__dict__)
    state["gen"] = gen
    return new
