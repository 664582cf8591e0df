"""A step lost with its domain, placed again by a round of its own, in the Node
(agent/core/node/replacement.py), Nodes driven by hand with coordinator takeover on (as
the node engine composes it), and off: d0 coordinates; steps are on d1, d2; d1 dies
for good; step attempts end only when a test says so."""

from __future__ import annotations

import random
from collections import Counter

from fedorch.core.negotiation.messages import Decision, DecisionQuery, PaxosPrepare
from fedorch.core.node import MemberState, MemberViews, Message, Node, Submit, Tick
from fedorch.core.node.records import (
    AckMsg,
    ClaimMsg,
    FinalMsg,
    PlacedMsg,
    PrepareMsg,
    ResultMsg,
    Timing,
    VoteMsg,
)
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.core.workflow.progress import StepState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2

from tests.unit.core.node.federation import sent
from tests.unit.core.node.test_domain_loss import (
    NAMES,
    WF,
    Federation,
    OnlyD1TakesA,
    committed,
    d1_back_wins_epoch_1,
    dies,
    lost_where_no_other_domain_takes_it,
    result,
    step,
)
from tests.unit.core.node.test_takeover import fake_signer


def new_domain(fed: Federation, step_id: str) -> str:
    """Where the coordinator placed `step_id` again (its placement on record)."""
    epoch, domain, lost = fed.disks["d0"].placements[WF][step_id]
    assert lost == "d1" and domain not in ("d1", "d0", "")  # never the coordinator itself
    assert epoch > fed.disks["d0"].rows[WF].round  # a round number never used before
    return domain


def runs_of(fed: Federation, step_id: str) -> list[tuple[str, int]]:
    """Every attempt of `step_id` started anywhere, as (domain, attempt), in order."""
    return [(node, run[2]) for node, run in fed.started if run[1] == step_id]


def end_everything(fed: Federation) -> None:
    """Every running attempt ends successfully, until none is left."""
    for _ in range(10):
        running = [(n, r) for n in NAMES for r in sorted(fed.running[n])]
        if not running:
            return
        for n, r in running:
            fed.end(n, r[1])
            fed.running[n].discard(r)  # ended (the harness keeps what was not stopped)
    raise AssertionError("attempts kept starting")


def test_a_step_that_had_not_started_is_placed_again_and_succeeds_elsewhere() -> None:
    """s2 on d1 needs s1 on d2, still running: s2 never started on d1."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    dies(fed, "d1")
    new = new_domain(fed, "s2")
    assert fed.lost == [("d0", (WF, "s2"), "d1", "REPLACE")]
    assert WF not in fed.disks["d0"].final  # not failed: placed again
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert result(fed, "d0", "s2")[1] is StepState.SUCCEEDED
    assert runs_of(fed, "s2") == [(new, 1)]  # once, in its new domain only
    assert fed.disks[new].final[WF] is WorkflowState.SUCCEEDED  # told the end too
    assert not fed.nodes[new].participant.holds()  # its reservation released


def test_a_restarted_coordinator_counts_a_need_reported_while_it_was_down() -> None:
    """Seed 3201512 of the takeover soak: s2 on d1 needs s1 on d2. d0 is down when s1
    SUCCEEDS: its result reaches d1, which starts s2, and not d0. d0 restarts, then d1
    dies. d0's restored progress has s1 running, yet results sent while it was down may
    be elsewhere: s2, not idempotent, FAILS naming d1 and never runs again elsewhere
    (placed again, it ran twice: d1, then its new domain)."""
    fed = committed([step("s1"), step("s2", needs=("s1",))], {"s1": "d2", "s2": "d1"})
    fed.silent.add("d0")
    fed.end("d2", "s1")
    assert runs_of(fed, "s2") == [("d1", 1)]
    fed.silent.discard("d0")
    fed.restore("d0")
    assert fed.nodes["d0"].progress[WF].steps["s1"].state is not StepState.SUCCEEDED
    dies(fed, "d1")
    assert fed.lost == [("d0", (WF, "s2"), "d1", "FAIL_STARTED")]
    error = result(fed, "d0", "s2")[3]
    assert error.startswith("domain d1 was lost (DEAD) while the step ran")
    assert WF not in fed.disks["d0"].placements  # no round places it again
    fed.tick(fed.now + 2.0)  # s1's result, resent, reaches d0 at last: too late to matter
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert runs_of(fed, "s2") == [("d1", 1)]  # once, in its first domain only


def test_a_step_whose_domain_was_the_only_participant_ends_at_its_new_domain() -> None:
    """The workflow's one step was on d1, which dies (d3 is gone already): it is placed
    again on d2, the round's extra acceptor, the only participant left to acknowledge
    the end told first (with takeover), so it counts as one (domain_loss.py,
    `_participants`), or the end would wait for d1 for ever."""
    fed = committed([step("s1", idempotent=True)], {"s1": "d1"})
    dies(fed, "d3")
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    assert new == "d2"
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.disks[new].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s1") == [("d1", 1), (new, 1)]


def test_a_started_idempotent_step_is_run_again_elsewhere_once() -> None:
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    assert runs_of(fed, "s1") == [("d1", 1)]
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    # Attempt 1 again, under the new placement: each attempt once per placement.
    assert runs_of(fed, "s1") == [("d1", 1), (new, 1)]
    assert len(set(fed.started)) == len(fed.started)
    assert fed.nodes["d0"].stats["step placed again"] == 1


def test_the_new_placement_is_told_before_its_commit_is_sent() -> None:
    """With takeover: every live participant acknowledges the new placement before the
    new domain hears the round's COMMIT (a successor elected meanwhile finds it)."""
    fed = committed([step("s1", idempotent=True), step("s2"), step("s3")],
                    {"s1": "d1", "s2": "d2", "s3": "d3"})
    held: list[tuple[str, str, object]] = []

    def keep_told(src: str, dst: str, msg: object) -> bool:
        """The new placement, held on its way to the participant that is not its domain."""
        if isinstance(msg, PlacedMsg) and dst != msg.domain:
            held.append((src, dst, msg))
            return True
        return False

    fed.goes_silent_and_dead("d1", keep=keep_told)
    new = new_domain(fed, "s1")
    assert held  # told, not yet acknowledged by the other participant

    def commits() -> list:
        return [m for _, m in fed.sent_by("d0", Decision)
                if m.key[1] > 1 and m.value.commit]

    assert not commits()
    assert runs_of(fed, "s1") == [("d1", 1)]  # not run again yet
    fed.net = []  # the held PlacedMsgs go again, as resent
    fed.net.extend(held)
    fed.deliver()
    assert len(commits()) == 1
    assert runs_of(fed, "s1") == [("d1", 1), (new, 1)]


