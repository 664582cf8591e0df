"""Classic 2PC on real agents: a participant in doubt whose coordinator died before
deciding learns ABORT from the participant that voted NO.

Three agents: c coordinates and runs nothing, p1 and p2 each run one step
(`negotiation.commit: 2pc`). p2's policy takes c's work only for a principal nobody
submits as (`accept_from: [{domain: c, principals: [nobody]}]`; which principal submitted
is weighed when p2 votes, not when c places), so it votes NO on c's round naming that
rule: a COMMIT needs its YES, so the round can only abort, and p2 keeps its NO as the round's ABORT
(agent/core/node/no_votes.py). The schedule, set up with signals and checked rather
than assumed:

1. p2 is stopped before the submission, so c waits for its vote; once p1 voted YES
   (its hold PREPARED on disk) p1 is SIGKILLed and c stopped;
2. p2 is resumed: it votes NO on the PREPARE c sent it, into a coordinator that cannot
   read it, and writes that NO as the round's ABORT;
3. c is SIGKILLed (never restarted): nobody ever decided the round, and p1 holds its
   YES with no decision. p1 restarts: in doubt, its coordinator DEAD in its view, it
   asks the other participant too (cooperative termination) and p2 answers ABORT from
   its NO. p1 releases its hold and never runs its step.

Without the NO on record p1 would stay in doubt, its slot held, for as long as c
stays dead: classic 2PC blocks (tests/integration/test_nonblocking.py).
"""

from __future__ import annotations

import signal

import pytest

from tests.integration.durable_facts import (
    held_slots,
    learned_outcomes,
    prepared_here,
    started_attempts,
)
from tests.integration.federation import (
    TEST_TIMINGS,
    Federation,
    holds,
    started_federation,
    wait_for,
)

pytestmark = pytest.mark.integration

LEASE_S = TEST_TIMINGS["negotiation"]["lease_s"]
# Long enough that c still waits for p2's vote however long the schedule keeps p2 stopped.
PREPARE_TIMEOUT_S = 20
ATTEMPTS = 4
WORK = [{"name": "nb.work", "capacity": 2, "executor": {"type": "builtin", "name": "echo"}}]
SPEC = """
name: no-voter
steps:
  - id: a
    capability: nb.work
    constraints: {domains: [p1]}
  - id: b
    capability: nb.work
    constraints: {domains: [p2]}
"""


def _domains() -> dict[str, dict]:
    negotiation = {**TEST_TIMINGS["negotiation"], "commit": "2pc",
                   "prepare_timeout_s": PREPARE_TIMEOUT_S}
    domains = {name: {"negotiation": negotiation,
                      "capabilities": [] if name == "c" else WORK}
               for name in ("c", "p1", "p2")}
    domains["p2"]["policy"] = {"accept_from": [{"domain": "c", "principals": ["nobody"]}]}
    return domains


def _aborts(fed: Federation, name: str, wid: str) -> bool:
    return [o for _, o in learned_outcomes(fed, name, wid)] == ["ABORT"]


async def _undecided_with_p1_in_doubt(fed: Federation) -> str:
    """Steps 1-2 of the header, returned with c stopped and p1 dead holding its YES:
    the workflow's id. Set up again with a new workflow when p2 never had the PREPARE
    (it stayed in c's lane while p2 was stopped) or c read p2's NO before it stopped."""
    for _ in range(ATTEMPTS):
        fed.signal("p2", signal.SIGSTOP)
        wid = await fed.submit("c", SPEC)
        assert await holds(lambda wid=wid: prepared_here(fed, "p1", wid), 20, "p1's YES")
        fed.kill("p1")  # it dies holding its YES
        fed.signal("c", signal.SIGSTOP)
        fed.signal("p2", signal.SIGCONT)
        # Votes are counted once durable; p2 votes on nothing else.
        if await holds(lambda: fed.metric("p2", "fedorch_votes_total", vote="no") >= 1,
                        20, "p2's NO"):
            assert not held_slots(fed, "p2", wid)  # a NO holds nothing
            return wid
        # p2 never had the PREPARE: let c end the round and bring p1 back for the next try.
        fed.signal("c", signal.SIGCONT)
        await fed.close_channels()
        await fed.start("p1")
        await fed.wait_state("c", wid, deadline_s=2 * PREPARE_TIMEOUT_S + 20)
    raise AssertionError(f"p2 never voted on its PREPARE in {ATTEMPTS} attempts")


async def test_a_participant_in_doubt_learns_abort_from_the_no_voter(tmp_path):
    async with started_federation(tmp_path, _domains()) as fed:
        wid = await _undecided_with_p1_in_doubt(fed)
        fed.kill("c")  # stopped, it never read p2's NO: nobody decided the round
        assert prepared_here(fed, "p1", wid) and learned_outcomes(fed, "p1", wid) == []
        await fed.close_channels()
        await fed.start("p1")

        async def p1_learned_abort():
            return _aborts(fed, "p1", wid)

        await wait_for(p1_learned_abort, 6 * LEASE_S, "p1 to learn ABORT without c")

        async def released():
            return not held_slots(fed, "p1", wid)

        await wait_for(released, 4 * LEASE_S, "p1 to release its hold")
        assert _aborts(fed, "p2", wid)  # its NO, on record as the round's ABORT
        assert started_attempts(fed, "p1", wid) == []
        assert started_attempts(fed, "p2", wid) == []
        # p2 answered from its NO, and says so on its metrics endpoint.
        assert fed.metric("p2", "fedorch_in_doubt_answers_from_no_total") >= 1
