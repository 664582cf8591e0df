"""Coordinator takeover in the negotiation simulator: targeted schedules and seeded runs.

With `Timing.takeover_after_s` set, every committed workflow whose coordinator dies
(for good, or until it returns) or stalls is taken over by a participant. The checker
adds its invariants (agent/sim/negotiation/check.py): at most one coordinator acts per
workflow and epoch; coordinators of different epochs never end a workflow differently;
every participant ends it as a coordinator did; and a workflow whose coordinator died
for good ends at every live participant within takeover_after_s + DEAD's delay + two
leases after the last fault.
"""

from __future__ import annotations

from collections import Counter

import pytest
from fedorch.core.negotiation.messages import Ballot, PaxosPrepare, TxInfo
from fedorch.core.node.records import ClaimMsg, PrepareMsg
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation import ports
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.disk import Timing
from fedorch.sim.negotiation.run import Simulation, run, seeded_config

WF = "d0.w0"
TAKEOVER = Timing(max_rounds=1, takeover_after_s=3.0)


def scenario(seed: int = 1, timing: Timing = TAKEOVER,
             steps: list[spec_pb2.StepSpec] | None = None,
             placement: dict[str, str] | None = None, cancels: bool = False) -> Simulation:
    """d0 coordinates one workflow of three steps on d1, d2 and d3 (by default s1, then
    s2 and s3); no random faults."""
    names = [f"d{i}" for i in range(4)]
    if steps is None:
        steps = [spec_pb2.StepSpec(id="s1", capability="a"),
                 spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"]),
                 spec_pb2.StepSpec(id="s3", capability="a", needs=["s1"])]
    if placement is None:
        placement = {"s1": "d1", "s2": "d2", "s3": "d3"}
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 4} for n in names},
        workflows=[Workflow(WF, "d0", 1.0, spec_pb2.WorkflowSpec(name="w0", steps=steps),
                            placement)],
        timing=timing,
    )
    return Simulation(seed, config, cancels=cancels)


def at_d0s_first(what: str, verdict: str):
    fired = []

    def hook(agent, now, label):
        if agent.name == "d0" and label == what and not fired:
            fired.append(now)
            return verdict
        return None
    return hook


def ends(sim: Simulation) -> dict[str, object]:
    return {n: a.disk.final.get(WF) for n, a in sim.agents.items()}


def test_a_coordinator_dead_for_good_after_the_commit_is_taken_over() -> None:
    sim = scenario()
    sim.crash_hook = at_d0s_first("step result", "forever")  # a result came: committed
    report = sim.run()
    assert report.violations == [], report.violations
    assert sim.dead_forever == {"d0"}
    assert sim.checker.acting_in == {(WF, 1): "d1"}  # the lowest live participant
    finals = ends(sim)
    assert finals["d0"] is None and finals["d1"] in TERMINAL
    assert finals["d2"] == finals["d3"] == finals["d1"]
    for name in ("d2", "d3"):
        assert sim.agents[name].disk.epochs[WF] == (1, "d1")


def test_a_returning_coordinator_follows_the_successor() -> None:
    sim = scenario()
    sim.crash_hook = at_d0s_first("step result", "crash")  # restarted before chaos_end
    report = sim.run()
    assert report.violations == [], report.violations
    assert sim.checker.acting_in.get((WF, 1)) == "d1", sim.checker.acting_in
    d0 = sim.agents["d0"]
    assert d0.alive and d0.disk.epochs.get(WF) == (1, "d1")
    assert d0.disk.rows[WF].state is sim.agents["d1"].disk.final[WF]
    assert report.stats["old coordinator follows"] >= 1


def test_a_stalled_coordinator_is_taken_over_and_its_late_end_refused() -> None:
    sim = scenario()

    def stall(agent, now, label):
        if agent.name == "d0" and label == "step result" and not agent.paused_until:
            agent.paused_until = now + 30.0  # silent, not dead: SUSPECT until it resumes
        return None
    sim.crash_hook = stall
    report = sim.run()
    assert report.violations == [], report.violations
    assert sim.checker.acting_in.get((WF, 1)) == "d1", sim.checker.acting_in
    assert {ends(sim)[n] for n in ("d1", "d2", "d3")} <= set(TERMINAL)


RUNS = 300


@pytest.mark.parametrize("first", range(0, RUNS, 100))
def test_seeded_runs_with_takeover_hold_every_invariant(first: int) -> None:
    stats: Counter[str] = Counter()
    for seed in range(first, first + 100):
        report = Simulation(seed, seeded_config(seed, takeover_after_s=3.0)).run()
        assert report.violations == [], f"seed {seed}: {report.violations}"
        stats.update(report.stats)
    assert stats["takeover"] > 0  # the random faults do reach the path