def test_a_started_step_that_is_not_idempotent_still_fails_naming_its_domain() -> None:
    fed = committed([step("s1"), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d2", "s2")
    dies(fed, "d1")
    _, state, _, error = result(fed, "d0", "s1")
    assert state is StepState.FAILED and "domain d1 was lost (DEAD)" in error
    assert "not idempotent" in error
    assert not fed.disks["d0"].placements  # nothing placed again
    assert fed.disks["d0"].final[WF] is WorkflowState.FAILED
    assert runs_of(fed, "s1") == [("d1", 1)]


class NoRoom(Federation):
    """Only d1 has room for a step: no other domain can take one."""

    def make_node(self, name: str) -> Node:
        return Node(name, policy=config_pb2.Policy(accept_from=["*"]),
                    capacities={"a": 4 if name == "d1" else 0}, timing=self.timing,
                    peers=NAMES, rng=random.Random(NAMES.index(name)),
                    evidence=self.evidence, sign_grant=fake_signer(name),
                    disk=self.disks[name], now=self.now)


def test_with_no_domain_free_the_step_fails_with_the_reason() -> None:
    fed = NoRoom()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1", idempotent=True)]), placement={"s1": "d1"}))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    dies(fed, "d1")
    _, state, _, error = result(fed, "d0", "s1")
    assert state is StepState.FAILED
    assert "domain d1 was lost (DEAD)" in error
    assert "no domain could take it after d1 was lost" in error
    # Nobody alive took part to tell the end first: held until d1 comes back (as for
    # a loss verdict, test_domain_loss), the step FAILED on record.
    assert fed.nodes["d0"].stats["re-placement failed"] == 1
    assert not fed.disks["d0"].placements


def test_a_late_result_of_the_old_placement_is_refused() -> None:
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    epoch = fed.disks["d0"].placements[WF]["s1"][0]
    late = ResultMsg(WF, "s1", 1, StepState.SUCCEEDED, {"from": "d1"}, "", 0)
    fed.step("d0", Message("d1", late))
    assert fed.nodes["d0"].stats["result of an older placement refused"] == 1
    assert fed.nodes["d0"].progress[WF].steps["s1"].state is not StepState.SUCCEEDED
    assert "s1" not in fed.disks["d0"].results.get(WF, {}) \
        or fed.disks["d0"].results[WF]["s1"][1] is not StepState.SUCCEEDED
    end_everything(fed)
    _, state, outputs, _ = result(fed, "d0", "s1")
    assert state is StepState.SUCCEEDED and outputs.get("from") != "d1"
    assert fed.nodes[new].progress.get(WF) is None  # ended there
    assert Counter(r[0] for r in runs_of(fed, "s1")) == {"d1": 1, new: 1}
    assert epoch == fed.disks[new].placements[WF]["s1"][0]  # the new domain's epoch


def test_a_restarted_coordinator_keeps_the_new_placement() -> None:
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    d0 = fed.restore("d0")
    assert d0.progress[WF].steps["s1"].domain == new
    assert d0.progress[WF].steps["s1"].epoch == fed.disks["d0"].placements[WF]["s1"][0]
    fed.step("d0", MemberViews(tuple(MemberState(m, "DEAD" if m == "d1" else "ALIVE")
                                     for m in NAMES if m != "d0")))
    fed.deliver()
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert [r for r in runs_of(fed, "s1") if r[0] == new] == [(new, 1)]


# ---- re-placement and coordinator takeover together --------------------------------


def test_a_successor_hears_from_the_new_domain_and_tells_it_the_end() -> None:
    """s1 on d1 waits for s2 on d2; d1 dies and d0 places s1 again on d3, outside the
    electorate (d0, d1, d2); d1 comes back, and d0 dies for good before s1 ends. The
    successor d1 counts d3 among the participants: d3 hears its claim (and learned the
    electorate from the new placement), sends its result to d1, not to the dead d0, and
    hears the end (the stalled schedule's seed 135, where the workflow stayed RUNNING)."""
    fed = committed([step("s1", needs=("s2",)), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    assert new not in fed.disks["d0"].rows[WF].acceptors
    assert fed.disks[new].electorates[WF] == fed.disks["d0"].rows[WF].acceptors
    fed.silent.discard("d1")  # d1 restarts, and every view says it is back
    fed.restore("d1")
    fed.step("d1", *[MemberState(m, "ALIVE") for m in NAMES if m != "d1"])
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "ALIVE"))
    fed.tick(fed.now + 2.0)  # d1 acknowledges the new placement, resent
    assert fed.disks["d1"].placements[WF]["s1"][1] == new
    dies(fed, "d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks[new].epochs[WF] == (1, "d1")  # it follows the successor
    fed.end("d2", "s2")
    fed.end(new, "s1")
    fed.tick(fed.now + 2.0)
    assert result(fed, "d1", "s1")[1] is StepState.SUCCEEDED
    for n in ("d1", "d2", new):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert runs_of(fed, "s1") == [(new, 1)]
    assert not fed.refused


def test_the_lost_domain_back_drops_its_interrupted_attempt_of_the_old_placement() -> None:
    """s1, idempotent, ran on d1; d1 dies and d0 places s1 again on d3. d1 restarts
    before it is told: its attempt ends there, interrupted by the restart, FAILED. Told
    the new placement, d1 drops that result of a placement that is over (refused
    everywhere by its epoch): elected when d0 then dies for good, it decides on s1's
    result from d3, not on its own stale FAILED."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.end("d2", "s2")
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    fed.silent.discard("d1")
    fed.restore("d1")
    assert result(fed, "d1", "s1")[1] is StepState.FAILED  # interrupted by the restart
    fed.step("d1", *[MemberState(m, "ALIVE") for m in NAMES if m != "d1"])
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "ALIVE"))
    fed.tick(fed.now + 2.0)  # the new placement, resent, reaches d1
    assert "s1" not in fed.disks["d1"].results.get(WF, {})
    assert fed.nodes["d1"].stats["result of an older placement dropped here"] == 1
    assert fed.nodes["d1"].progress[WF].steps["s1"].domain == new
    dies(fed, "d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert WF not in fed.disks["d1"].final  # s1 still runs on d3
    fed.end(new, "s1")
    fed.tick(fed.now + 2.0)
    for n in ("d1", "d2", new):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED


def test_the_original_counts_the_new_domain_but_claims_nothing() -> None:
    """The original coordinator's takeover core takes the new domain into its audience,
    and, acting at epoch 0, sends no claim for it (an epoch-0 claim answered with the
    end it told first would end the workflow beside its row, left RUNNING: the takeover
    soak's seed 1700816)."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    assert new in fed.nodes["d0"].takeover.cores[WF].audience
    fed.tick(fed.now + 2.0)
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    assert not fed.sent_by("d0", ClaimMsg)
    assert fed.disks["d0"].rows[WF].state is WorkflowState.SUCCEEDED


def test_a_verdicts_end_told_before_a_new_placement_waits_for_the_told_only() -> None:
    """d2 dies: s2 goes to be placed again (its round's PREPARE to d3 held back); d1
    dies: s1, started and not idempotent, FAILS, and that end is told to the
    participants before it is made. The round then commits on d3, which was never told
    that end: once d1 is back and acknowledges, the end is made (d3 hears it then),
    where waiting for d3 too held it for ever (the takeover soak's seed 1700602)."""
    fed = committed([step("s1"), step("s2", idempotent=True)], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead("d2", keep=lambda src, dst, msg: isinstance(msg, PrepareMsg))
    assert [(dst, type(msg)) for _, dst, msg in fed.net] == [("d3", PrepareMsg)]
    fed.silent.add("d1")
    fed.running["d1"] = set()
    for n in ("d0", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))
    assert fed.nodes["d0"].domain_loss.holds(WF)
    fed.deliver()
    assert fed.disks["d0"].placements[WF]["s2"][1] == "d3"
    assert fed.nodes["d0"].domain_loss.holds(WF)  # d1, told, is gone: nobody acknowledged
    fed.silent.discard("d1")  # d1 restarts, and every view says it is back
    fed.restore("d1")
    fed.step("d1", *[MemberState(m, "DEAD" if m == "d2" else "ALIVE")
                     for m in NAMES if m != "d1"])
    for n in ("d0", "d3"):
        fed.step(n, MemberState("d1", "ALIVE"))
    fed.tick(fed.now + 2.0)
    assert not fed.nodes["d0"].domain_loss.holds(WF)
    for n in ("d0", "d1", "d3"):
        assert fed.disks[n].final[WF] is WorkflowState.FAILED


def test_a_held_end_is_not_told_to_a_new_domain_outside_the_electorate() -> None:
    """s2 is placed again on d3 (outside the electorate d0, d1, d2); then d1 dies with
    s1 started: its verdict's end is told first to the committed participants only. d3
    would end the workflow on a told end not yet made and, claiming as the successor it
    takes itself for, tell it on in its epoch beside the real successor's other end
    (the takeover run's seed 237): it hears the end once made."""
    fed = committed([step("s1"), step("s2", idempotent=True)], {"s1": "d1", "s2": "d2"})
    dies(fed, "d2")
    assert fed.disks["d0"].placements[WF]["s2"][1:] == ("d3", "d2")
    dies(fed, "d1")
    assert fed.nodes["d0"].domain_loss.holds(WF)  # d1, d2 told and gone: held
    assert not [m for to, m in fed.sent_by("d0", FinalMsg) if to == "d3"]
    assert WF not in fed.disks["d3"].final


class NoRoomAtD3(Federation):
    """d3 has no room: a step lost with d1 is placed again on d2, an elector."""

    timing = Timing(max_rounds=3, takeover_after_s=3.0)

    def capacities_of(self, name: str) -> dict[str, int]:
        return {"a": 0 if name == "d3" else 4}


def test_an_end_on_results_is_told_to_and_waits_for_a_new_domain_that_is_an_elector(
) -> None:
    """s1, the only step, on d1; d1 dies for good and s1 is placed again on d2 (d3
    refuses), an elector (d0, d1, d2). Its result ends the workflow: that end is told
    first, to the committed participant d1 (gone) and to d2, and made once d2
    acknowledged it, where it was held until d1 came back (the node engine's
    `test_an_idempotent_step_of_a_participant_killed_for_good_runs_elsewhere`)."""
    fed = NoRoomAtD3()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        step("s1", idempotent=True)]), placement={"s1": "d1"}))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    dies(fed, "d1")
    assert fed.disks["d0"].placements[WF]["s1"][1:] == ("d2", "d1")
    end_everything(fed)
    assert not fed.nodes["d0"].domain_loss.holds(WF)
    assert "d2" in fed.disks["d0"].final_acked[WF]
    for n in ("d0", "d2"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED


# ---- a told placement whose original follows a later epoch (replacement_handover.py) ----


def half_told(fed: Federation) -> tuple[str, int]:
    """d1 dies; d0 places s1 again on d3 (outside the electorate d0, d1, d2) and tells
    it, but d3's acknowledgement is held back: d0 has the COMMIT on record, told to d2,
    and has not sent it. Returns (new domain, round)."""
    fed.silent.add("d1")
    fed.running["d1"] = set()
    for n in ("d0", "d2", "d3"):
        fed.step(n, MemberState("d1", "DEAD"))

    def d3_acknowledges(src: str, dst: str, msg: object) -> bool:
        return src == "d3" and isinstance(msg, AckMsg) and msg.msg_id[0] == "placed"

    fed.deliver(keep=d3_acknowledges)
    fed.net = []  # lost
    epoch, new, lost = fed.disks["d0"].placements[WF]["s1"]
    assert (new, lost) == ("d3", "d1")
    assert fed.disks["d2"].placements[WF]["s1"] == (epoch, "d3", "d1")  # d2 was told
    assert not [m for _, m in fed.sent_by("d0", Decision) if m.key == (WF, epoch)]
    assert fed.nodes["d3"].participant.status((WF, epoch)) == "prepared"  # in doubt
    return new, epoch


def test_a_successor_told_a_placement_hands_its_commit_out_to_the_new_domain() -> None:
    """Half told (above), d0 then grants d2's claim (d2's view says d0 is DEAD) and
    follows epoch 1: it never sends the COMMIT (the later epoch may not know the
    placement). d2, told, hands it out itself: told again everywhere, then `made` to d3,
    which commits its YES, follows d2, runs s1 and reports to it; the workflow ends,
    where d3 held its YES in doubt and d2 waited for s1 for ever (takeover soak seeds
    1700831, 1701689)."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    new, epoch = half_told(fed)
    fed.step("d2", MemberState("d0", "DEAD"))  # d0 lives on: it grants d2's claim
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d2"}
    assert fed.disks["d0"].epochs[WF] == (1, "d2")  # the original follows
    fed.tick(fed.now + 2.0)
    assert fed.nodes["d2"].stats["re-placement COMMIT handed out by a successor"] == 1
    assert fed.disks[new].learned[(WF, epoch)].commit
    assert fed.disks[new].epochs[WF] == (1, "d2")  # its result goes to the successor
    assert runs_of(fed, "s1") == [("d1", 1), (new, 1)]
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    for n in ("d0", "d2", new):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert not fed.nodes[new].participant.holds()
    assert not [r for n, r in fed.refused if n == new]


def test_a_successor_told_the_placement_only_by_a_grant_hands_it_out() -> None:
    """As above, but d2's tell of the placement is lost: d2 learns it from d0's grant
    (a grant carries the granter's placements: restart_check.py) and hands the COMMIT
    out as a successor told it would. s1 runs once at d3, and the workflow ends."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead(
        "d1", keep=lambda src, dst, msg: isinstance(msg, PlacedMsg) and dst == "d2"
        or isinstance(msg, AckMsg) and src == "d3" and msg.msg_id[0] == "placed")
    fed.net = []
    fed.step("d2", MemberState("d0", "DEAD"))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PlacedMsg) and dst == "d2"
                and src == "d0")
    assert fed.evidence.acting == {(WF, 1): "d2"}
    assert fed.disks["d2"].placements[WF]["s1"][1] == "d3"  # from d0's grant
    assert fed.nodes["d2"].stats["re-placement handed over by a successor"]
    fed.tick(fed.now + 2.0)
    assert runs_of(fed, "s1") == [("d1", 1), ("d3", 1)]
    end_everything(fed)
    fed.tick(fed.now + 2.0)
    for n in ("d2", "d3"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED
    assert not fed.nodes["d3"].participant.holds()


def test_a_restored_original_tells_every_placement_again() -> None:
    """s1 is placed again on d3 while d1, its lost domain and an elector, is down: d1
    never hears it. d0 restarts (its resends were in memory): it tells the placement
    again to everyone, so d1, back, learns it, and with it that d3 takes part (it may
    then answer d3's claim, which it refused for ever as a stranger's: takeover soak
    seed 1800599)."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    assert (WF, fed.disks["d0"].placements[WF]["s1"][0]) not in fed.disks["d0"].records
    fed.restore("d0")
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d0", MemberViews(tuple(MemberState(m, "ALIVE") for m in NAMES if m != "d0")))
    fed.deliver()
    assert fed.disks["d1"].placements[WF]["s1"][1] == new


def test_a_new_domain_shows_no_proof_of_a_round_it_never_held() -> None:
    """A new domain's committed round here is its re-placement round: its claim carries
    no proof to an acceptor that holds no step (it showed its own round with the
    workflow's electorate, a proof no acceptor can check)."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    node = fed.nodes[new]
    core = node.takeover.core(WF)
    assert core is not None
    assert node.takeover.claims._round_proof(WF, core, "d9") == (None, None, ())


def test_a_new_domain_in_doubt_hears_the_end_from_the_successor_it_asks() -> None:
    """d1 dies; d0 places s1 again on d3 and dies for good before deciding (d3's YES
    never reached it): d3 is in doubt on a round whose coordinator is gone, unknown to
    everyone else. d1 comes back and takes over with d2; s1 runs again on d1, the
    workflow ends there. d3, asking its coordinator, asks the workflow's other members
    too: the successor answers with the end it made, and d3's YES is released, where it
    was held for ever (takeover soak seeds 3400363, 3401622). (The end is FAILED: s1's
    attempt on d1 was interrupted by its restart, a not-retried failure.)"""
    fed, key = in_doubt_with_the_coordinator_gone(
        [step("s1", idempotent=True), step("s2")])
    for _ in range(3):
        end_everything(fed)
        fed.tick(fed.now + 2.0)
    assert WF in fed.disks["d1"].final
    assert WF not in fed.disks["d1"].placements  # the successor never knew the round
    fed.run_until(fed.now + 30.0)
    assert fed.nodes["d1"].stats["re-placement asked: the end told"] >= 1
    assert not fed.nodes["d3"].participant.holds()
    assert fed.nodes["d3"].stats["re-placement YES released at the end"] == 1
    assert key not in fed.disks["d3"].learned  # released, no decision made up
    assert [r for r in runs_of(fed, "s1") if r[0] == "d3"] == []
    # A query about the committed round is answered with its decision, as ever.
    ready = fed.step("d1", Message("d2", DecisionQuery((WF, 1), "d2")))
    assert [type(m).__name__ for _, m in sent(ready)] == ["DecisionAnswer"]


def d0_places_s1_again_on_d2_whose_vote_is_lost() -> Federation:
    """s0 runs on d0 itself, s1 (idempotent) on d1; the electorate is d0, d1 and d2, an
    extra acceptor. d3 is gone; d1 dies and d0 places s1 again on d2, whose YES is lost
    on the way: d2 holds a re-placement round in doubt, d0 has not decided it."""
    fed = committed([step("s0"), step("s1", idempotent=True)], {"s0": "d0", "s1": "d1"})
    assert fed.disks["d0"].rows[WF].acceptors == ("d0", "d1", "d2")
    dies(fed, "d3")
    fed.goes_silent_and_dead(
        "d1", seen_by=("d0", "d2"),
        keep=lambda src, dst, msg: isinstance(msg, VoteMsg) and src == "d2")
    fed.net = []
    return fed


def test_an_extra_acceptor_in_doubt_on_a_re_placement_round_grants_as_an_acceptor(
) -> None:
    """s0 runs on d0 itself, s1 on d1; the electorate is d0, d1 and d2, an extra
    acceptor. d3 is gone; d1 dies and d0 places s1 again on d2, which votes YES; d0 dies
    for good before deciding. d2 is in doubt on that round only: it answers d1's claim
    as the acceptor of the committed round it is (on the claim's proof), where it
    answered "in doubt" for ever and d1 could never win (takeover soak seed 3400228).
    Its electorate is the committed round's, not the re-placement round's two."""
    fed = d0_places_s1_again_on_d2_whose_vote_is_lost()
    key = next(h.key for h in fed.nodes["d2"].participant.holds() if h.workflow_id == WF)
    assert key[1] > 1 and fed.nodes["d2"].participant.status(key) == "prepared"
    assert fed.nodes["d2"].takeover.electorate_of(WF) == frozenset({"d0", "d1", "d2"})
    fed.silent.add("d0")
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", *[MemberState(m, "ALIVE" if m == "d2" else "DEAD")
                     for m in NAMES if m != "d1"])
    fed.step("d2", MemberState("d1", "ALIVE"), MemberState("d0", "DEAD"))
    fed.deliver()
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d2"].granted[WF] == (1, "d1")
    assert not fed.nodes["d2"].stats["takeover claim answered in doubt"]


