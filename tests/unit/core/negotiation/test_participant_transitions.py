"""Participant core: every (hold state, input) pair, in the h2 style.

Any sequence of PREPARE, reserve, confirm, COMMIT, ABORT, lease expiry, step ends and
workflow ends, with arbitrary payloads and clock jumps, is fed to one participant for
one round. Every input either moves the hold as the module's table says or is refused
with a protocol error and changes nothing; a YES voter is never released by a timer,
a decided round never reserves again, and the slot counts always match the holds.
"""

from __future__ import annotations

from fedorch.core.negotiation import participant as participant_module
from fedorch.core.negotiation.errors import LocalProtocolError, RemoteProtocolError
from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.negotiation.participant import HoldState, Participant
from fedorch.gen.fedorch.v1 import config_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

WF, ROUND = "c.wf", 1
KEY = (WF, ROUND)
LEASE = 10.0
R, PR, CO = HoldState.RESERVED, HoldState.PREPARED, HoldState.COMMITTED

# (state before, input) -> states after (None: no hold); a pair with an empty set, or
# missing, must be refused.
EXPECTED: dict[tuple[HoldState | None, str], set[HoldState | None]] = {
    (None, "prepare"): {PR, None},         # YES, or NO (policy, capacity, round closed)
    (None, "reserve"): {R, None},
    (None, "confirm"): set(),              # our own bug: nothing to confirm
    (None, "commit"): {None},              # only once it committed and finished here
    (None, "abort"): {None},
    (R, "prepare"): {PR, None},            # confirmed now, or its lease had passed
    (R, "reserve"): {R, None},
    (R, "confirm"): {PR, None},
    (R, "commit"): set(),                  # no YES was ever sent
    (R, "abort"): {None},
    (PR, "prepare"): {PR},
    (PR, "reserve"): {PR},
    (PR, "confirm"): {PR},
    (PR, "commit"): {CO},
    (PR, "abort"): {None},
    (CO, "prepare"): {CO},
    (CO, "reserve"): {CO},
    (CO, "confirm"): {CO},
    (CO, "commit"): {CO},
    (CO, "abort"): set(),                  # a coordinator contradicting itself
    (None, "expire"): {None},
    (R, "expire"): {R, None},              # none once its lease has passed
    **{(s, "expire"): {s} for s in (PR, CO)},
    **{(s, "step_ended"): {s} for s in (None, R, PR)},
    (CO, "step_ended"): {CO, None},        # none once its last step ended
    **{(s, "release_workflow"): {s} for s in (None, R, PR)},
    (CO, "release_workflow"): {None},
}
REFUSED_AS = {"confirm": LocalProtocolError}

TX = TxInfo(WF, ROUND, "c", ("c", "me"), ("c", "me"))
steps_of = st.sampled_from([[("s1", "cap")], [("s1", "cap"), ("s2", "cap")],
                            [("s1", "cap"), ("s2", "cap"), ("s3", "cap")], []])
prepare_args = st.fixed_dictionaries({
    "coordinator": st.sampled_from(["c", "c", "stranger"]),
    "steps": steps_of,
    "tx": st.sampled_from([None, None, TX, TxInfo(WF, 2, "c", ("c", "me"), ("c", "me"))]),
})
inputs = st.one_of(
    st.tuples(st.sampled_from(["prepare", "reserve"]), prepare_args),
    st.tuples(st.sampled_from(["confirm", "commit", "abort", "expire", "release_workflow"]),
              st.none()),
    st.tuples(st.just("step_ended"), st.sampled_from(["s1", "s2", "s3", "s9"])),
)
jumps = st.sampled_from([0.0, 1.0, LEASE / 2, LEASE + 1])
# What a well-behaved coordinator sends, so that sequences reach every hold state often.
fitting = st.tuples(st.sampled_from([0.0, 0.0, 1.0, LEASE + 1]), st.sampled_from([
    *[(kind, {"coordinator": "c", "steps": [("s1", "cap"), ("s2", "cap")], "tx": tx})
      for kind in ("prepare", "reserve") for tx in (None, TX)],
    ("confirm", None), ("commit", None), ("commit", None), ("abort", None),
    ("step_ended", "s1"), ("step_ended", "s2"), ("expire", None),
]))


def make() -> Participant:
    policy = config_pb2.Policy(accept_from=["c"])
    return Participant("me", policy, {"cap": 2}, lease_s=LEASE, query_interval_s=5.0)


def feed(p: Participant, now: float, kind: str, arg) -> None:
    if kind in ("prepare", "reserve"):
        call = p.prepare if kind == "prepare" else p.reserve
        call(now, workflow_id=WF, round=ROUND, data_labels={}, **arg)
    elif kind == "confirm":
        p.confirm_yes(now, KEY)
    elif kind in ("commit", "abort"):
        p.decide(now, WF, ROUND, kind == "commit")
    elif kind == "expire":
        p.expire(now)
    elif kind == "step_ended":
        p.step_ended(WF, arg)
    else:
        p.release_workflow(WF)


def _snapshot(p: Participant):
    h = p.hold(KEY)
    return (None if h is None else (h.state, list(h.steps), h.lease_expires), p.in_use())


@settings(max_examples=500, deadline=None)
@given(steps=st.lists(st.tuples(jumps, inputs), min_size=1, max_size=10)
       | st.lists(fitting, min_size=1, max_size=10))
def test_every_state_and_input_moves_as_the_table_says_or_is_refused(steps) -> None:
    p = make()
    now = 0.0
    closed = False  # the round was decided, expired or refused here
    for jump, (kind, arg) in steps:
        now += jump
        hold = p.hold(KEY)
        before = hold.state if hold is not None else None
        snapshot = _snapshot(p)
        allowed = EXPECTED[(before, kind)]
        try:
            feed(p, now, kind, arg)
        except (LocalProtocolError, RemoteProtocolError) as e:
            assert isinstance(e, REFUSED_AS.get(kind, RemoteProtocolError)), (before, kind, e)
            assert _snapshot(p) == snapshot, (before, kind)
            continue
        after = p.hold(KEY)
        state = after.state if after is not None else None
        assert state in allowed, (before, kind, arg, state)
        if before is None and kind in ("prepare", "reserve") and closed:
            assert state is None, "a decided round reserved again"
        if before is not None and state is None or p.status(KEY) == "refused" or (
                before is None and kind == "abort"):
            closed = True
        used = sum(len(h.steps) for h in p.holds())
        assert sum(p.in_use().values()) == used
        if kind == "expire":  # every lease that passed has ended, and only those
            assert all(h.lease_expires > now for h in p.holds() if h.state is R)
            assert state is not None or before is not R or hold.lease_expires <= now


def test_the_decision_table_covers_every_hold_state() -> None:
    assert set(participant_module._DECIDE) == {
        (s, commit) for s in (None, R, PR, CO) for commit in (True, False)}