# Takeover soak seeds once failing, each mended by a rule of the Node's (its unit test
# names the seed): 8101707, a void loss verdict left on record refused the result of
# the step's new placement (core/node/replacement.py); 8700249, a claimant that told
# on an earlier epoch's end showed no proof of it to the original back (running.py),
# and 8303778, it refused the end's own holder, whose end was never made (the same rule);
# 8101903 and 9600991, a new domain held the lost domain's success of the step placed
# on it and never ran it (placed_here.py); 8102557, the lost domain back, never told of
# the step's new domain, refused that domain's claim as no party after its own claim
# had yielded to it, so nobody could win (core/node/authority.py, as 2PC seed 9100469);
# 10000987, a new domain that had granted the successor its epoch took the original's
# end, void since, and never ran the step handed over to it (core/node/authority.py);
# 10001968, a grant that reached a claimant after its claim was over (its saga plan
# closed) held its granter in that epoch, refusing the end's notices for ever
# (core/node/takeover_claims.py, `_late_grant`); 10002160, two participants' recovery
# ballots, their coordinator dead for good and messages slow, pre-empted each other for
# ten seconds (core/negotiation/proposer.py: the later in turn yields to the earlier);
# 11000176, the original coordinator, restarted while claiming past its dead successor,
# came back acting in the epoch it had only claimed (core/node/takeover.py, "Acting or
# claiming, on restore"; the schedule below); 11001793, a grant that reached a claimant
# before its claim was over (its saga plan closed by the driver's saga-over notice, no
# denial having reached it) held its granter in that epoch for ever, as 10001968 did
# (core/node/takeover_late_grants.py, `plan_closed`). From `make soak`'s takeover range
# (100000-119999), each mended in the core module its commit names: 101675 and 115435
# (a new domain in doubt on a re-placement round takes the end on a member's word,
# replacement_handover.py), 101830 (an original's older-epoch end answered with the later
# epoch where no proof is kept, running_ends.py), 108549 (a claim no live majority could
# grant is denied, takeover_claims.py), 102364 (an elector acknowledges an older epoch's
# tell only of the round it holds, placed_here.py), 114857, 117530 and 103863 (a later
# epoch's end taken on its certificate from a sender not known as a participant) and
# 115316 (the end of the epoch granted here taken from its holder: authority_ends.py),
# 117826 (a relayed result taken over a void loss verdict, running.py), 119616 (a refused
# older-epoch placement still written after a later end, placed_here.py), 116571 (a
# cancel waiting for a COMMIT void before a step starts, cancel.py). From the takeover
# soak past 18000000: 18300721 (a new domain committed by the successor's round, having granted it its
# epoch, took the original's older end: authority_ends.py), 18100834 (the original
# granted a claim while holding an end a member had taken from it: takeover_claims.py),
# 18101218 (a later participant's recovery ballot, its yield over, pre-empted an
# earlier one's ballot slowed by lost messages as it was about to be chosen:
# core/negotiation/proposer.py, the yield lasts the earlier one's two phases each resent
# twice), 20600021 (a successor's made end, with its certificate, still told to an
# extra acceptor keeping the original's told, never made end: takeover_ends.py),
# 20801425 and 21000917 (an acting successor denied on a word of a gone holder's later
# epoch: claims past it, agent/core/workflow/takeover.py), 21200275 (a late SUCCEEDED
# told by a step's lost domain, of its older placement, compensated in its new domain,
# which never ran it: saga_results.py plans it where it ran), 26000884 (a re-placement
# round asked of a claimant before it acted, answered once it acts:
# replacement_handover.py, `asked_early`), 26000081 (a restored coordinator's told
# end sent before the write group noting it, then a crash there: domain_loss.py waits).
# 30000591 and 37000443: the checker, not the core (a successor told its end and died
# for good before making it; the original, following its epoch, forgot the workflow
# without that successor's acknowledgement, which the checker asked for as it counted an
# end made in a later epoch, not one told: check.py).
# 43007752 (a re-placed step's domain, back from a restart, asked an earlier epoch's
# holder, ended with the saga over, which told it nothing: the later driver never
# learned it; restart_check.py, `_tell_end`).
# 43003501 (an acceptor that recovered an aborted round refused the certificate of the
# epoch it granted on the committed round's proof, judged against the aborted round's
# acceptors: takeover.py).
# . From the takeover soak past 28000000: 28000322 (a claimant took the original's loss
# verdict, told and never made, from its notice and made it its own at once; the
# original granted the next claim, whose winner ended the workflow SUCCEEDED: such a
# notice, with no certificate, is refused by a claimant whose claim has not won,
# authority_ends.py).
# 47000184 (a re-placement YES after the original granted a later epoch: ABORTED, replacement.py).
# 52000180 and 111083 (the original's own step, ready and held back by its told cancel, never
# started once the cancel was void by the successor's epoch it granted: cancel.py).
# 109463 (a new domain's run refused for ever by a driver unaware of it: authority_steps.py).
# 60000176 (a planned result, after a restart, not told a later epoch's holder: saga_results.py).
# 68000128 (a claim at a restarted, stalled Node's first SUSPECT, counted from its unknown view).
# 69500487 (a cancel waiting for a COMMIT, its round ended first by a later epoch: cancel.py).
# 66000289 (a cancel waiting for a COMMIT proposed, the later epoch's end taken before the
# COMMIT came, never noted void: cancel.py, `before_start`).
# 64001033 (the story of 68000128: a claim at a restarted, stalled Node's first SUSPECT).
# 84000321 (a certificate holding its own grant judged by an undecided round: takeover.py).
# 84001877 (an older placement's SUCCEEDED acknowledged, never compensated: running.py).
# 89500553 (a need's SUCCEEDED slow to the coordinator, a sibling's RUNNING not heeded: progress.py).
# 87000414 (the original, back, relaying a gone domain's result, refused: authority_steps.py).
# 88000784 (the checker, not the core: a fenced retry's FAILED, never started: check.py).
# 89900214 (87000414's story, the relay met by an end at a participant that ran no step).
# 88000620 (the checker, not the core: a recovery slowed by lost messages: takeover_check.py).
# 92000324 (a paused coordinator's loss verdict before the queued RUNNING: replacement_heard.py).
# 97000669 (the original, acting later, asked of a successor's round: replacement_handover.py).
# 107034 (a re-ask out as its successor won a later epoch: none in it, replacement_successor.py).
# 115458 (an older end at a forgotten member answered from its record: elector_ends.py).
# 109000128 (a step's domain asked a Node whose saga driver was gone: saga_gone_driver.py).
# 117000348 (a successor's told FAILED, its step run since, made SUCCEEDED: takeover_ends.py).
# 118000384 (a new domain's claim denied by the original it claimed past: withdrawn,
# takeover_claiming.py).
# 100010, 110444 (the simulator's, not the core: a client's cancel routed to the lying
# domain, holder of a later epoch, crashed the run: cancels.py).
# 150501078 (an elector holding no step acknowledged a placement it did not write: its
# grant elected a successor that placed a started step again, placed_here.py).
# 154501010 (the original, back from a crash after its successor placed its own step
# elsewhere, started that step before it heard of the later epoch: original_asks.py).
# 102933 (the checker, not the core: a successor's end made late by the network's hits
# on its exchange, each costing one resend at most, the participant's acknowledgements
# held 5.9-11.4 s each: takeover_check.py, `end_hit_cost`). 108589 (a loss verdict told
# to a domain while it was down waited for the 8 s resend once it was back; now told
# again at once when the view sees it ALIVE, told_again.py, and it holds without
# `end_hit_cost`).
# 184001792 (a successor that sent a step back and then followed a later epoch kept it
# unplaced: it told the step's need, run since, to the later holder alone, and the step
# waited for ever at its domain; given back as a restore rebuilds it,
# replacement_epochs.py, `given_back`).
# 220000311 (the original resent its FAILED of epoch 0 for ever to d3, which, ended
# FAILED alike, followed d0 in epoch 1 and answered it with that epoch alone; the answer
# now shows the same end and the original settles its notice: running_ends.py, "The
# same end, shown with a later epoch").
# 222000312 (the original, a participant too, told its FAILED of epoch 0 `settled` to
# the holder of epoch 1, ended FAILED alike, which refused it for that field alone; now
# acknowledged, the field not acted on: authority_ends.py, "Settled"). 222002831 (an
# elector holding no step, keeping epoch 1's CANCELLED with its holder's proof, refused
# that holder's late-grant tell of it, which carries no certificate: authority_ends.py,
# "The same end, its proof kept").
ONCE_FAILING = (8101707, 8700249, 8303778, 8101903, 9600991, 8102557, 10000987, 10001968,
                10002160, 11000176, 11001793, 101675, 115435, 101830, 108549, 102364,
                114857, 117530, 103863, 115316, 117826, 119616, 116571, 18300721, 18100834,
                18101218, 20600021, 20801425, 21000917, 21200275, 26000884, 26000081,
                30000591, 37000443, 43007752, 43003501, 28000322, 47000184,
                52000180, 111083, 109463, 60000176, 68000128, 69500487,
                66000289, 64001033, 84000321, 84001877, 89500553, 87000414,
                88000784, 89900214, 88000620, 92000324, 97000669, 107034,
                115458, 109000128, 117000348, 118000384, 100010, 110444, 150501078,
                154501010, 102933, 108589, 184001792, 220000311, 222000312,
                222002831)