def test_a_new_domain_counts_the_lost_domain_among_the_workflows_domains() -> None:
    """A new domain new to the workflow knows it from its own round's PREPARE, whose
    placement no longer names the lost domain: it counts it from the placement, so that,
    elected, it tells it its end (the lost domain holds the committed round: the stalled
    schedule's seed 135, where it held it for ever)."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d1")
    new = new_domain(fed, "s1")
    assert "d1" not in fed.disks[new].info[(WF, fed.disks[new].committed[WF])].placement.values()
    assert fed.nodes[new].replacement.domains_of(WF) == {"d1", "d2", new}


def test_a_successor_that_ended_tells_its_end_to_a_placement_it_learns_later() -> None:
    """d0 dies; d1 wins epoch 1 and the workflow ends FAILED there (s0 lost with d0).
    d0, back unaware of epoch 1, tells a placement of s2 on d3 it made meanwhile (its
    majority counted an elector that had granted epoch 1 already): d1 learns it only
    after its end. d3, which would follow d0 and never hear d1's end, is told it, with
    d1's certificate (the takeover soak's seed 3701345, where d3 kept its hold)."""
    fed = committed([step("s0"), step("s1"), step("s2")],
                    {"s0": "d0", "s1": "d1", "s2": "d2"})
    fed.end("d1", "s1")
    dies(fed, "d0")
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d1"].final[WF] is WorkflowState.FAILED
    fed.net = []
    fed.step("d1", Message("d0", PlacedMsg(WF, "s2", "d3", 99, "d2")))
    ends = [m for to, m in fed.sent_by("d1", FinalMsg) if to == "d3"]
    assert ends and ends[-1].epoch == 1 and ends[-1].state is WorkflowState.FAILED
    assert ends[-1].won  # its certificate, which d3 checks
    assert fed.nodes["d1"].stats["end told to a new domain placed after it"] == 1


def d1_dies_with_d2s_ack_of_placed_held(fed: Federation, step_id: str) -> list:
    """d1 dies (DEAD in every other view) and its steps are placed again; d2's
    acknowledgement of `step_id`'s new placement is held back: returned, to deliver
    later, with the rest of the network delivered."""
    fed.goes_silent_and_dead(
        "d1", keep=lambda src, dst, msg: src == "d2" and isinstance(msg, AckMsg)
        and msg.msg_id[:3] == ("placed", WF, step_id))
    late, fed.net = fed.net, []
    return late


def test_a_new_domain_starts_no_step_of_a_round_still_in_doubt_there() -> None:
    """sa and sb on d1 both wait for s1 on d2; d1 dies and both are placed again on d3,
    new to the workflow, one round each. sa's placement is decided but not yet held by a
    majority (d2's acknowledgement is late), so its COMMIT waits; sb's is told and
    committed. d3 learns the workflow from sb's round, whose whole placement already
    names d3 for sa: sa waits for its own COMMIT, then runs once under its epoch, and
    the workflow ends (takeover soak seed 3900560: sa ran under sb's COMMIT, its result
    of epoch 0 was refused at d0, and d0 waited for it for ever)."""
    fed = committed([step("s1"), step("sa", needs=("s1",)), step("sb", needs=("s1",))],
                    {"s1": "d2", "sa": "d1", "sb": "d1"})
    late = d1_dies_with_d2s_ack_of_placed_held(fed, "sa")
    placed = fed.disks["d0"].placements[WF]
    assert placed["sa"][1] == placed["sb"][1] == "d3"
    assert fed.disks["d3"].committed[WF] == placed["sb"][0]  # new to it by sb's round
    assert fed.disks["d3"].info[(WF, placed["sb"][0])].placement["sa"] == "d3"
    fed.end("d2", "s1")
    assert runs_of(fed, "sa") == []  # its COMMIT not learned at d3 yet
    assert runs_of(fed, "sb") == [("d3", 1)]
    fed.net = late
    fed.deliver()
    assert fed.disks["d3"].learned[(WF, placed["sa"][0])].commit
    assert runs_of(fed, "sa") == [("d3", 1)]
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert fed.nodes["d0"].stats["result of an older placement refused"] == 0



def test_the_original_following_a_later_epoch_takes_the_result_of_a_step_it_had_lost(
) -> None:
    """s1 on d1 SUCCEEDS, its result lost on the way to d0, and d1 stalls (DEAD): d0
    sends s1 back to be placed again (its placement epoch moves on), no domain takes it,
    and the verdict's end waits for d1. d1 comes back, wins epoch 1 (d0 grants it) and
    reports s1 again: d0, which follows d1 now, takes it (its own loss is void with its
    verdict), runs s2, which needs s1, and the workflow ends SUCCEEDED (takeover soak
    seed 4001691: the result was refused as of an older placement, and d1 waited for
    s2 for ever)."""
    fed = lost_where_no_other_domain_takes_it()
    fed.step("d0", MemberState("d1", "ALIVE"))
    d1_back_wins_epoch_1(fed)
    assert fed.evidence.acting == {(WF, 1): "d1"}
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    fed.tick(fed.now + 5.0)  # d1's result, sent again
    assert fed.nodes["d0"].stats["result of an older placement refused"] == 0
    assert runs_of(fed, "s2") == [("d0", 1)]
    fed.end("d0", "s2")
    fed.tick(fed.now + 5.0)
    for n in ("d0", "d1"):
        assert fed.disks[n].final[WF] is WorkflowState.SUCCEEDED


def test_a_result_of_a_step_waiting_to_be_placed_again_is_refused_unacknowledged() -> None:
    """While d0's round for s1 is under way, d1 (lost, back) reports s1: refused by the
    fence, and not acknowledged, so that it comes again, to be taken should d0 follow a
    later epoch before the round ends (the test above)."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    fed.silent.add("d1")
    fed.step("d0", MemberState("d1", "DEAD"))
    fed.net = []  # the round's PREPARE, held: s1 waits to be placed again
    assert fed.nodes["d0"].progress[WF].awaiting_placement() == ["s1"]
    ready = fed.step("d0", Message("d1", ResultMsg(WF, "s1", 1, StepState.SUCCEEDED,
                                                   {}, "", 0)))
    assert fed.nodes["d0"].stats["result of a step awaiting placement refused"] == 1
    assert not [m for _, m in sent(ready) if isinstance(m, AckMsg)]
    assert "s1" not in fed.disks["d0"].results.get(WF, {})


class XOnD2YOnD3(Federation):
    """d2 offers x, d3 y (d1 both, and d0 and d2 a): a step on x can go only to d2, one
    on y only to d3 (a round each refused there is followed by another)."""

    timing = Timing(max_rounds=3, takeover_after_s=3.0)

    def capacities_of(self, name: str) -> dict[str, int]:
        return {"d0": {"a": 4}, "d1": {"x": 4, "y": 4}, "d2": {"a": 4, "x": 4},
                "d3": {"y": 4}}[name]


def test_a_placement_still_told_is_told_to_a_domain_that_joins_the_workflow_meanwhile(
) -> None:
    """sx and sy on d1 wait for s1 on d2; d1 dies. sx is placed again on d2, and its
    COMMIT waits for d2's acknowledgement (late); meanwhile sy is placed on d3, new to
    the workflow: a live domain of it now, which sx's COMMIT waits for too. d3 is told
    sx's placement, acknowledges it, and sx's COMMIT goes (takeover soak seeds 4200157,
    4200171: d3 was never told, the COMMIT never went, d2 held its YES for ever)."""
    fed = XOnD2YOnD3()
    fed.step("d0", Submit(WF, spec_pb2.WorkflowSpec(name="w", steps=[
        spec_pb2.StepSpec(id="s1", capability="a"),
        spec_pb2.StepSpec(id="sx", capability="x", needs=["s1"]),
        spec_pb2.StepSpec(id="sy", capability="y", needs=["s1"])]),
        placement={"s1": "d2", "sx": "d1", "sy": "d1"}))
    fed.deliver()
    assert fed.disks["d0"].rows[WF].state is WorkflowState.RUNNING
    late = d1_dies_with_d2s_ack_of_placed_held(fed, "sx")
    placed = fed.disks["d0"].placements[WF]
    assert (placed["sx"][1], placed["sy"][1]) == ("d2", "d3")
    assert fed.disks["d3"].placements[WF]["sx"] == placed["sx"]  # told, as a domain now
    fed.net = late
    fed.deliver()
    assert fed.disks["d2"].learned[(WF, placed["sx"][0])].commit
    fed.end("d2", "s1")
    end_everything(fed)
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED
    assert not fed.nodes["d2"].participant.holds()


# ---- a round its successor does not know: answered void (replacement_handover.py) ----


def in_doubt_with_the_coordinator_gone(steps: list | None = None,
                                       ) -> tuple[Federation, tuple[str, int]]:
    """s1 (on d1) needs s2 (on d2, left running), unless `steps` says otherwise: d1 dies
    before s1 starts; d0 places s1 again on d3 and dies for good before deciding (d3's
    YES never reached it). d1 comes back and takes over with d2; the workflow runs on
    there, s1 waiting for s2 at d1. Returns the federation and d3's round."""
    fed = committed(steps or [step("s1", needs=("s2",)), step("s2")],
                    {"s1": "d1", "s2": "d2"})
    fed.goes_silent_and_dead(
        "d1", keep=lambda src, dst, msg: isinstance(msg, VoteMsg) and src == "d3")
    fed.net = []
    key = next(h.key for h in fed.nodes["d3"].participant.holds() if h.workflow_id == WF)
    assert fed.nodes["d3"].participant.status(key) == "prepared"
    fed.silent.add("d0")  # gone for good, undecided
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", *[MemberState(m, "DEAD" if m == "d0" else "ALIVE")
                     for m in NAMES if m != "d1"])
    for n in ("d2", "d3"):
        fed.step(n, MemberState("d1", "ALIVE"), MemberState("d0", "DEAD"))
    # d3's asks of these steps are lost: asked before d1 acts, one would be answered
    # once it acts (replacement_handover.py, `asked_early`); d3 asks again on its timer.
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, DecisionQuery) and src == "d3")
    fed.net = []
    assert fed.evidence.acting == {(WF, 1): "d1"}
    return fed, key


