"""The authority table: one test per row (the sender with authority passes, one
without is refused with the row's reason), the shared workflow id check, the
bound on accusations and the record's own domain."""

from __future__ import annotations

import random

import pytest
from fedorch.core.identity import authority
from fedorch.core.identity.authority import (
    ACCUSATION_LEAD,
    RULES,
    Facts,
    InvalidWorkflowId,
    Refused,
    accusation_in_reach,
    authorize,
    check_workflow_id,
    coordinator_of,
    record_is_own,
)
from fedorch.core.negotiation.errors import RemoteProtocolError
from fedorch.core.negotiation.messages import ABORT, Accepted, Ballot, TxInfo
from fedorch.core.negotiation.termination import Termination

WF = "acme.eu.0123456789abcdef0123"  # coordinator "acme.eu"
TX = dict(workflow_id=WF, acceptors=("acme.eu", "beta", "gamma"),
          participants=("beta", "gamma"))

# kind -> (sender with authority, facts), (sender without, facts), the refusal's reason
ROWS = {
    "prepare": (("acme.eu", Facts(workflow_id=WF)),
                ("acme", Facts(workflow_id=WF)), "not_coordinator"),
    "cancel": (("acme.eu", Facts(workflow_id=WF)),
               ("mallory", Facts(workflow_id=WF)), "not_coordinator"),
    "decision_notice": (("gamma", Facts(**TX)), ("mallory", Facts(**TX)), "not_party"),
    "decision_query": (("mallory", Facts(workflow_id=WF)),
                       ("mallory", Facts(workflow_id="acme.eu.a\nb")), "bad_workflow_id"),
    "step_result": (("beta", Facts(workflow_id=WF, named="beta", placed_on="beta")),
                    ("mallory", Facts(workflow_id=WF, named="mallory", placed_on="beta")),
                    "not_step_domain"),
    "paxos_prepare": (("gamma", Facts(coordinator="acme.eu", **TX)),
                      ("mallory", Facts(coordinator="acme.eu", **TX)), "not_proposer"),
    "paxos_accept": (("acme.eu", Facts(coordinator="acme.eu", **TX)),
                     ("mallory", Facts(coordinator="acme.eu", **TX)), "not_proposer"),
    "paxos_promise": (("beta", Facts(named="beta", **TX)),
                      ("mallory", Facts(named="mallory", **TX)), "not_acceptor"),
    "paxos_accepted": (("gamma", Facts(named="gamma", **TX)),
                       ("mallory", Facts(named="mallory", **TX)), "not_acceptor"),
    "paxos_reject": (("acme.eu", Facts(named="acme.eu", **TX)),
                     ("mallory", Facts(named="gamma", **TX)), "impersonation"),
    "decision_ack": (("beta", Facts(**TX)), ("mallory", Facts(**TX)), "not_participant"),
    "vote": (("beta", Facts(named="beta", **TX)), ("mallory", Facts(named="mallory", **TX)),
             "not_participant"),
    "decision_answer": (("acme.eu", Facts(**TX)), ("mallory", Facts(**TX)), "not_party"),
    "swim": (("beta", Facts()), ("beta", Facts(workflow_id="..")), "bad_workflow_id"),
    "takeover_claim": (("beta", Facts(workflow_id=WF, epoch=1, **{
        k: v for k, v in TX.items() if k != "workflow_id"})),
                       ("mallory", Facts(workflow_id=WF, epoch=1, **{
                           k: v for k, v in TX.items() if k != "workflow_id"})),
                       "not_participant"),
    "takeover_answer": (("beta", Facts(workflow_id=WF)),
                        ("beta", Facts(workflow_id="a.\x00")), "bad_workflow_id"),
    # A record naming acme.eu, signed with beta's key: beta speaks for itself only.
    "key_record": (("beta", Facts(named="beta")), ("beta", Facts(named="acme.eu")),
                   "impersonation"),
}


# The kinds the Node's table checks (core/node/authority.py): its negotiation
# messages (Paxos Commit's among them) and its progress messages.
NODE_KINDS = frozenset({
    "prepare", "vote", "decision_notice", "decision_query", "decision_answer",
    "paxos_prepare", "paxos_accept", "paxos_promise", "paxos_accepted", "paxos_reject",
    "decision_ack", "step_result", "cancel", "takeover_claim", "takeover_answer"})