@pytest.mark.parametrize("seed", ONCE_FAILING)
def test_takeover_seeds_once_failing_hold_every_invariant(seed: int) -> None:
    run(seed, takeover_after_s=3.0)  # raises SimulationFailure naming the seed


# Takeover soak seeds once failing with a short retention (`--keep-ended-s 5 --end
# 300`, or 10), no cut one way, each mended by a rule of the Node's: 163301080 (a
# claimant that took the end from a grant told it on without the grant's placements: a
# step's new domain, told nothing, followed a rival claimant that had yielded, and its
# run was never compensated; takeover_claims.py); 94021920 (the original told its end
# on results, SUCCEEDED, to a participant outside the electorate, which acknowledged it
# and died for good, while the original was cut off from the other electors; a
# successor elected by them failed the dead domain's step by its verdict, and the dead
# domain kept the told end, one no coordinator made. A domain outside the electorate
# is told an end once enough electors hold it: domain_loss_audience.py,
# `electors_hold`; it fails without the short retention too); 178300800 (a step's
# domain that followed a later epoch's driver reported its compensation, run for the
# driver before, ahead of its step's SUCCEEDED; the driver, which had planned without
# the step, acknowledged the report, and that acknowledgement, late, ended the resends
# of the answer to the tell the late result brought: the saga stayed RUNNING and the
# domain forgot the workflow. Such a report is not acknowledged until the step joins
# the saga: saga_results.py, `awaited`); 210201673, the checker's own: a re-placement
# round's voter, its coordinator dead for good, released only by the workflow's end,
# which the successor made 0.3 s after its last restart, 19 s after the voter's own;
# the blocking bound counted from the voter's alone (blocking_check.py,
# `successor_calm`). Each: (seed, keep_ended_s, end), None for the soak's own.
ONCE_FAILING_SHORT_RETENTION: tuple[tuple[int, float | None, float | None], ...] = (
    (163301080, 5.0, 300.0), (94021920, 10.0, None), (178300800, 5.0, 300.0),
    (210201673, 5.0, 300.0))