def test_a_new_domain_in_doubt_is_answered_void_by_a_successor_that_does_not_know_it(
) -> None:
    """As above, the workflow running on at d1, its end far off (or held for ever: a
    verdict no participant left can acknowledge). d3, asking the workflow's members, is
    answered by d1, which acts in epoch 1 and knows no placement of d3's round (none
    can ever leave its COMMIT: a majority granted epoch 1 without it, and a grant is a
    promise to acknowledge no older epoch's placement): the round is void, and d3
    releases its YES at once, where it held it until the end reached it, or for ever
    (takeover soak seeds 3700979, 3701200). No decision is made up, nothing runs at
    d3."""
    fed, key = in_doubt_with_the_coordinator_gone()
    assert WF not in fed.disks["d1"].placements
    fed.run_until(fed.now + 10.0)
    assert WF not in fed.disks["d1"].final  # s2 still runs at d2
    assert fed.nodes["d1"].stats["re-placement asked: answered void"] >= 1
    assert fed.nodes["d3"].stats["re-placement YES released: void in a later epoch"] == 1
    assert not fed.nodes["d3"].participant.holds()
    assert key not in fed.disks["d3"].holds and key not in fed.disks["d3"].learned
    assert [r for r in runs_of(fed, "s1") if r[0] == "d3"] == []
    assert not [r for n, r in fed.refused if n == "d3"]