def test_every_kind_checked_has_one_row_and_one_test():
    # and membership's claims, and the key records every envelope may carry
    assert set(RULES) == NODE_KINDS | {"swim", "key_record"}
    assert set(ROWS) == set(RULES)


# What only the older engine's peer RPCs carried (Batch, Compensate and its answer, a
# round stated on its own for Paxos takeover claims): no row, so no sender passes.
@pytest.mark.parametrize("kind", ["batch", "compensate", "compensation_result", "round_tx"])
def test_a_kind_of_the_older_engine_has_no_row(kind):
    with pytest.raises(Refused) as refused:
        authorize(kind, "acme.eu", Facts(workflow_id=WF))
    assert refused.value.reason == "unknown_kind"


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_row(kind):
    (good, good_facts), (bad, bad_facts), reason = ROWS[kind]
    assert authorize(kind, good, good_facts) is RULES[kind]
    with pytest.raises(Refused) as refused:
        authorize(kind, bad, bad_facts)
    assert refused.value.reason == reason


def test_a_kind_without_a_row_is_refused():
    with pytest.raises(Refused) as refused:
        authorize("ack", "beta", Facts())
    assert refused.value.reason == "unknown_kind"


def test_a_transaction_naming_another_coordinator_than_its_id_is_refused():
    with pytest.raises(Refused) as refused:
        authorize("paxos_accept", "mallory", Facts(workflow_id=WF, coordinator="mallory"))
    assert refused.value.reason == "foreign_workflow"


def test_a_prefix_of_the_coordinator_is_not_the_coordinator():
    # "acme" is a prefix of "acme.eu"; the id's coordinator is what rpartition says.
    assert coordinator_of(WF) == "acme.eu"
    for kind in ("prepare", "cancel"):
        with pytest.raises(Refused):
            authorize(kind, "acme", Facts(workflow_id=WF))
    with pytest.raises(Refused):
        authorize("prepare", "mallory", Facts(workflow_id="mallory.eu-west.abc"))


@pytest.mark.parametrize("good", [WF, "d0.w1", "eu-west.0193ab12cd34ef567890", "a.b_c-D"])
def test_well_formed_ids_pass(good):
    assert check_workflow_id(good) == good


@pytest.mark.parametrize("bad", [
    "", "nodot", ".abc", "eu-west.", "eu-west.../etc", "eu-west.a/../b", "eu-west.a\x00b",
    "eu-west.a\nb", "eu-west.abc\n", "Eu-West.abc", "eu-west.a b", "eu-west." + "a" * 65,
    "x" * 64 + ".a", None, 7,
])
def test_malformed_ids_are_refused(bad):
    with pytest.raises(InvalidWorkflowId):
        check_workflow_id(bad)
    with pytest.raises(InvalidWorkflowId):  # a second time too: nothing bad is kept
        check_workflow_id(bad)
    if bad is not None and not isinstance(bad, int):
        with pytest.raises(Refused) as refused:
            authorize("decision_query", "acme.eu", Facts(workflow_id=bad))
        assert refused.value.reason == "bad_workflow_id"


def test_the_ids_kept_as_well_formed_stay_bounded_and_hold_only_good_ones(monkeypatch):
    kept: dict[str, None] = {}
    monkeypatch.setattr(authority, "_WELL_FORMED", kept)
    monkeypatch.setattr(authority, "WELL_FORMED_KEPT", 4)
    for n in range(10):
        assert check_workflow_id(f"acme.eu.wf{n}") == f"acme.eu.wf{n}"
        assert len(kept) <= 4
        assert f"acme.eu.wf{n}" in kept
    for bad in ("eu-west.a/../b", "nodot", "eu-west.a\nb"):
        with pytest.raises(Refused):
            authorize("decision_query", "acme.eu", Facts(workflow_id=bad))
    assert all(check_workflow_id(wf) == wf for wf in kept)
    assert not any("/" in wf or "\n" in wf or "." not in wf for wf in kept)

    class Odd(str):  # a str subclass is checked every time, never kept
        pass

    assert check_workflow_id(Odd("acme.eu.odd")) == "acme.eu.odd"
    assert "acme.eu.odd" not in kept