@pytest.mark.parametrize(("seed", "keep_ended_s", "end"), ONCE_FAILING_SHORT_RETENTION)
def test_takeover_seeds_once_failing_with_a_short_retention_hold_every_invariant(
        seed: int, keep_ended_s: float | None, end: float | None) -> None:
    run(seed, takeover_after_s=3.0, keep_ended_s=keep_ended_s,
        end=end)  # raises SimulationFailure naming it


# Takeover soak seeds once failing with the workflows' own rounds in classic 2PC
# (`--commit 2pc`), each mended by a rule of the Node's: 98501711 (a step's lost
# domain, elected for a later epoch, adopted its predecessor's saga plan, made without
# its own SUCCEEDED run of the step, whose report had died with that predecessor: the
# run was never compensated; saga_runs.py, `own_owed`); 158000164 (the original, its
# loss verdict void as it followed a successor, took the lost domain's report of a step
# it held unplaced; placed on it by the successor, it never ran it: placed_here.py,
# `committed_here`); 163201385 (the original, its loss verdict void as it followed a
# successor, took that successor's re-placement of the step from a grant of its own
# later claim, the verdict left on record: driving again, it refused the new domain's
# result as one after a terminal one, the workflow RUNNING for ever; placed_here.py,
# `take`); 165200424 (a claimant of epoch 1, a step's new domain the committed
# placement does not name, told the end on beside the certified winner, which told its
# end again to the committed placement's domains only: never shown the certificate, the
# rival ranked itself better and drove the epoch's saga too; saga_plans.py,
# `tell_end_again`); 167100188 (a claimant took the original's end CANCELLED from a
# denial that carried no placements and told it on without reaching s0's new domain,
# which never reported its SUCCEEDED run to it: the run was never compensated once the
# original had followed it and forgotten the workflow; takeover_claims.py, "Ends in
# denials."); 222100025 (the original, restored, granted the new domain's claim of
# epoch 1 before its retold placement was acknowledged: that round's COMMIT stayed
# with epoch 1's holder, and the workflow's own COMMIT notice to the lost domain, held
# till it left, never went; the lost domain, in doubt, answered every claim "in
# doubt": placed_here.py, `moved_away`).
ONCE_FAILING_CLASSIC = (98501711, 158000164, 163201385, 165200424, 167100188, 222100025)


@pytest.mark.parametrize("seed", ONCE_FAILING_CLASSIC)
def test_takeover_seeds_once_failing_in_classic_2pc_hold_every_invariant(seed: int) -> None:
    run(seed, takeover_after_s=3.0, classic=True)  # raises SimulationFailure naming it