def test_a_void_of_an_older_epoch_than_one_followed_or_of_another_domain_changes_nothing(
) -> None:
    """A void is taken from the holder of the latest epoch known here only (a later
    holder may know the placement and hand it out), and for our own YES only."""
    fed, key = in_doubt_with_the_coordinator_gone()
    won = fed.nodes["d1"].takeover.proof.own_certificate(WF, 1)
    d3 = fed.nodes["d3"]
    fed.disks["d3"].granted[WF] = (2, "d2")  # as if it had granted a later epoch since
    d3.state.granted[WF] = (2, "d2")
    fed.step("d3", Message("d1", PlacedMsg(WF, "", "d3", key[1], "", held_epoch=1, won=won,
                                           void=True)))
    fed.step("d3", Message("d1", PlacedMsg(WF, "", "d2", key[1], "", held_epoch=1, won=won,
                                           void=True)))
    assert d3.participant.status(key) == "prepared"
    assert not d3.stats["re-placement YES released: void in a later epoch"]


def test_a_member_that_granted_a_later_epoch_neither_takes_nor_acknowledges_an_older_tell(
) -> None:
    """d2 granted d1's epoch 1: a new placement told by the original (epoch 0) is not
    written there nor acknowledged, so it never counts toward the majority that lets
    the original's COMMIT leave: the majority that elected d1 carried every placement
    whose COMMIT may ever leave (restart_check.py), which is what lets d1 answer a
    round it does not know void. A placement it holds already is acknowledged again."""
    fed, key = in_doubt_with_the_coordinator_gone()
    assert fed.disks["d2"].granted[WF][0] == 1
    fed.net = []
    fed.step("d2", Message("d0", PlacedMsg(WF, "s1", "d3", key[1], "d1")))
    assert WF not in fed.disks["d2"].placements
    assert not fed.sent_by("d2", AckMsg) or all(
        m.msg_id[0] != "placed" for _, m in fed.sent_by("d2", AckMsg))
    assert fed.nodes["d2"].stats["placement of an older epoch refused: a later one granted"] == 1
    fed.disks["d2"].placements[WF] = {"s1": (key[1], "d3", "d1")}
    fed.nodes["d2"].state.placements[WF] = {"s1": (key[1], "d3", "d1")}
    fed.step("d2", Message("d0", PlacedMsg(WF, "s1", "d3", key[1], "d1")))
    assert [m.msg_id[0] for _, m in fed.sent_by("d2", AckMsg)][-1] == "placed"


