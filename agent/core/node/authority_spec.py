"""The spec a PREPARE carries, checked as a client's spec is, and what it asks held.

Theory of operation
-------------------
A participant reads a PREPARE's spec twice: at the PREPARE it holds a slot for each step
the message names (`steps`), and at the COMMIT it builds the workflow's `Progress`
(core/workflow/progress.py) from the spec and the placement, and starts its steps as
their needs succeed. A coordinator that lies (and signs its own spec, so the submission
check passes) could send a spec that breaks the rules `validate_spec`
(core/workflow/spec.py) enforces on a client's spec, and each break costs the
participant something:

- a need naming no step: the Node raises at the COMMIT (building the progress), after
  its YES, and its driver stops, every other workflow of the agent with it;
- a step that needs itself, or needs in a cycle: the step waits forever, its slot held;
- no steps at all: nothing to run, the slot the PREPARE asked for held forever;
- params that are not a JSON object: the Node raises at the COMMIT (`not_json`);
- a held step not in the spec, or placed on another domain (or nowhere): never started
  here, its slot held forever;
- duplicate step ids, or a placement naming steps not in the spec: harmless here (the
  last of the duplicates is the one run), refused all the same, as a client's would be.

So the PREPARE is refused whole (`bad_spec`, with validate_spec's message; `not_json` for
the params, as before): the spec before the PREPARE's rule (`spec_steps`, as the other
data a message carries), what it asks held here after it (`held_here`: a PREPARE sent
to another domain is refused for who sent it, `bad_certificate` and the like). The
participant holds nothing and votes nothing, and the coordinator's round goes on
without its vote, as after a lost message.

Every PREPARE pays the check, and `validate_spec` costs tens of µs a step, so its
verdict is kept per distinct spec: keyed by the SHA-256 of the spec's serialized bytes
(a liar's 1 MiB specs cost 32 bytes each to remember), in a small LRU of SPEC_MEMO
entries. A PREPARE of a spec seen before pays the serialization, the digest and a look-up
(µs figures in docs/security.md), then the per-message part (held steps against the
spec's steps and the placement), which is a few dictionary look-ups a held step. The
verdict is a function of the bytes alone, so remembering it changes no answer.

Pure: reads the message and the recipient's name; the memo is of a pure function.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any

from fedorch.core.identity.authority import Refused
from fedorch.core.workflow import values
from fedorch.core.workflow.spec import SpecError, validate_spec

__all__ = ["SPEC_MEMO", "held_here", "json_params", "spec_steps"]

SPEC_MEMO = 256  # distinct specs whose verdict is kept (a workflow's rounds share one)

# digest -> (step id -> capability) of a good spec, or (reason, message) of a bad one.
_memo: OrderedDict[bytes, dict[str, str] | tuple[str, str]] = OrderedDict()


def json_params(spec: Any, where: str) -> None:
    """Refused (`not_json`) unless every step's params and its compensation's are a
    JSON object, read as the participant reads them (see the header)."""
    read = values.read_object
    for step in spec.steps:
        try:
            read(step, "params")
            if step.HasField("compensate"):
                read(step.compensate, "params")
        except values.JsonValueError as e:
            raise Refused("not_json", f"{where}, step {step.id!r}: params: {e}") from None


def _verdict(spec: Any) -> dict[str, str] | tuple[str, str]:
    try:
        json_params(spec, "")
    except Refused as e:
        return e.reason, e.detail
    try:
        validate_spec(spec, "spec")
    except SpecError as e:
        return "bad_spec", f": {e}"
    return {step.id: step.capability for step in spec.steps}


def spec_steps(spec: Any, where: str) -> dict[str, str]:
    """The steps (id -> capability) of a PREPARE's spec; Refused (`bad_spec`, or
    `not_json` for params) unless `validate_spec` takes it (see the header)."""
    key = hashlib.sha256(spec.SerializeToString()).digest()
    caps = _memo.get(key)
    if caps is None:
        caps = _memo[key] = _verdict(spec)
        if len(_memo) > SPEC_MEMO:
            _memo.popitem(last=False)
    else:
        _memo.move_to_end(key)
    if isinstance(caps, tuple):
        raise Refused(caps[0], where + caps[1])
    return caps


def held_here(me: str, msg: Any, caps: dict[str, str], where: str) -> None:
    """Refused (`bad_spec`) unless each step the PREPARE `msg` to `me` asks held is a
    step of its spec (`caps`, from `spec_steps`) with its capability, placed on `me`,
    and its placement names the spec's steps only. Checked after the PREPARE's rule:
    one sent to another domain is refused for who sent it, not for this."""
    placement = msg.info.placement
    for step, capability in msg.steps:
        if caps.get(step) != capability:
            raise Refused("bad_spec", f"{where}: holds step {step!r} ({capability}),"
                                      " not a step of its spec")
        if placement.get(step) != me:
            raise Refused("bad_spec", f"{where}: holds step {step!r}, placed on"
                                      f" {placement.get(step, 'no domain')!r}, not here")
    for step in placement:
        if step not in caps:
            raise Refused("bad_spec", f"{where}: places {step!r}, not a step of its spec")