# Takeover soak seeds once failing in classic 2PC with a short retention (`--commit 2pc
# --keep-ended-s 5 --end 300`): 190300049, the checker's: a first round's voter, down
# when its ABORT left and back after its coordinator died for good, could be told it
# only by the one other participant that had learned it (the third had voted NO), down
# for 14 s; its blocking bound counted from its own return alone, and it learned 90 ms
# past it, one query after that participant was back (blocking_check.py, `teller_calm`). Each:
# (seed, keep_ended_s, end).
ONCE_FAILING_CLASSIC_SHORT_RETENTION: tuple[tuple[int, float, float], ...] = (
    (190300049, 5.0, 300.0),)


@pytest.mark.parametrize(("seed", "keep_ended_s", "end"), ONCE_FAILING_CLASSIC_SHORT_RETENTION)
def test_takeover_seeds_once_failing_in_classic_2pc_with_a_short_retention_hold_every_invariant(
        seed: int, keep_ended_s: float, end: float) -> None:
    run(seed, takeover_after_s=3.0, classic=True, keep_ended_s=keep_ended_s,
        end=end)  # raises SimulationFailure naming it


# Takeover soak seeds once failing with a cut one way too (`--one-way`): 128000131,
# mended by a rule of the Node's (a domain that granted a claim for a saga's plan
# followed its holder, which never won and told it the end late; the original's saga,
# started again by that domain's own run of a step placed elsewhere, reaching it late,
# was refused there for ever: saga_unproven_holder.py); 134000369, the checker's own
# (its deadlines counted from before the cut one way healed: Simulation.calm_since);
# 137500119 with a short retention (`--keep-ended-s 5 --end 300`), the checker's own:
# `d1.w2`'s coordinator, its only participant, never heard its extra acceptor accept
# the COMMIT (the cut one way), and was down past the round's life; the acceptors
# refuse its recovery ballots as past it, as designed, so it stays in doubt and its row
# NEGOTIATING (docs/retention.md, "Forgetting acceptor records"), which the terminal
# check now exempts as the others exempt such a voter; 145002563, a Node rule's: its
# coordinator, restored with its wall clock stepped an hour forward, took its round as
# past its life and ran no ballot while every acceptor could still accept it, so stayed
# in doubt with a cancel taken (negotiation_restore.py); 138512237, the checker's (an
# ABORT a recovery chose after the coordinator proposed COMMIT: clock_check.py);
# 140103976, 140100077, 140100809, the Node's (elector_ends.py,
# takeover_late_grants.py, placed_here.py); 148001372, the Node's: the original's ask
# reached an elector that holds no round of it (restart_check.py); 150000018, the
# Node's: the driver a domain followed before it granted the original's later claim
# (saga_unproven_holder.py); 154001212, the Node's: a paused original's round, begun on
# an epoch-0 verdict, committed after it followed the lost domain's later epoch, where
# that domain had run the step (replacement_epochs.py); 158800091, the Node's: the
# original, back, granted a claim after its claimant yielded to a rival that ended the
# workflow on an end it learned, and the claimant answered its asks with nothing
# (takeover_late_grants.py, "A claim yielded to a rival"; 163101876 found the same on
# a fresh range, and again, once a start held asking one holder asked a new holder at
# once: the original, back, claimed epoch 2 past a gone holder and yielded it to a
# rival, and told the granter of its claim the end in epoch 0 only, refused there for
# ever: restart_check.py, ended_records.py, "An original that yielded"); 165402137, the Node's: a claimant not won yet took itself for the
# driver and started a step the original had placed elsewhere (start_asks.py, "A
# claimant drives nothing"); 167000569, the checker's: a cancel waiting on a round
# its coordinator is in doubt about past the round's life, demanded CANCELLED
# (cancel_check.py); 178100853, the Node's: a claim restored after a restart forgot
# the coordinator it claimed past, and waited for that dead one's vote for ever where
# the other live member held a later epoch for it, unproven (takeover_claiming.py,
# "The coordinator claimed past"); 184100747, the Node's: the lost domain, back, told
# its step placed again, dropped its own result of the attempt it had started there (not
# idempotent, judged not started: the need's result it ran on never reached the
# original), and, elected, handed the placement's COMMIT out (placed_here.py, "Started
# here"); 190201851, the Node's: a claimant acknowledged a compensation report it
# could not take yet, and that late acknowledgement cleared the report sent again, under
# the same id, once its claim won: the compensation stayed RUNNING (pending.py,
# "Generations"); 197102921, the Node's: a participant back in doubt (YES voted, the
# decision never heard) took the original's loss-verdict FAILED of epoch 0, never made,
# and refused epoch 1's proven SUCCEEDED as "not committed here yet": it kept FAILED
# (authority_ends.py, told_ends.py); 202101940, the Node's: a claimant that ended on
# an end told on in epoch 1 (its teller dead for good) claimed epoch 2 for its open
# saga plan, and the original, which told that end first and never made it (the
# acknowledgement lost with its crash), denied it with that end while its own notices
# of epoch 0 were answered with the later epoch: RUNNING for ever; the claimant now
# tells the end on in its epoch (takeover_claim_answers.py, "The original's end below
# the epoch followed"); 206402979, the Node's: a participant that never learned a
# step's new domain (down as the tell came, its coordinator then dead for good) had
# granted epoch 1 to a participant that yielded to that domain, and refused its claims
# as no party's for ever (authority_claims.py); 212400209 with a short retention, the
# checker's: a successor back in doubt won epoch 1 and asked its electorate before its
# own steps, its claim and two asks lost on the way, the end made 0.7 s past a deadline
# that counted none of them (takeover_check.py, `TAKEOVER_EXCHANGE`); 210101818 and
# 210102662, the Node's: the original, back, claimed epoch 2, was denied with the end
# and no certificate, and told it on in that epoch it never won to a member that
# refused it for ever, though that member told it the same end of epoch 1 (the
# holder's, proven; a claimant's of epoch 1, unproven): now settled as acknowledged
# (running_ends.py, "An end told on in an epoch never won"); 222000084 with a short
# retention, the checker's: `d2.w1`'s coordinator, its own acceptor refusing its ballot
# by age, one acceptor dead for good and the third's wall clock an hour behind (no
# record past its life there), kept its ballot: no majority either way, so in doubt,
# as the core rightly stays on one acceptor's PAST_LIFE (past_life_check.py). Each:
# (seed, keep_ended_s, end), None for the soak's own.
ONCE_FAILING_ONE_WAY: tuple[tuple[int, float | None, float | None], ...] = (
    (128000131, None, None), (134000369, None, None), (137500119, 5.0, 300.0),
    (138512237, None, None), (140103976, None, None), (140100077, None, None),
    (140100809, None, None), (145002563, None, None), (148001372, None, None),
    (148002554, None, None), (150000018, None, None), (154001212, None, None),
    (154300317, None, None), (156500577, 5.0, 300.0), (158800091, None, None),
    (163101876, None, None), (165402137, 5.0, 300.0), (167000569, 5.0, 300.0),
    (178100853, None, None), (184100747, None, None), (190201851, None, None), (197102921, 5.0, 300.0),
    (202101940, 5.0, 300.0), (206402979, 5.0, 300.0), (212400209, 5.0, 300.0),
    (210101818, None, None), (210102662, None, None), (222000084, 5.0, 300.0))