def test_a_member_that_granted_a_later_epoch_refuses_an_older_tell_of_a_step_placed_since(
) -> None:
    """As above, d2 knowing a later round of s1 already (a successor's, placing it
    again): that is no sign d2 held the original's round when it granted, so the
    original's tell is refused all the same. Acknowledged, it let the original, back
    after its successor had placed the step again and ended, send its round's COMMIT:
    the new domain held a reservation of a workflow that was over (takeover soak seed
    102364)."""
    fed, key = in_doubt_with_the_coordinator_gone()
    later = (1 << 20) + 1  # a round of epoch 1's range
    for state in (fed.disks["d2"], fed.nodes["d2"].state):
        state.placements[WF] = {"s1": (later, "d4", "d1")}
    fed.net = []
    fed.step("d2", Message("d0", PlacedMsg(WF, "s1", "d3", key[1], "d1")))
    assert fed.disks["d2"].placements[WF] == {"s1": (later, "d4", "d1")}
    assert all(m.msg_id[0] != "placed" for _, m in fed.sent_by("d2", AckMsg))
    assert fed.nodes["d2"].stats["placement of an older epoch refused: a later one granted"] == 1


def test_a_successor_takes_no_placement_from_a_grant_that_comes_after_it_acts() -> None:
    """Acting, what d1 knows of the placements is what it may have answered void since:
    a late grant's placement is left (its majority carried every one whose COMMIT can
    ever leave)."""
    fed, key = in_doubt_with_the_coordinator_gone()
    stats = fed.nodes["d1"].stats
    before = stats["placements of a late grant left: acting already"]
    fed.nodes["d1"].placed_here.learn_from_grant(fed.now, WF, (("s1", key[1], "d3", "d1"),))
    fed.flush("d1")
    assert WF not in fed.disks["d1"].placements
    assert stats["placements of a late grant left: acting already"] == before + 1


