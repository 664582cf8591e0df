"""Epoch certificates (agent/core/node/takeover_grants.py, `check`): who may hold one.
d0 coordinates; the electorate is the committed round's acceptors, d0, d1 and d2."""

from __future__ import annotations

from fedorch.core.node.takeover_grants import check, sign_grant

from tests.unit.core.node.test_takeover import fake_signer, fake_verify

WF = "d0.w"
ELECTORATE = ("d0", "d1", "d2")


def grants(holder: str, granters: tuple[str, ...], electorate=ELECTORATE) -> tuple:
    return tuple(sign_grant(fake_signer(g), g, WF, 1, holder, electorate) for g in granters)


def why(cert: tuple, holder: str, known=ELECTORATE) -> str | None:
    return check(cert, fake_verify, workflow_id=WF, epoch=1, holder=holder, known=known)


def test_a_participant_outside_the_electorate_that_won_holds_its_certificate() -> None:
    """d3 runs a step but is no acceptor (a participant beyond max_acceptors): it may
    claim, its own grant does not count, the acceptors' do (core/workflow/takeover.py).
    Won with d1's and d2's grants, its certificate proves it everywhere, at a member
    that knows the electorate as at one that does not: else its end notices never
    replace a told end kept elsewhere (takeover soak seed 8450680: a participant kept
    the original's told SUCCEEDED against the FAILED end of epoch 3), and a rival
    claimant of that epoch never follows it (seed 8302142: both drove the saga)."""
    cert = grants("d3", ("d1", "d2", "d3"))  # its own grant with the rest, as a Node's
    assert why(cert, "d3") is None
    assert why(cert, "d3", known=None) is None


def test_a_holder_outside_the_electorate_still_needs_a_majority_of_it() -> None:
    """Its own grant and one elector's are no majority of the electorate; nor do the
    grants of another electorate than the one a member of the workflow holds."""
    assert "majority" in (why(grants("d3", ("d1", "d3")), "d3") or "")
    other = grants("d3", ("d1", "d2"), electorate=("d0", "d1", "d2", "d9"))
    assert "electorate" in (why(other, "d3") or "")
    assert why(grants("liar", ("liar",)), "liar") is not None
    # An electorate that leaves the original coordinator out proves nothing.
    no_original = ("d1", "d2", "d3")
    assert "original" in (why(grants("d3", ("d1", "d2"), no_original), "d3",
                              known=None) or "")