@pytest.mark.parametrize(("seed", "keep_ended_s", "end"), ONCE_FAILING_ONE_WAY)
def test_takeover_seeds_once_failing_with_a_cut_one_way_hold_every_invariant(
        seed: int, keep_ended_s: float | None, end: float | None) -> None:
    run(seed, takeover_after_s=3.0, one_way=True, keep_ended_s=keep_ended_s,
        end=end)  # raises SimulationFailure naming it


# Takeover soak seeds once failing in classic 2PC with a cut one way too (`--commit 2pc
# --one-way`), each mended by a rule of the Node's: 200202472 (the original, its step's
# domain cut one way and DEAD in its view, failed the step it could place nowhere and
# told that verdict's end; it granted the cut domain's claim, its verdict void as it
# followed that epoch, then won the next epoch itself: acting, nothing told the verdict's
# end again, and the lost domain, told the step placed nowhere, never ran it: RUNNING
# for ever; core/node/takeover.py, an Act holds the verdict on record again).
ONCE_FAILING_CLASSIC_ONE_WAY = (200202472,)


@pytest.mark.parametrize("seed", ONCE_FAILING_CLASSIC_ONE_WAY)
def test_takeover_seeds_once_failing_in_classic_2pc_with_a_cut_one_way_hold_every_invariant(
        seed: int) -> None:
    run(seed, takeover_after_s=3.0, classic=True,
        one_way=True)  # raises SimulationFailure naming it


def test_a_claimant_that_learned_an_earlier_epochs_end_tells_it_on() -> None:
    """A claimant that takes its predecessor's end before its claim wins tells it on in
    its epoch, to those that granted it too (seed 1110 of the stalled clock schedule,
    tests/sim/negotiation/test_clock_check_takeover.py, needs that path). Since an end
    on results is told before it is made, the stalled schedule's claimants mostly learn
    the end from the claim answers instead, and a claimant refuses an older epoch's
    notice that shows no certificate (takeover soak seed 28000322), so it learns the
    end from an answer where it took that notice before; the random takeover faults
    still take the path, here over 200 seeds."""
    stats: Counter[str] = Counter()
    for seed in range(5000, 5200):
        report = Simulation(seed, seeded_config(seed, takeover_after_s=3.0)).run()
        assert report.violations == [], f"seed {seed}: {report.violations}"
        stats.update(report.stats)
    assert stats["takeover claimant told an earlier epoch's end on"] > 0, stats


