"""The Node's authority table (core/node/authority.py), for end notices of a workflow
taken over: whose end a member takes, and the one stale end it only acknowledges; and
the workflow data a message carries: a step's outputs that are not JSON data, and a
PREPARE's spec whose params are not a JSON object."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest
from fedorch.core.identity.authority import Refused
from fedorch.core.negotiation.messages import TxInfo
from fedorch.core.node.authority import check
from fedorch.core.node.records import (
    ClaimMsg,
    FinalMsg,
    PlacedMsg,
    PrepareMsg,
    ResultMsg,
    WfInfo,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import spec_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.runtime import node_values

WF = "co.w1"  # coordinated by co; a and b run its steps


def member(*, ended: bool, held: tuple[int, str] = (2, "b"),
           proof: tuple | None = None) -> SimpleNamespace:
    """A participant that follows `held` (epoch 2, b's) and has or has not ended WF
    (with `proof`: the later end's proof it keeps, EndNotices.end_proof)."""
    info = WfInfo(spec_pb2.WorkflowSpec(), {"s1": "a", "s2": "b", "s3": "c"}, "co")
    state = SimpleNamespace(rows={}, info={(WF, 1): info}, committed={WF: 1},
                            epochs={WF: held}, granted={}, placements={},
                            final={WF: WorkflowState.SUCCEEDED}
                            if ended else {})
    # It keeps no proof of a later epoch's end (EndNotices.end_proof).
    end_notices = SimpleNamespace(end_proof=lambda wf: proof)
    return SimpleNamespace(name="a", state=state, votes=None, end_notices=end_notices)


def stale_end(**fields) -> FinalMsg:
    """c's end in epoch 1 (its claim lost to b's epoch 2), told on as an Announce."""
    return FinalMsg(WF, WorkflowState.SUCCEEDED, epoch=1, **fields)


def test_a_stale_end_from_a_participant_is_taken_once_the_workflow_ended_here():
    """Only to be acknowledged: refused, it would come again until forgotten."""
    check(member(ended=True), "c", stale_end())


def test_a_stale_end_is_refused_while_the_workflow_runs_here():
    with pytest.raises(Refused) as refused:
        check(member(ended=False), "c", stale_end())
    assert refused.value.reason == "stale_epoch"


def test_a_stale_end_that_claims_more_than_an_end_is_refused():
    """A certificate would be acted on: the stale sender has no say."""
    with pytest.raises(Refused):
        check(member(ended=True), "c", stale_end(won=True))


def test_a_stale_settled_end_is_let_through_only_to_be_acknowledged():
    """`settled` is let through, never acted on (EndNotices.on_final leaves it out for
    an overtaken epoch: test_authority_ends_settled_stale.py); refused, the original
    coordinator, a participant too, resent its settled end for ever (takeover soak seed
    222000312)."""
    check(member(ended=True), "c", stale_end(settled=True))


def test_a_stale_end_from_outside_the_workflow_is_refused():
    with pytest.raises(Refused):
        check(member(ended=True), "mallory", stale_end())


def test_the_holders_end_is_taken_and_anothers_in_its_epoch_refused():
    check(member(ended=False), "b", FinalMsg(WF, WorkflowState.SUCCEEDED, epoch=2))
    with pytest.raises(Refused) as refused:
        check(member(ended=False), "c", FinalMsg(WF, WorkflowState.SUCCEEDED, epoch=2))
    assert refused.value.reason == "not_coordinator"


def test_a_stale_differing_end_reaches_a_member_keeping_the_later_ends_proof():
    """The original coordinator back (epoch 0, its own verdict's FAILED) after b ended
    the workflow SUCCEEDED in epoch 2: let through to be answered with b's end and its
    proof (EndNotices.answer_overtaken), never taken; without a proof kept, to be
    answered with the later epoch and its holder (EndNotices.show_later_epoch: takeover
    soak seed 101830); refused from a domain outside the workflow, and from a
    participant (its same end is taken only to be acknowledged, above)."""
    told = FinalMsg(WF, WorkflowState.FAILED)
    proof = (2, "b", ("b's certificate",))
    check(member(ended=True, proof=proof), "co", told)
    check(member(ended=True), "co", told)
    with pytest.raises(Refused):
        check(member(ended=True, proof=proof), "mallory", told)
    with pytest.raises(Refused):
        check(member(ended=True), "c", FinalMsg(WF, WorkflowState.FAILED, epoch=1))


def new_domain_placed_over() -> SimpleNamespace:
    """n, committed by its own re-placement round 2 of s2 (lost with b), whose placement
    is over already: the record names the later round 3's (s2 on x, lost with n)."""
    info = WfInfo(spec_pb2.WorkflowSpec(), {"s1": "a", "s2": "n", "s3": "c"}, "co",
                  lost="b")
    state = SimpleNamespace(rows={}, info={(WF, 2): info}, committed={WF: 2},
                            epochs={}, granted={}, placements={WF: {"s2": (3, "x", "n")}},
                            earlier_domains={}, final={})
    return SimpleNamespace(state=state, votes=None,
                           end_notices=SimpleNamespace(end_proof=lambda wf: None))


def test_a_new_domain_takes_the_end_of_the_domain_its_own_round_replaced():
    """b, lost, is a participant there as everywhere (its round's `lost`): b's end in
    the epoch it won is taken, not refused for ever while n holds its reservation
    (2PC takeover soak seed 4920613); a domain outside the workflow is still refused."""
    check(new_domain_placed_over(), "b", FinalMsg(WF, WorkflowState.FAILED, epoch=1))
    with pytest.raises(Refused) as refused:
        check(new_domain_placed_over(), "mallory", FinalMsg(WF, WorkflowState.FAILED,
                                                            epoch=1))
    assert refused.value.reason == "not_participant"


def lost_domain_that_yielded(granted: tuple[int, str] | None) -> SimpleNamespace:
    """b, the domain WF's only step ran on, back after co placed that step again on n
    (a placement b refused, having claimed epoch 1 itself: placed_here.py); denied by
    co, which granted n epoch 1, b yielded to n (`granted`: takeover_split.py)."""
    info = WfInfo(spec_pb2.WorkflowSpec(), {"s1": "b"}, "co")
    state = SimpleNamespace(rows={}, info={(WF, 1): info}, committed={WF: 1},
                            epochs={} if granted is None else {WF: granted},
                            granted={} if granted is None else {WF: granted},
                            placements={}, final={})
    return SimpleNamespace(state=state, votes=None,
                           end_notices=SimpleNamespace(end_proof=lambda wf: None))


def test_a_claim_of_the_rival_granted_here_is_let_through():
    """b's placement of n never came, yet b yielded to n: n's claim reaches b's core
    (which grants it again), or n never wins the epoch b and co hold for it and the
    workflow waits for ever (2PC takeover soak seed 9100469). One from a domain b never
    granted is still refused as no party."""
    check(lost_domain_that_yielded((1, "n")), "n", ClaimMsg(WF, 1, None))
    for granted, claimant in (((1, "n"), "mallory"), (None, "n")):
        with pytest.raises(Refused) as refused:
            check(lost_domain_that_yielded(granted), claimant, ClaimMsg(WF, 1, None))
        assert refused.value.reason == "not_participant"


def placed_again_twice(*, ended: bool, plan_open: bool = False) -> SimpleNamespace:
    """co, the coordinator, placed s2 again on n (lost with b), then on x (lost with
    n), then on y (lost with x): the placement kept names only the latest, y's, and no
    list of the earlier domains is on record (none is carried where a placement was
    learned from a peer that keeps none), so n is named nowhere here; co has or has
    not ended WF (a saga plan open or not)."""
    info = WfInfo(spec_pb2.WorkflowSpec(), {"s1": "a", "s2": "b"}, "co")
    state = SimpleNamespace(rows={WF: SimpleNamespace(info=info)}, info={}, committed={},
                            epochs={}, granted={}, placements={WF: {"s2": (8, "y", "x")}},
                            earlier_domains={},
                            final={WF: WorkflowState.SUCCEEDED} if ended else {})
    plans = SimpleNamespace(plan_open=lambda wf: plan_open)
    return SimpleNamespace(state=state, votes=None, compensating=SimpleNamespace(plans=plans),
                           end_notices=SimpleNamespace(end_proof=lambda wf: None))


def test_a_claim_of_a_workflow_ended_here_is_let_through_to_be_answered_with_its_end():
    """n, back, holds its round's reservation and claims epoch 1 (co silent to it, cut
    off); it refused co's tell of the step's move, an older epoch's than its claim
    (placed_here.py). Refused as no party, it never learned co's end and held its
    reservation for ever (2PC takeover soak seed 65000697): ended here, the claim
    reaches the claim core, which answers with the end and grants nothing. While WF
    runs here, or its saga plan is open (a claim may then be granted), n is refused."""
    check(placed_again_twice(ended=True), "n", ClaimMsg(WF, 1, None))
    for node in (placed_again_twice(ended=False), placed_again_twice(ended=True,
                                                                     plan_open=True)):
        with pytest.raises(Refused) as refused:
            check(node, "n", ClaimMsg(WF, 1, None))
        assert refused.value.reason == "not_participant"


def test_acknowledgements_are_checked_each_by_its_rule_and_refused_alone():
    """An `Acks` input (check_acks): the ones in the sender's own name are kept, in
    order; one in another's name, or no acknowledgement at all, is refused alone."""
    from fedorch.core.negotiation.messages import DecisionAck
    from fedorch.core.node.authority import check_acks
    from fedorch.core.node.coordinator_timers import Coordinators
    from fedorch.core.node.records import AckMsg
    node = SimpleNamespace(coordinators=Coordinators())  # coordinates no workflow of these
    own = (AckMsg(("final", WF, "a")), DecisionAck((WF, 1), "a"))
    assert check_acks(node, "a", own) == (own, [])
    forged = (AckMsg(("final", WF, "b")), DecisionAck((WF, 1), "b"), stale_end())
    kept, refused = check_acks(node, "a", (forged[0], own[0], forged[1], own[1], forged[2]))
    assert kept == own
    assert [r.reason for r in refused] == ["impersonation", "impersonation", "not_an_ack"]


def new_domain_that_granted(granted: tuple[int, str]) -> SimpleNamespace:
    """n, the new domain of s2 (lost with b), its re-placement round 2 not learned
    committed here (a YES held), which granted `granted` as an acceptor of round 1."""
    info = WfInfo(spec_pb2.WorkflowSpec(), {"s2": "n"}, "co", lost="b")
    state = SimpleNamespace(rows={}, info={(WF, 2): info}, committed={}, epochs={},
                            granted={WF: granted}, placements={}, final={})
    return SimpleNamespace(name="n", state=state, votes=None,
                           end_notices=SimpleNamespace(end_proof=lambda wf: None))


def test_a_new_domain_that_granted_a_later_epoch_refuses_the_originals_end():
    """co's end (its loss verdict, told before it is made) reaches n after n granted
    epoch 1 to b: taken, it is an end b's grants never showed it; b drives on, handing
    s2 over to n, which has ended the workflow and never runs it, RUNNING for ever
    (takeover soak seed 10000987). n's own claim of epoch 1, not yet won, holds no
    epoch: co's end is still taken."""
    told = FinalMsg(WF, WorkflowState.FAILED)
    with pytest.raises(Refused) as refused:
        check(new_domain_that_granted((1, "b")), "co", told)
    assert refused.value.reason == "stale_epoch"
    check(new_domain_that_granted((1, "n")), "co", told)


def test_a_later_epochs_end_is_taken_from_its_proven_holder_unknown_here():
    """n, a new domain this member never learned of (it refused the placement, told in
    an older epoch than b's, which it granted: placed_here.py), won epoch 3 and ended
    the workflow: its end, with the certificate that proves n won epoch 3, is taken,
    or this member, back as a lost domain and asking b (which answers no more, having
    granted epoch 3), holds its step for ever (takeover soak seed 114857). Without the
    certificate, or with one that does not hold, n is still no participant here."""
    told = FinalMsg(WF, WorkflowState.SUCCEEDED, epoch=3, won=("n's certificate",))

    def proven(wf: str, epoch: int, holder: str, certificate: tuple) -> bool:
        return (wf, epoch, holder, certificate) == (WF, 3, "n", ("n's certificate",))

    check(member(ended=False), "n", told, proven_epoch=proven)
    for src, msg in (("n", FinalMsg(WF, WorkflowState.SUCCEEDED, epoch=3)),
                     ("mallory", told)):
        with pytest.raises(Refused) as refused:
            check(member(ended=False), src, msg, proven_epoch=proven)
        assert refused.value.reason == "not_participant"


def test_a_later_epochs_end_is_taken_from_the_original_that_won_it_placing_no_step():
    """co, the original coordinator, placing no step, claimed past b's epoch 1 (b gone
    in its view: takeover_overtaken.py), won epoch 2 and cancelled the workflow: its end
    with the certificate is taken by a member that follows b's epoch 1, which never
    learned of epoch 2 otherwise, or that member keeps its reservation for ever
    (takeover soak seed 117530). Without the certificate, co is no participant here."""
    told = FinalMsg(WF, WorkflowState.CANCELLED, epoch=2, won=("co's certificate",))

    def proven(wf: str, epoch: int, holder: str, certificate: tuple) -> bool:
        return (wf, epoch, holder, certificate) == (WF, 2, "co", ("co's certificate",))

    check(member(ended=False, held=(1, "b")), "co", told, proven_epoch=proven)
    with pytest.raises(Refused) as refused:
        check(member(ended=False, held=(1, "b")), "co",
              FinalMsg(WF, WorkflowState.CANCELLED, epoch=2), proven_epoch=proven)
    assert refused.value.reason == "not_participant"


def new_domain_committed_after_granting(granted: dict) -> SimpleNamespace:
    """n, committed by co's re-placement round 2 of s1 (lost with b), which granted
    co's claim of epoch 2 as an acceptor before that round reached it (`granted`
    only: it follows no coordinator, `epochs` is empty)."""
    info = WfInfo(spec_pb2.WorkflowSpec(), {"s1": "n"}, "co", lost="b")
    state = SimpleNamespace(rows={}, info={(WF, 2): info}, committed={WF: 2}, epochs={},
                            granted=granted, placements={}, final={})
    return SimpleNamespace(name="n", state=state, votes=None,
                           end_notices=SimpleNamespace(end_proof=lambda wf: None))


def test_the_end_of_the_epoch_granted_here_is_taken_from_its_holder():
    """co, the original coordinator back and acting in epoch 2 past b, is no
    participant of n's round: its end was refused for ever, unacknowledged, and co held
    it, RUNNING (takeover soak seed 115316). The epoch granted here to co makes co its
    holder; the end of an epoch granted to another, or none, is still refused."""
    told = FinalMsg(WF, WorkflowState.SUCCEEDED, epoch=2)
    check(new_domain_committed_after_granting({WF: (2, "co")}), "co", told)
    for granted in ({WF: (2, "b")}, {WF: (1, "co")}, {}):
        with pytest.raises(Refused) as refused:
            check(new_domain_committed_after_granting(granted), "co", told)
        assert refused.value.reason == "not_participant"


def new_domain_of_the_successors_round(granted: tuple[int, str]) -> SimpleNamespace:
    """n, committed by b's re-placement round of s2 (lost with co, the original
    coordinator, which ran it): b won epoch 1 with n's grant (`granted`), and n
    follows no coordinator yet (`epochs` is empty: a new domain's round writes none)."""
    info = WfInfo(spec_pb2.WorkflowSpec(), {"s1": "b", "s2": "n"}, "co", lost="co")
    state = SimpleNamespace(rows={}, info={(WF, 1048576): info}, committed={WF: 1048576},
                            epochs={}, granted={WF: granted}, placements={}, final={})
    return SimpleNamespace(name="n", state=state, votes=None,
                           end_notices=SimpleNamespace(end_proof=lambda wf: None))


def test_a_new_domain_committed_after_granting_a_later_epoch_refuses_the_originals_end():
    """co, back, tells its loss verdict's end (epoch 0, told before it is made) to n,
    committed by b's round after granting b epoch 1: taken, n ended the workflow and
    cancelled s2, while b, acting in epoch 1, waited for s2 for ever (takeover soak seed
    18300721). A grant is a promise, committed here or not: refused as stale. b's end
    of its epoch is taken. With n's own claim of epoch 1, not won, co's end is refused
    too: told and never made, co voids it once it grants a later claim, and n made it
    its own at once (takeover soak seed 28000322)."""
    told = FinalMsg(WF, WorkflowState.FAILED)
    with pytest.raises(Refused) as refused:
        check(new_domain_of_the_successors_round((1, "b")), "co", told)
    assert refused.value.reason == "stale_epoch"
    check(new_domain_of_the_successors_round((1, "b")), "b",
          FinalMsg(WF, WorkflowState.SUCCEEDED, epoch=1))
    with pytest.raises(Refused) as refused:
        check(new_domain_of_the_successors_round((1, "n")), "co", told)
    assert refused.value.reason == "stale_epoch"


def _result(outputs: dict) -> ResultMsg:
    return ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, outputs, "")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs=node_values.not_json_outputs)