def test_a_successor_that_is_the_new_domain_hands_the_commit_out_to_itself() -> None:
    """d3 is gone; d1 dies and d0 places s1 again on d2, which votes YES and is told
    the placement (its acknowledgement lost); d0 dies. d2 takes over with d1's grant
    and knows the placement (told, so the round committed) but its progress still has
    s1 on d1: it tells the placement everywhere in its epoch, then makes the COMMIT to
    itself, and runs s1. The original, back and following d2, no longer sends its
    COMMIT, so this was the only way out (takeover soak seed 3200734, where d2 held its
    YES and the workflow waited for ever)."""
    fed = committed([step("s1", idempotent=True), step("s2")], {"s1": "d1", "s2": "d2"})
    dies(fed, "d3")
    fed.goes_silent_and_dead(
        "d1", seen_by=("d0", "d2"),
        keep=lambda src, dst, msg: isinstance(msg, AckMsg) and src == "d2"
        and msg.msg_id[0] == "placed")
    fed.net = []
    epoch, new, _ = fed.disks["d0"].placements[WF]["s1"]
    assert new == "d2" and fed.disks["d2"].placements[WF]["s1"][1] == "d2"
    assert fed.nodes["d2"].participant.status((WF, epoch)) == "prepared"
    fed.silent.add("d0")
    fed.silent.discard("d1")
    fed.restore("d1")  # its view: d0 alive still (it claims nothing, it grants)
    fed.step("d1", *[MemberState(m, "DEAD" if m == "d3" else "ALIVE")
                     for m in NAMES if m != "d1"])
    fed.step("d2", MemberState("d1", "ALIVE"), MemberState("d0", "DEAD"))
    fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PaxosPrepare))
    fed.net = []
    for _ in range(4):
        fed.now += 1.0
        for n in ("d1", "d2"):
            fed.step(n, Tick())
        fed.deliver(keep=lambda src, dst, msg: isinstance(msg, PaxosPrepare))
        fed.net = []
    assert fed.evidence.acting == {(WF, 1): "d2"}
    assert fed.nodes["d2"].stats["re-placement COMMIT handed out by a successor"] == 1
    assert fed.disks["d2"].learned[(WF, epoch)].commit
    assert fed.disks["d1"].placements[WF]["s1"][1] == "d2"  # its placement is over
    assert ("d2", 1) in runs_of(fed, "s1")


