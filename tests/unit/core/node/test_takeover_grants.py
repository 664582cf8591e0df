"""Epoch certificates of the node engine (core/node/takeover_grants.py, `check`): d0's
workflow, its electorate the committed round's acceptors d0, d1 and d2; d3 is a
participant beyond `max_acceptors`, no member, and may claim and win."""

from __future__ import annotations

from fedorch.core.node.takeover_grants import check, sign_grant

from tests.unit.core.node.test_takeover import fake_signer, fake_verify

WF = "d0.w"
ELECTORATE = ("d0", "d1", "d2")


def grants(holder: str, *granters: str, electorate=ELECTORATE) -> tuple:
    return tuple(sign_grant(fake_signer(g), g, WF, 1, holder, electorate)
                 for g in granters)


def test_a_majoritys_grants_to_a_participant_outside_the_electorate_prove_its_epoch(
) -> None:
    """Where the checker knows the electorate, a majority of its members' grants of
    epoch 1 to d3 proves d3 won it, as d3's claim won on them (takeover soak seed
    8302142: refused everywhere, a rival claimant of that epoch never followed d3,
    and both drove the saga)."""
    assert check(grants("d3", "d1", "d2"), fake_verify, workflow_id=WF, epoch=1,
                 holder="d3", known=ELECTORATE) is None


def test_outside_the_electorate_the_rest_of_the_rule_stands() -> None:
    """A minority, or its own grant not counted, proves nothing; nor does another
    electorate than the one held; a checker that does not know the electorate still
    asks the holder to be a member (a majority is then two signers, one not it)."""
    for cert in (grants("d3", "d1"), grants("d3", "d1", "d3")):
        assert check(cert, fake_verify, workflow_id=WF, epoch=1, holder="d3",
                     known=ELECTORATE) is not None
    other = grants("d3", "d1", "d2", electorate=("d0", "d1", "d2", "d9"))
    assert check(other, fake_verify, workflow_id=WF, epoch=1, holder="d3",
                 known=ELECTORATE) is not None
    assert "lacks" in (check(grants("d3", "d1", "d2"), fake_verify, workflow_id=WF,
                             epoch=1, holder="d3") or "")
    assert check(grants("d1", "d1", "d2"), fake_verify, workflow_id=WF, epoch=1,
                 holder="d1") is None