def test_an_unhashable_workflow_id_is_refused_as_malformed():
    with pytest.raises(Refused) as refused:
        authorize("decision_query", "acme.eu", Facts(workflow_id=["acme.eu.x"]))
    assert refused.value.reason == "bad_workflow_id"


def test_accusations_are_bounded_by_what_the_subject_published():
    assert accusation_in_reach(5, 5) and accusation_in_reach(5 + ACCUSATION_LEAD, 5)
    assert not accusation_in_reach(6 + ACCUSATION_LEAD, 5)
    assert not accusation_in_reach(2**63 - 2, 1_700_000_000_000)
    assert not accusation_in_reach(1, None)  # about a member never heard from


def test_a_record_speaks_only_for_its_own_domain():
    assert record_is_own("vault", "vault")
    assert not record_is_own("mallory", "vault")


def test_termination_counts_no_outsider_towards_a_majority():
    """Two outsiders' Accepted(ABORT) in one ballot would be a majority of three; they
    are refused and the participant stays in doubt."""
    tx = TxInfo(WF, 1, "acme.eu", ("beta", "gamma"), ("acme.eu", "beta", "gamma"))
    term = Termination("beta", rng=random.Random(1), query_timeout_s=1, query_interval_s=1,
                       resend_s=1, backoff_s=1)
    term.track(0.0, tx, lease_expires=10.0)
    for outsider in ("mallory", "eve"):
        with pytest.raises(RemoteProtocolError):
            term.receive(0.5, Accepted(tx.key, Ballot(1, outsider), outsider, ABORT))
    assert term.next_actions() == [] and term.in_doubt() == [tx.key]
    term.receive(0.6, Accepted(tx.key, Ballot(1, "gamma"), "gamma", ABORT))
    term.receive(0.7, Accepted(tx.key, Ballot(1, "gamma"), "acme.eu", ABORT))
    assert [type(a).__name__ for a in term.next_actions()] == ["Learned"]


def test_one_prepare_at_the_top_of_the_range_cannot_exhaust_the_ballots():
    from fedorch.core.identity.authority import BALLOT_LEAD, ballot_in_reach
    from fedorch.core.negotiation.acceptor import Acceptor
    from fedorch.core.negotiation.messages import PaxosPrepare, Promise, Reject
    from fedorch.core.negotiation.termination import Proposer

    assert ballot_in_reach(BALLOT_LEAD, 0) and not ballot_in_reach(BALLOT_LEAD + 1, 0)
    tx = TxInfo(WF, 1, "acme.eu", ("beta", "gamma"), ("acme.eu", "beta", "gamma"))
    acceptor = Acceptor("gamma")
    with pytest.raises(RemoteProtocolError):
        acceptor.receive("beta", PaxosPrepare(tx, Ballot(2**64 - 1, "beta")))
    assert acceptor.record(tx.key) is None and acceptor.next_actions() == []
    acceptor.receive("beta", PaxosPrepare(tx, Ballot(3, "beta")))  # an honest step is taken
    assert acceptor.record(tx.key).promised == Ballot(3, "beta")
    # A proposer does not climb to a promise nobody could have asked for.
    proposer = Proposer("beta", tx, preferred=ABORT, rng=random.Random(1), resend_s=1,
                        backoff_s=1)
    proposer.start(0.0)
    proposer.next_actions()
    first = proposer.ballot
    proposer.receive(0.1, Reject(tx.key, first, "gamma", Ballot(2**64 - 1, "gamma")))
    proposer.receive(0.2, Promise(tx.key, first, "gamma", None, None))
    proposer.receive(0.3, Promise(tx.key, first, "acme.eu", None, None))
    assert proposer.ballot == first and proposer.phase.value == "phase2"


# ---- coordinator epochs (takeover) -------------------------------------------------------

def _refused(kind: str, sender: str, facts: Facts) -> str:
    with pytest.raises(Refused) as refused:
        authorize(kind, sender, facts)
    return refused.value.reason