def test_a_late_grants_end_is_told_again_after_the_claimants_restart() -> None:
    """Seed 10006502 of the takeover soak (10008139 until a successor's made end went to
    every elector too): a claimant that ended the workflow told a late grant's granter
    the end, and restarted before the granter acknowledged it; restored, it tells it
    again from its `late_grants` row (core/node/takeover_late_grants.py; the rule's own
    tests: tests/unit/core/node/test_takeover_late_grants.py). Seed 10000294: a late
    grant of an elector holding no step, told nothing (it would refuse the end for
    ever). The paths are rare (the first seed after 10,006,000 to take the restart's),
    so a change to the runs' messages may move them to other seeds: run a range and
    read these counters in the stats. Seed 10007035 since a restarted claim counts the
    grants it kept (takeover_claiming.py, Restarted): 10006502's claimant acts on them."""
    report = run(10007035, takeover_after_s=3.0)
    assert report.stats["takeover late grant: end told again after a restart"] >= 1
    report = run(10000294, takeover_after_s=3.0)
    assert report.stats["takeover grant after the claim by an elector holding no step"] >= 1


def two_domains(seed: int = 1) -> Simulation:
    """d0 coordinates one workflow whose steps are all on d1: two domains take part.
    d2 and d3 have no step; the Paxos Commit round adds one of them as an acceptor."""
    names = [f"d{i}" for i in range(4)]
    steps = [spec_pb2.StepSpec(id="s1", capability="a"),
             spec_pb2.StepSpec(id="s2", capability="a", needs=["s1"])]
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 4} for n in names},
        workflows=[Workflow(WF, "d0", 1.0, spec_pb2.WorkflowSpec(name="w0", steps=steps),
                            {"s1": "d1", "s2": "d1"})],
        timing=TAKEOVER,
    )
    return Simulation(seed, config)


@pytest.mark.parametrize("seed", range(1, 4))
def test_a_two_domain_workflow_is_taken_over_with_the_extra_acceptors_grant(seed) -> None:
    sim = two_domains(seed)
    sim.crash_hook = at_d0s_first("step result", "forever")  # a result came: committed
    report = sim.run()
    assert report.violations == [], report.violations
    assert sim.dead_forever == {"d0"}
    electorate = sim.agents["d1"].disk.electorates[WF]
    (extra,) = set(electorate) - {"d0", "d1"}
    assert sim.checker.acting_in == {(WF, 1): "d1"}
    assert sim.agents[extra].disk.granted[WF] == (1, "d1")  # it holds no step
    assert WF not in sim.agents[extra].disk.committed
    assert report.stats["takeover granted by an acceptor only"] >= 1
    assert sim.agents["d1"].disk.final[WF] in TERMINAL


@pytest.mark.parametrize("point", ["takeover epoch", "takeover act"])
def test_two_domains_coordinator_and_acceptor_crashes_keep_one_acting_epoch(point) -> None:
    # The coordinator dies for good after the commit; the others crash (and come back)
    # at each takeover point in turn: never two coordinators in one epoch, and d1 ends it.
    sim = two_domains(3)
    crashed: set[str] = set()

    def hook(agent, now, label):
        if agent.name == "d0" and label == "step result" and "d0" not in crashed:
            crashed.add("d0")
            return "forever"
        if agent.name != "d0" and label == point and "d0" in crashed \
                and agent.name not in crashed:
            crashed.add(agent.name)
            return "crash"
        return None
    sim.crash_hook = hook
    report = sim.run()
    assert report.violations == [], report.violations
    assert len(crashed) >= 2, crashed  # the point was reached after d0 died
    assert sim.checker.acting_in.get((WF, 1)) == "d1", sim.checker.acting_in
    assert sim.agents["d1"].disk.final[WF] in TERMINAL


@pytest.mark.parametrize("seed", range(1, 4))
def test_an_extra_acceptor_that_missed_the_round_grants_on_the_claimants_proof(seed) -> None:
    # Nothing of d0 reaches d2 or d3: the extra acceptor never hears of the round (d0
    # and d1 make the majority), then d0 dies for good. d1's claim carries the round.
    sim = two_domains(seed)
    sim.intercept = lambda src, dst, msg, now: "drop" if src == "d0" and dst in (
        "d2", "d3") else None
    sim.crash_hook = at_d0s_first("step result", "forever")
    report = sim.run()
    assert report.violations == [], report.violations
    electorate = sim.agents["d1"].disk.electorates[WF]
    (extra,) = set(electorate) - {"d0", "d1"}
    assert not any(w == WF for w, _ in sim.agents[extra].disk.acceptor)  # missed it
    assert report.stats["takeover granted on a proof of the round"] >= 1
    assert sim.agents[extra].disk.granted[WF] == (1, "d1")
    assert sim.checker.acting_in == {(WF, 1): "d1"}
    assert sim.agents["d1"].disk.final[WF] in TERMINAL