class D3TakesAWhenBack(OnlyD1TakesA):
    """Only d1 offers a, until d3 comes back offering it too (`d3_offers_a`)."""

    d3_offers_a = False

    def capacities_of(self, name: str) -> dict[str, int]:
        if name == "d3" and self.d3_offers_a:
            return {"a": 4}
        return super().capacities_of(name)


def test_a_void_verdict_on_the_lost_placement_yields_to_a_new_placement() -> None:
    """d0's verdict on s1 (no domain takes it again) waits for d1. d1, back, wins epoch
    1 and d0 follows it (its reports of s1 lost on the way): the verdict is void, its end
    never made, yet on record. d0, whose view says d1 DEAD, wins epoch 2 and, d3 offering
    a by then, places s1 again there: d3's result is taken, not refused as one after the
    void verdict (a terminal result), and the workflow ends SUCCEEDED (takeover soak
    seed 8101707: RUNNING for ever)."""
    fed = lost_where_no_other_domain_takes_it(D3TakesAWhenBack)
    fed.silent.discard("d1")
    fed.restore("d1")
    fed.step("d1", MemberState("d0", "DEAD"), MemberState("d2", "ALIVE"),
             MemberState("d3", "ALIVE"))
    fed.step("d1", MemberState("d0", "ALIVE"))

    def d1s_reports(src: str, dst: str, msg: object) -> bool:
        return src == "d1" and isinstance(msg, ResultMsg)

    fed.deliver(keep=lambda src, dst, msg: d1s_reports(src, dst, msg)
                or src == "d0" and isinstance(msg, (FinalMsg, ClaimMsg)))
    claims = [m for m in fed.net if isinstance(m[2], ClaimMsg)]
    fed.net = []
    d0 = fed.nodes["d0"]
    assert fed.disks["d0"].epochs[WF] == (1, "d1")
    fed.step("d0", Tick())
    assert not d0.domain_loss.holds(WF)
    assert d0.stats["loss verdict void: driven or ended elsewhere"] == 1
    assert result(fed, "d0", "s1")[1] is StepState.FAILED  # on record still
    fed.d3_offers_a = True
    fed.restore("d3")
    fed.step("d3", *fed.first_inputs("d3"))
    fed.net = claims
    for _ in range(2):
        fed.now += 3.0
        for n in NAMES:
            fed.step(n, Tick())
        fed.deliver(keep=d1s_reports)
        fed.net = []
    assert fed.disks["d0"].epochs[WF] == (2, "d0")
    assert fed.disks["d0"].placements[WF]["s1"][1] == "d3"
    fed.end("d3", "s1")
    assert d0.stats["result after a terminal one refused"] == 0
    assert result(fed, "d0", "s1")[1] is StepState.SUCCEEDED
    fed.end("d0", "s2")
    for _ in range(3):
        fed.tick(fed.now + 3.0)
        fed.net = []
    assert fed.disks["d0"].final[WF] is WorkflowState.SUCCEEDED


# ---- the cores' deadlines from a table, against asking every core --------------------

def _walk_timer(r) -> float | None:
    """What `Replacements.timer` gave before the table: every core asked (and the
    parts with timers of their own: the mandates, the COMMITs resent)."""
    times = [core.get_timer() for core, _, _ in r.cores.values()]
    return min((t for t in (*times, r.mandates.timer(), r.told.timer()) if t is not None),
               default=None)


def test_every_turn_of_the_replacement_scenarios_reads_the_walks_earliest(monkeypatch) -> None:
    """The scenarios of the re-placement tests, each Node's `timer` checked after every
    turn and its `tick` at every call against the walk of its cores: the same earliest deadline, the same cores
    handled at a tick, in the cores' order."""
    import inspect

    from fedorch.core.node.replacement import Replacements

    from tests.unit.core.node import (
        test_replacement_classic,
        test_replacement_handover,
        test_replacement_successor,
    )

    tick, ready = Replacements.tick, Node.ready
    seen = Counter()

    def checked_ready(self):  # after every turn of every Node
        assert self.replacement.timer() == _walk_timer(self.replacement)
        seen["with cores" if self.replacement.cores else "none"] += 1
        return ready(self)

    def checked_tick(self, now):
        expected = [wf for wf, (core, _, _) in self.cores.items()
                    if (t := core.get_timer()) is not None and t <= now]
        handled = []
        for wf in expected:
            handle = self.cores[wf][0].handle_timer
            monkeypatch.setattr(self.cores[wf][0], "handle_timer",
                                lambda now, wf=wf, h=handle: (handled.append(wf), h(now)))
        tick(self, now)
        assert handled == expected
        seen["due"] += bool(expected)

    monkeypatch.setattr(Node, "ready", checked_ready)
    monkeypatch.setattr(Replacements, "tick", checked_tick)
    here_test = test_every_turn_of_the_replacement_scenarios_reads_the_walks_earliest
    here = inspect.getmodule(here_test)
    for module in (here, test_replacement_classic, test_replacement_successor,
                   test_replacement_handover):
        for name, test in sorted(vars(module).items()):
            if name.startswith("test_") and inspect.isfunction(test) \
                    and test.__module__ == module.__name__ and test is not here_test \
                    and not inspect.signature(test).parameters:
                test()
    assert seen["with cores"] > 50 and seen["due"] > 0  # rounds under way were seen
