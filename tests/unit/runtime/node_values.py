"""Hypothesis strategies for every value a Node keeps in its tables or sends, and a
structural comparison that sees every field (`same`).

`TABLE_ROWS` has one (key, value) strategy per `Disk` table (a set table: its item,
value None); `MESSAGES` one strategy per message a Node sends.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math

from fedorch.core.negotiation.acceptor import AcceptorRecord
from fedorch.core.negotiation.messages import (
    Accept,
    Accepted,
    AnswerStatus,
    Ballot,
    Decision,
    DecisionAck,
    DecisionAnswer,
    DecisionQuery,
    PaxosPrepare,
    Promise,
    Reject,
    TxInfo,
    Value,
    VoteIn,
)
from fedorch.core.negotiation.participant import Hold, HoldState
from fedorch.core.node.records import (
    AckMsg,
    ClaimAnswerMsg,
    ClaimMsg,
    CompensatedMsg,
    CompensateMsg,
    CompRow,
    CoordRow,
    FinalMsg,
    PlacedMsg,
    PlacementAnswer,
    PlacementQuery,
    PrepareMsg,
    ResultMsg,
    VoteMsg,
    WfInfo,
)
from fedorch.core.node.takeover_grants import SignedGrant, StatedRound
from fedorch.core.workflow import values as jsonv
from fedorch.core.workflow.acceptor_grant import Round
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2
from google.protobuf.message import Message as ProtoMessage
from hypothesis import strategies as st

text = st.text(max_size=8)  # any code points, lone surrogates included
names = st.sampled_from(["d0", "d1", "d2"]) | text
wf_ids = st.text(min_size=1, max_size=10)
keys = st.tuples(wf_ids, st.integers(0, 2**40))
ints = st.integers(-(2**62), 2**62)
floats = st.floats(allow_nan=False)  # NaN is never equal to itself; inf is kept
name_tuples = st.lists(names, max_size=4).map(tuple)

ballots = st.builds(Ballot, st.integers(0, 99), names)
vote_ins = st.builds(VoteIn, st.integers(0, 9), names, st.booleans(), text,
                     st.binary(max_size=24))
values = st.builds(Value, st.booleans(), st.lists(vote_ins, max_size=3).map(tuple))
# With the coordinator's signature of the round (`round_tx`, compare=False), which a
# PREPARE's transaction and every hold made of it carry (takeover_proofs.py).
# With its creation time (`created_ms`: 0, not stated, or its coordinator's wall ms).
txs = st.builds(TxInfo, wf_ids, st.integers(1, 9), names, name_tuples, name_tuples,
                round_tx=st.binary(max_size=64),
                created_ms=st.just(0) | st.integers(1, 2**50))
acceptor_records = st.builds(AcceptorRecord, txs, st.none() | ballots, st.none() | ballots,
                             st.none() | values, st.none() | values)
holds = st.builds(Hold, wf_ids, st.integers(0, 9), names, st.sampled_from(HoldState),
                  st.lists(st.tuples(text, text), max_size=3), floats, names, floats,
                  st.none() | txs)
specs = st.builds(
    lambda name, steps, data: spec_pb2.WorkflowSpec(
        name=name, data=data,
        steps=[spec_pb2.StepSpec(id=s, capability=c) for s, c in steps]),
    text, st.lists(st.tuples(text, text), max_size=3),
    st.dictionaries(text, text, max_size=2))
signed_specs = st.none() | st.builds(
    lambda p, r, at, c: spec_pb2.SignedSpec(principal=p, request_id=r, issued_at_ms=at,
                                            coordinator=c, public_key=b"k" * 32),
    text, text, st.integers(0, 2**50), names)
stated_rounds = st.none() | st.builds(StatedRound, names, st.binary(max_size=40),
                                      st.binary(max_size=64))
wf_infos = st.builds(WfInfo, specs, st.dictionaries(text, names, max_size=3), names,
                     signed_specs, stated_rounds, names, name_tuples)
rows = st.builds(CoordRow, wf_ids, wf_infos, st.sampled_from(WorkflowState),
                 st.integers(0, 9), name_tuples, st.booleans(), st.booleans(), text,
                 st.integers(0, 2**50))
json_values = st.recursive(
    st.none() | st.booleans() | ints | floats | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8)
outputs = st.dictionaries(text, json_values, max_size=3)
# What core/workflow/values.py takes as JSON data (`outputs` above reaches past it on
# purpose, for the codec: infinities and lone surrogates), and values that are not JSON
# data but that the checked decoding lets through inside a step's `outputs` dict: a
# lying domain's (core/node/authority.py refuses them, `not_json`).
json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
strict_json_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False, allow_infinity=False)
    | json_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(json_text, inner, max_size=3),
    max_leaves=8)
json_outputs = st.dictionaries(json_text, strict_json_values, max_size=3)


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


not_json_values = st.one_of(
    st.binary(max_size=8),
    st.sampled_from([math.nan, math.inf, -math.inf]),
    st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3),  # lone surrogates
    st.dictionaries(ints | st.booleans() | st.none() | st.binary(max_size=3),
                    strict_json_values, min_size=1, max_size=2),  # keys that are no str
    st.sets(ints, max_size=2) | st.frozensets(json_text, max_size=2),
    st.integers(0, 3).map(lambda extra: _nested(65 + extra)),  # past values.MAX_DEPTH
)
# Outputs with one bad value put at any place of good ones.
not_json_outputs = st.builds(
    lambda good, key, path, bad: {**good, key: _at(path, bad)},
    json_outputs, json_text, st.lists(st.sampled_from(["list", "dict"]), max_size=3),
    not_json_values)


def _at(path: list[str], value: object) -> object:
    for kind in reversed(path):
        value = [value] if kind == "list" else {"k": value}
    return value


def _no_json_object(text: str) -> bool:
    try:
        jsonv.loads_object(text)
    except jsonv.JsonValueError:
        return True
    return False


# A step's params as a spec carries them (`params_json`, canonical JSON text of an
# object), and text a lying coordinator could put there that no participant reads as
# one (core/node/authority.py refuses its PREPARE, `not_json`): no JSON, JSON that is
# no object, NaN or an infinity, an integer of more digits than Python reads, nesting
# past values.MAX_DEPTH.
json_params = json_outputs.map(lambda params: jsonv.dumps(params) if params else "")
not_json_params = st.one_of(
    json_text.filter(lambda text: text != "" and _no_json_object(text)),  # "" is {}
    strict_json_values.filter(lambda v: not isinstance(v, dict)).map(jsonv.dumps),
    st.builds(lambda key, constant: f"{{{json.dumps(key)}:{constant}}}",
              json_text, st.sampled_from(["NaN", "Infinity", "-Infinity"])),
    st.integers(5000, 6000).map(lambda digits: '{"n":' + "1" * digits + "}"),
    st.integers(0, 3).map(lambda extra: '{"x":' + json.dumps(_nested(65 + extra)) + "}"),
)


# A step's result (attempt, state, outputs, error): one row of the results table, keyed
# (workflow, step) (core/node/ready.py, RecordedResults).
results = st.tuples(st.integers(0, 5), st.sampled_from(StepState), outputs, text)
rounds = st.builds(Round, st.integers(0, 9), st.frozensets(names, max_size=3),
                   st.frozensets(names, max_size=3),
                   st.sampled_from([None, "COMMIT", "ABORT"]))
runs = st.tuples(wf_ids, text, st.integers(0, 5))
signed_grants = st.builds(SignedGrant, names, st.binary(max_size=40), st.binary(max_size=64))
certificates = st.lists(signed_grants, max_size=3).map(tuple)

# Steps placed again, as grants and placement answers carry them: (step, epoch,
# domain, lost).
placed_steps = st.lists(st.tuples(text, st.integers(0, 2**40), names, names),
                        max_size=3).map(tuple)
# (step, the domains it was placed on before, oldest first) of each (PlacedMsg.before).
earlier_steps = st.lists(st.tuples(text, name_tuples), max_size=3).map(tuple)

# A saga's plan (FinalMsg.owed, the `plans` table): (step, domain, max attempts).
owed_steps = st.lists(st.tuples(text, names, st.integers(1, 5)), max_size=3).map(tuple)

TABLE_ROWS = {
    "rows": st.tuples(wf_ids, rows),
    "cells": st.tuples(keys, values),
    "records": st.tuples(keys, values),
    "learned": st.tuples(keys, values),
    "acceptor": st.tuples(keys, acceptor_records),
    "holds": st.tuples(keys, holds),
    "info": st.tuples(keys, wf_infos),
    "committed": st.tuples(wf_ids, st.integers(0, 9)),
    "runs": st.tuples(runs, st.none()),
    "results": st.tuples(st.tuples(wf_ids, text), results),
    "final": st.tuples(wf_ids, st.sampled_from(WorkflowState)),
    "final_acked": st.tuples(wf_ids, st.sets(names, max_size=3)),
    "ballots": st.tuples(keys, ballots),
    "epochs": st.tuples(wf_ids, st.tuples(st.integers(0, 9), names)),
    "granted": st.tuples(wf_ids, st.tuples(st.integers(0, 9), names)),
    "certificates": st.tuples(wf_ids, st.tuples(st.integers(0, 9), certificates)),
    # A late grant's granter -> the epoch its end was told in.
    "late_grants": st.tuples(wf_ids, st.dictionaries(names, st.integers(1, 9), min_size=1,
                                                     max_size=3)),
    "end_proofs": st.tuples(wf_ids, st.tuples(st.integers(1, 9), names, certificates)),
    # A claim withdrawn: its epoch; and the members' signed grants of a claim held.
    "withdrawn": st.tuples(wf_ids, st.integers(1, 9)),
    "claim_grants": st.tuples(wf_ids, st.tuples(st.integers(1, 9), certificates)),
    "end_reasons": st.tuples(wf_ids, text),
    "drivers_before": st.tuples(wf_ids, names),
    "electorates": st.tuples(wf_ids, name_tuples),
    "admitted": st.tuples(st.binary(max_size=32), st.tuples(wf_ids, st.integers(0, 2**50))),
    "endings": st.tuples(wf_ids, st.integers(0, 2**50)),
    "settled": st.tuples(wf_ids, st.none()),
    # A coordinator -> the newest creation time (wall ms) of its rounds forgotten here.
    "horizons": st.tuples(names, st.integers(0, 2**50)),
    "cancels": st.tuples(wf_ids, text),
    "requests": st.tuples(text, st.tuples(wf_ids, st.integers(0, 2**50))),
    "compensations": st.tuples(st.tuples(wf_ids, text), st.builds(
        CompRow, names, st.integers(1, 5), st.sampled_from(["PENDING", "COMPENSATED"]),
        st.integers(0, 5), text)),
    "comp_runs": st.tuples(st.tuples(wf_ids, text, st.integers(1, 5)), st.tuples(
        st.sampled_from(["running", "succeeded", "failed"]), text, st.booleans())),
    # A step's run in another domain than its first compensation's: (wf, step, domain).
    "extra_compensations": st.tuples(st.tuples(wf_ids, text, names), st.builds(
        CompRow, names, st.integers(1, 5), st.sampled_from(["RUNNING", "COMPENSATED"]),
        st.integers(0, 5), text)),
    # The runs made here that SUCCEEDED: step -> (attempt, placement epoch).
    "succeeded_here": st.tuples(wf_ids, st.dictionaries(
        text, st.tuples(st.integers(1, 5), st.integers(0, 2**40)), min_size=1, max_size=3)),
    # The domain of each SUCCEEDED result held of a compensated step: step -> domain.
    "result_domains": st.tuples(wf_ids, st.dictionaries(
        text, names, min_size=1, max_size=3)),
    "plans": st.tuples(wf_ids, owed_steps),
    # A forgotten workflow's end: (state, epoch held, holder, epoch told or -1, wall ms).
    "ended_records": st.tuples(wf_ids, st.tuples(
        st.sampled_from(WorkflowState), st.integers(0, 9), names, st.integers(-1, 9),
        st.integers(0, 2**50))),
    # A forgotten workflow's end made by a successor: (epoch, holder, certificate).
    "ended_proofs": st.tuples(wf_ids, st.tuples(st.integers(1, 9), names, certificates)),
    # (epoch, domain, lost) of each step placed again, by step.
    "placements": st.tuples(wf_ids, st.dictionaries(
        text, st.tuples(st.integers(0, 2**40), names, names), max_size=3)),
    "replaced_rounds": st.tuples(wf_ids, st.integers(0, 2**40)),
    # The domains each step placed again was placed on before, oldest first, by step.
    "earlier_domains": st.tuples(wf_ids, st.dictionaries(text, name_tuples, max_size=3)),
    # (round, domain, steps, reason) of each refusal the coordinator heard.
    "refusals": st.tuples(wf_ids, st.lists(st.tuples(
        st.integers(1, 9), names, st.lists(text, max_size=3).map(tuple), text),
        max_size=3).map(tuple)),
}

MESSAGES = {
    PrepareMsg: st.builds(PrepareMsg, txs, st.lists(st.tuples(text, text), max_size=3)
                          .map(tuple), wf_infos, st.integers(0, 9), certificates),
    VoteMsg: st.builds(VoteMsg, keys, names, st.booleans(), text, st.binary(max_size=200)),
    ResultMsg: st.builds(ResultMsg, wf_ids, text, st.integers(0, 5),
                         st.sampled_from(StepState), outputs, text, st.integers(0, 2**40),
                         st.binary(max_size=200)),
    PlacedMsg: st.builds(PlacedMsg, wf_ids, text, names, st.integers(0, 2**40), names,
                         st.lists(st.tuples(text, st.integers(0, 5), outputs), max_size=2)
                         .map(tuple), st.lists(names, max_size=3).map(tuple),
                         st.integers(0, 9), certificates, st.booleans(), st.booleans(),
                         name_tuples),
    FinalMsg: st.builds(FinalMsg, wf_ids, st.sampled_from(WorkflowState), st.integers(0, 9),
                        st.booleans(), certificates, owed_steps, st.booleans()),
    ClaimMsg: st.builds(ClaimMsg, wf_ids, st.integers(0, 9), st.none() | rounds,
                        certificates, stated_rounds,
                        st.lists(vote_ins, max_size=3).map(tuple)),
    ClaimAnswerMsg: st.builds(ClaimAnswerMsg, wf_ids, st.integers(0, 9), st.booleans(),
                              st.integers(0, 9), names,
                              st.none() | st.sampled_from(WorkflowState), st.booleans(),
                              certificates, st.none() | signed_grants, placed_steps,
                              earlier_steps),
    PlacementQuery: st.builds(PlacementQuery, wf_ids),
    PlacementAnswer: st.builds(PlacementAnswer, wf_ids, st.integers(0, 9), st.lists(
        st.tuples(text, st.integers(0, 2**40), st.just("") | names), max_size=3).map(tuple),
        placed_steps, earlier_steps),
    CompensateMsg: st.builds(CompensateMsg, wf_ids, text, st.integers(1, 5)),
    CompensatedMsg: st.builds(CompensatedMsg, wf_ids, text, st.integers(1, 5),
                              st.booleans(), text),
    AckMsg: st.builds(AckMsg, st.tuples(text, wf_ids, text, names)
                      | st.tuples(text, wf_ids, names), st.booleans()),
    PaxosPrepare: st.builds(PaxosPrepare, txs, ballots),
    Promise: st.builds(Promise, keys, ballots, names, st.none() | ballots,
                       st.none() | values),
    Accept: st.builds(Accept, txs, ballots, values, st.booleans()),
    Accepted: st.builds(Accepted, keys, ballots, names, values),
    Reject: st.builds(Reject, keys, ballots, names, ballots),
    Decision: st.builds(Decision, keys, values, names, st.booleans(), placed_steps),
    DecisionQuery: st.builds(DecisionQuery, keys, names),
    DecisionAnswer: st.builds(DecisionAnswer, keys, names, st.sampled_from(AnswerStatus),
                              st.none() | values),
    DecisionAck: st.builds(DecisionAck, keys, names),
}


def same(a: object, b: object, where: str = "value") -> None:
    """AssertionError naming the first place where `a` and `b` differ: in type, in any
    field of a dataclass (those left out of its __eq__ too), in the order of a dict's
    keys, or in value."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, dict):
        assert list(map(repr, a)) == list(map(repr, b)), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: length {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, ProtoMessage):
        assert a.SerializeToString(deterministic=True) == \
            b.SerializeToString(deterministic=True), f"{where}: {a} != {b}"
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), f"{where}: NaN != {b}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
        if isinstance(a, (set, frozenset)):
            for x in a:  # equal sets; their items must be of the same types too
                same(x, next(y for y in b if y == x), f"{where}{{{x!r}}}")
        if isinstance(a, enum.Enum):
            assert a.value == b.value
