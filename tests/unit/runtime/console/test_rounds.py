"""A node-engine workflow's rounds on the console (runtime/console/rounds.py): read from
this domain's `decision` audit records, each YES of a COMMIT's certificate shown only
once it checks as its voter's signed vote of that workflow and round."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from types import SimpleNamespace

from fedorch.core.node.votes import seal_votes, stand_in_signer, stand_in_verify, vote_statement
from fedorch.runtime.console import views
from fedorch.runtime.console.app import make_templates
from fedorch.runtime.console.rounds import decided_rounds

from tests.unit.runtime.console.test_views import FIRST, AuditStore, node_agent


@dataclass(frozen=True)
class Record:
    """A stored audit record as store.audit_records reads it back."""

    seq: int
    kind: str
    body: bytes
    hash: bytes = bytes(32)

    def decoded(self) -> dict:
        return json.loads(self.body)


def _yes(domain: str, workflow: str = FIRST, round_: int = 1, signer: str = "") -> str:
    [raw] = seal_votes(stand_in_signer(signer or domain),
                       [vote_statement((workflow, round_), domain, True)])
    return base64.b64encode(raw).decode()


def _decision(round_: int, outcome: str, votes: list[str] | None, seq: int = 1) -> Record:
    certificate = {"round": round_, "votes": votes} if votes is not None else None
    data = {"round": round_, "outcome": outcome, "reason": "", "certificate": certificate}
    return Record(seq, "decision", json.dumps({"time_ms": 1, "data": data}).encode())


def test_a_commits_voters_are_those_whose_signed_yes_checks():
    votes = [_yes("d2"), _yes("d0"), _yes("d1"),
             _yes("d1", signer="d0"),  # d0 speaking for d1: not d1's vote
             _yes("d1", round_=2),  # another round's
             _yes("d1", workflow="d0.other"),  # another workflow's
             "not base64!", base64.b64encode(b"\x00\x01junk").decode(), 7]
    records = [Record(1, "submitted", b'{"data": {}}'), _decision(1, "COMMIT", votes, 2),
               _decision(2, "ABORT", None, 3)]
    rounds = decided_rounds(records, FIRST, stand_in_verify)
    assert set(rounds) == {1, 2}
    assert (rounds[1].outcome, rounds[1].on_record, rounds[1].voters) == (
        "COMMIT", len(votes), ["d0", "d1", "d2"])
    assert (rounds[2].outcome, rounds[2].on_record, rounds[2].voters) == ("ABORT", 0, [])
    # With a verifier that trusts nobody, no vote is shown.
    nobody = decided_rounds(records, FIRST, lambda *_: False)
    assert nobody[1].voters == [] and nobody[1].on_record == len(votes)


class DecisionStore(AuditStore):
    def __init__(self, records: list[Record]) -> None:
        self.records = records

    async def audit_records(self, workflow_id: str) -> list:
        return self.records if workflow_id == FIRST else []


async def test_the_page_shows_the_commit_round_with_its_verified_voters_and_their_steps():
    agent = node_agent()
    agent.store = DecisionStore([_decision(1, "COMMIT", [_yes("d0"), _yes("d1"),
                                                         _yes("d2", signer="d1")])])
    agent.trust = SimpleNamespace(verify=lambda d, data, sig, evidence: (
        evidence and stand_in_verify(d, data, sig)))
    page = await views.workflow_view(agent, await views.status(agent, FIRST))
    [round_] = page.rounds
    assert (round_.round, round_.outcome, round_.from_audit, round_.votes_on_record) == (
        1, "COMMIT", True, 3)
    assert [(v.domain, v.yes, v.steps) for v in round_.votes] == [
        ("d0", True, ("s0",)), ("d1", True, ("s1",))]
    html = make_templates().get_template("_workflow.html").render(
        w=page, domain="d0", can_write=False)
    assert "in this domain's audit log, with 3 signed YES (2 verified)" in html
    voters = html[html.index('<table class="votes">'):]
    voters = voters[:voters.index("</table>")]
    assert '"vote" data-domain="d0"' in voters and '"vote" data-domain="d1"' in voters
    assert 'data-domain="d2"' not in voters