@pytest.mark.parametrize("seed", range(1, 4))
@pytest.mark.parametrize("round_", [7, 1])
def test_a_round_planted_at_the_extra_acceptor_leaves_no_record(seed, round_) -> None:
    # The other domain with no step (d2 or d3, whichever is no acceptor) lies: as the
    # PREPARE leaves, it sends the extra acceptor a PaxosPrepare of a round of its own
    # making, itself the only participant (round 7, or round 1: the real round's key,
    # before the coordinator's messages arrive), and then claims epoch 1 (no proof: it
    # has none). The extra acceptor makes no record of a round its coordinator did not
    # state (refused, counted); its claim is refused; the coordinator's own messages
    # then reach the acceptor as usual; the coordinator dies for good and d1 takes over
    # with the extra acceptor's grant of epoch 1.
    sim = two_domains(seed)
    planted: list[tuple[str, str]] = []

    def plant(src, dst, msg, now):
        if not planted and isinstance(msg, PrepareMsg) and msg.tx.workflow_id == WF:
            (extra,) = set(msg.tx.acceptors) - {"d0", "d1"}
            (liar,) = {"d2", "d3"} - {extra}
            planted.append((extra, liar))
            own = TxInfo(WF, round_, "d0", (liar,), tuple(sorted({"d0", liar, extra})))
            sim.send(liar, extra, PaxosPrepare(own, Ballot(1, liar)))
            sim.send(liar, extra, ClaimMsg(WF, 1))
        return None

    refused_before = sim.checker.refusals["RemoteProtocolError"]
    sim.intercept = plant
    sim.crash_hook = at_d0s_first("step result", "forever")
    report = sim.run()
    assert report.violations == [], report.violations
    ((extra, liar),) = planted
    records = {k: r.tx for k, r in sim.agents[extra].disk.acceptor.items() if k[0] == WF}
    assert (WF, 7) not in records  # no record of the planted round
    assert all(liar not in tx.participants for tx in records.values())
    assert sim.checker.refusals["RemoteProtocolError"] > refused_before
    assert report.stats["takeover claim refused no_proof"] == 0  # nothing to refuse with
    assert sim.agents[extra].disk.granted[WF] == (1, "d1")  # never the liar's
    assert sim.checker.acting_in == {(WF, 1): "d1"}
    assert sim.agents["d1"].disk.final[WF] in TERMINAL


@pytest.mark.parametrize("seed", range(1, 4))
def test_an_original_restarted_while_claiming_past_its_dead_successor_ends_it(
        seed, monkeypatch) -> None:
    """Seed 11000176's faults as a schedule: d0 crashes once its round committed; d1
    wins epoch 1 and dies for good right after telling its win, its steps still running
    (they take 20 s here). d0, back, fails them (d1 gone) and tells its end in epoch 0;
    the extra acceptor answers with d1's proven epoch, and d0 claims epoch 2 past it.
    d0 crashes right after writing that claim. Restarted, it claims again, wins epoch 2
    and ends the workflow FAILED; rebuilt acting in the epoch it had only claimed, it
    never won it and the workflow stayed RUNNING (core/node/takeover.py)."""
    monkeypatch.setattr(ports, "STEP_S", (20.0, 21.0))
    sim = two_domains(seed)
    seen: dict[str, object] = {"d0": "up", "d1 acted": False, "d1 told": False}

    def hook(agent, now, label):
        state = agent.node.state
        if agent.name == "d0":
            row = state.rows.get(WF)
            if seen["d0"] == "up" and row is not None and row.committed:
                seen["d0"] = "back"
                return "crash"
            if seen["d0"] == "back" and label == "takeover epoch" \
                    and state.granted.get(WF, (0, ""))[1] == "d0" \
                    and WF not in state.epochs:
                seen["d0"] = "claimed"  # its own claim, no epoch followed written
                return None
            if seen["d0"] == "claimed":
                seen["d0"] = "restarted"
                return "crash"
        if agent.name == "d1" and not seen["d1 told"]:
            seen["d1 acted"] = seen["d1 acted"] or label == "takeover act"
            seen["d1 told"] = seen["d1 acted"] and label == "send ClaimMsg"
        elif agent.name == "d1" and "d1" not in sim.dead_forever:
            return "forever"
        return None
    sim.crash_hook = hook
    report = sim.run()
    assert report.violations == [], report.violations
    assert seen["d0"] == "restarted" and sim.dead_forever == {"d1"}, seen
    assert report.stats["takeover proven winner followed"] >= 1
    assert sim.checker.acting_in == {(WF, 1): "d1", (WF, 2): "d0"}
    assert sim.agents["d0"].disk.rows[WF].state.name == "FAILED"