def test_an_end_of_a_lower_epoch_than_the_one_held_is_refused():
    # The original coordinator, back after beta took over in epoch 1.
    assert _refused("cancel", "acme.eu", Facts(workflow_id=WF, epoch=0,
                                               held=(1, "beta"))) == "stale_epoch"


def test_an_end_of_the_held_epoch_comes_only_from_its_holder():
    facts = Facts(workflow_id=WF, epoch=1, held=(1, "beta"), participants=("beta", "gamma"))
    assert authorize("cancel", "beta", facts) is RULES["cancel"]
    assert _refused("cancel", "gamma", facts) == "not_coordinator"


def test_an_end_of_a_later_epoch_comes_only_from_a_participant():
    facts = Facts(workflow_id=WF, epoch=2, held=(1, "beta"), participants=("beta", "gamma"))
    assert authorize("cancel", "gamma", facts) is RULES["cancel"]
    assert _refused("cancel", "mallory", facts) == "not_participant"


def test_epoch_zero_is_the_coordinator_the_id_names():
    assert _refused("cancel", "beta", Facts(workflow_id=WF, epoch=0)) == "not_coordinator"
    assert _refused("takeover_claim", "beta", Facts(workflow_id=WF, epoch=0)) == "stale_epoch"


def test_only_the_original_coordinator_asks_about_epoch_zero():
    # Its ask before a re-placement round (round_mandate.py): "do you still hold epoch 0
    # for me?". Whether it takes part is not asked of it: it coordinates.
    ask = Facts(workflow_id=WF, epoch=0, participants={"beta", "gamma"})
    assert authorize("takeover_claim", "acme.eu", ask) is RULES["takeover_claim"]
    assert _refused("takeover_claim", "gamma", ask) == "stale_epoch"
    # A later epoch is claimed by participants only, the original coordinator included.
    later = Facts(workflow_id=WF, epoch=1, participants={"beta", "gamma"})
    assert _refused("takeover_claim", "acme.eu", later) == "not_participant"


# ---- a successor's PREPARE (epoch certificates) --------------------------------------------

def test_a_prepare_of_a_later_epoch_needs_its_certificate_to_name_the_sender():
    # Before the certificate is verified (the Node's first look): not refused yet.
    assert authorize("prepare", "beta", Facts(workflow_id=WF, epoch=1)) is RULES["prepare"]
    certified = Facts(workflow_id=WF, epoch=1, certified=(1, "beta"))
    assert authorize("prepare", "beta", certified) is RULES["prepare"]
    # A certificate of another coordinator, or of another epoch, proves nothing for beta.
    assert _refused("prepare", "beta", Facts(workflow_id=WF, epoch=1,
                                             certified=(1, "gamma"))) == "not_coordinator"
    assert _refused("prepare", "beta", Facts(workflow_id=WF, epoch=2,
                                             certified=(1, "beta"))) == "not_coordinator"
    # Without a certificate (epoch 0) only the coordinator the id names.
    assert _refused("prepare", "beta", Facts(workflow_id=WF)) == "not_coordinator"
    # The original coordinator, once it won a later epoch (it claims past a holder gone
    # in its view), shows its certificate as any holder does; another's proves nothing.
    assert authorize("prepare", "acme.eu", Facts(workflow_id=WF, epoch=2,
                                                 certified=(2, "acme.eu"))) is RULES["prepare"]
    assert _refused("prepare", "acme.eu", Facts(workflow_id=WF, epoch=2,
                                                certified=(2, "beta"))) == "not_coordinator"


def test_a_certified_prepare_below_the_epoch_held_is_refused():
    held = dict(workflow_id=WF, held=(2, "gamma"))
    assert _refused("prepare", "beta", Facts(epoch=1, certified=(1, "beta"),
                                             **held)) == "stale_epoch"
    assert _refused("prepare", "beta", Facts(epoch=2, certified=(2, "beta"),
                                             **held)) == "not_coordinator"
    assert authorize("prepare", "gamma", Facts(epoch=2, certified=(2, "gamma"),
                                               **held)) is RULES["prepare"]
    assert authorize("prepare", "beta", Facts(epoch=3, certified=(3, "beta"),
                                              **held)) is RULES["prepare"]