def test_a_result_whose_outputs_are_not_json_data_is_refused_from_its_own_domain(outputs):
    """The checked decoding lets any dict through as `outputs`; the table refuses one
    that is not JSON data (`not_json`), even from the domain the step is placed on,
    which has authority over its result."""
    with pytest.raises(Refused) as refused:
        check(member(ended=False), "a", _result(outputs))
    assert refused.value.reason == "not_json"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs=node_values.json_outputs)
def test_a_result_of_json_outputs_from_its_domain_is_taken(outputs):
    check(member(ended=False), "a", _result(outputs))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outputs=node_values.not_json_outputs)
def test_a_placement_handing_over_outputs_that_are_not_json_data_is_refused(outputs):
    """A new placement told by the workflow's coordinator carries the outputs of the
    steps the new domain needs (`needs`): the same rule."""
    good = PlacedMsg(WF, "s2", "n", 1, "b", needs=(("s1", 1, {"rows": 3}),))
    check(member(ended=False), "co", good)
    with pytest.raises(Refused) as refused:
        check(member(ended=False), "co",
              replace(good, needs=(*good.needs, ("s3", 1, outputs))))
    assert refused.value.reason == "not_json"


def _spec(params: list[str], bad: str, at: int, compensation: bool) -> spec_pb2.WorkflowSpec:
    """Steps s0.. with `params`, and `bad` put at step `at` (its compensation's params
    with `compensation`)."""
    steps = [spec_pb2.StepSpec(id=f"s{i}", capability="a", params_json=p)
             for i, p in enumerate(params)]
    step = steps[at % len(steps)]
    if compensation:
        step.compensate.capability = "a.undo"
        step.compensate.params_json = bad
    else:
        step.params_json = bad
    return spec_pb2.WorkflowSpec(name="w1", steps=steps)


def _prepare(spec: spec_pb2.WorkflowSpec) -> PrepareMsg:
    tx = TxInfo(WF, 1, "co", ("co", "a"), ("co", "a"))
    return PrepareMsg(tx, (("s0", "a"),), WfInfo(spec, {"s0": "a"}, "co"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=st.lists(node_values.json_params, min_size=1, max_size=3),
       bad=node_values.not_json_params, at=st.integers(0, 2), compensation=st.booleans())
def test_a_prepare_whose_spec_has_params_that_are_not_a_json_object_is_refused(
        params, bad, at, compensation):
    """From the workflow's own coordinator (who has authority over its PREPARE, and
    signed its own spec): params a participant could not read (its Node would raise at
    the COMMIT, building the workflow's progress) refuse the PREPARE whole (`not_json`);
    the same spec with good params passes."""
    good = _spec(params, params[at % len(params)], at, compensation)
    check(member(ended=False), "co", _prepare(good))
    with pytest.raises(Refused) as refused:
        check(member(ended=False), "co", _prepare(_spec(params, bad, at, compensation)))
    assert refused.value.reason == "not_json"
    assert f"step 's{at % len(params)}': params" in refused.value.detail
