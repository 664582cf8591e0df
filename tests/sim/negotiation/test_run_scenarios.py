"""Targeted, deterministic runs of the commit protocol through the simulator."""

from __future__ import annotations

import pytest
from fedorch.core.negotiation import acceptor as acceptor_module
from fedorch.core.negotiation import coordinator as coordinator_module
from fedorch.core.negotiation import coordinator_deciding as deciding_module
from fedorch.core.negotiation.messages import (
    Accepted,
    AnswerStatus,
    DecisionAnswer,
    DecisionQuery,
)
from fedorch.core.negotiation.participant import HoldState
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.sim.negotiation.config import Config, Workflow
from fedorch.sim.negotiation.disk import PrepareMsg, Timing, VoteMsg
from fedorch.sim.negotiation.run import Simulation, SimulationFailure, run

WF = "d0.w0"
KEY = (WF, 1)
LEASE = Timing().lease_s


def scenario(placement: dict[str, str], *, agents: int = 3, seed: int = 1,
             timing: Timing | None = None, **faults) -> Simulation:
    """One workflow coordinated by d0, one step per entry of `placement`, no random faults."""
    names = [f"d{i}" for i in range(agents)]
    steps = [spec_pb2.StepSpec(id=s, capability="a") for s in placement]
    spec = spec_pb2.WorkflowSpec(name="w0", steps=steps)
    config = Config(
        names=names,
        policies={n: config_pb2.Policy(accept_from=["*"]) for n in names},
        capacities={n: {"a": 4} for n in names},
        workflows=[Workflow(WF, "d0", 1.0, spec, dict(placement))],
        timing=timing or Timing(max_rounds=1),
        **faults,
    )
    return Simulation(seed, config)


def crash_d0_forever_at(what: str):
    def hook(agent, now, label):
        return "forever" if agent.name == "d0" and label == what else None
    return hook


def pause_d0_at_its_accepts_to_the_others():
    """Stall d0 for 20 s as its ballot-0 Accepts leave for the other acceptors (its first
    Accept goes to its own acceptor)."""
    seen = []

    def hook(agent, now, what):
        if agent.name == "d0" and what == "send Accept":
            seen.append(now)
            if len(seen) == 2:
                agent.paused_until = now + 20.0
    return hook


def learned(sim: Simulation, name: str, key=KEY):
    value = sim.agents[name].disk.learned.get(key)
    return None if value is None else value.commit


def assert_clean(sim: Simulation):
    report = sim.run()
    assert report.violations == [], report.violations
    return report


# ---- the coordinator dies forever ------------------------------------------------------


def test_coordinator_dies_after_all_yes_before_deciding_participants_abort() -> None:
    sim = scenario({"s1": "d1", "s2": "d2"})
    sim.crash_hook = crash_d0_forever_at("PersistProposal")
    assert_clean(sim)
    assert set(sim.checker.yes[KEY]) == {"d1", "d2"}  # both voted YES, then lost d0
    assert learned(sim, "d1") is False and learned(sim, "d2") is False
    last_lease = max(sim.checker.yes[KEY].values())
    for name in ("d1", "d2"):
        assert sim.checker.learned_at[(name, KEY)] <= last_lease + 2 * LEASE
        assert sim.agents[name].participant.holds() == []


def test_coordinator_dies_between_its_own_accept_and_the_others_abort_is_safe() -> None:
    # Only d0's acceptor takes COMMIT: not a majority, so the participants may abort.
    sim = scenario({"s1": "d1", "s2": "d2"})
    sim.intercept = lambda src, dst, msg, now: (
        "drop" if type(msg).__name__ == "Accept" and src == "d0" and dst != "d0" else None)
    sim.crash_hook = crash_d0_forever_at("send Accepted")
    assert_clean(sim)
    assert sim.agents["d0"].disk.acceptor[KEY].accepted_value.commit
    assert learned(sim, "d1") is False and learned(sim, "d2") is False


@pytest.mark.parametrize("broadcast", [True, False])
def test_coordinator_dies_after_commit_is_chosen_participants_learn_commit(broadcast) -> None:
    sim = scenario({"s1": "d1", "s2": "d2"})
    sim.crash_hook = crash_d0_forever_at("PersistDecision")
    if not broadcast:  # no Accepted notices to learners: recovery must find the COMMIT
        sim.intercept = lambda src, dst, msg, now: (
            "drop" if isinstance(msg, Accepted) and msg.ballot.n == 0 and dst != "d0"
            else None)
    assert_clean(sim)
    assert learned(sim, "d1") is True and learned(sim, "d2") is True
    assert {(WF, "s1", 1), (WF, "s2", 1)} <= set(sim.checker.runs)  # the steps ran
    if not broadcast:
        assert sim.stats["PaxosPrepare"] > 0 and sim.stats["termination learned COMMIT"] == 2


def test_with_three_acceptors_each_participant_learns_from_its_own_accept() -> None:
    sim = scenario({"s1": "d1", "s2": "d2"})
    sent = []
    sim.intercept = lambda src, dst, msg, now: sent.append((src, dst, msg)) and None
    assert_clean(sim)
    accepted = [(src, dst) for src, dst, msg in sent if isinstance(msg, Accepted)]
    # Each acceptor answers the proposer d0, and hands its own learner its acceptance and
    # d0's word; no Accepted travels between the participants.
    assert sorted(accepted) == [("d0", "d0"), ("d1", "d0"), ("d1", "d1"), ("d1", "d1"),
                                ("d2", "d0"), ("d2", "d2"), ("d2", "d2")]
    assert sim.stats["termination learned COMMIT"] == 2
    assert learned(sim, "d1") is True and learned(sim, "d2") is True


def test_a_participant_that_missed_its_accept_recovers_the_commit() -> None:
    sim = scenario({"s1": "d1", "s2": "d2"})
    sim.crash_hook = crash_d0_forever_at("PersistDecision")
    sim.intercept = lambda src, dst, msg, now: (
        "drop" if type(msg).__name__ == "Accept" and src == "d0" and dst == "d2" else None)
    assert_clean(sim)
    assert learned(sim, "d1") is True and learned(sim, "d2") is True
    assert sim.stats["PaxosPrepare"] > 0  # d2 was in doubt: a recovery ballot found it
    last_lease = max(sim.checker.yes[KEY].values())
    assert sim.checker.learned_at[("d2", KEY)] <= last_lease + 2 * LEASE


def test_duelling_recovery_proposers_agree() -> None:
    # Four participants start their recovery ballots at the same moment.
    timing = Timing(max_rounds=1, stagger_s=0.0, backoff_s=0.05)
    placement = {f"s{i}": f"d{i}" for i in range(1, 5)}
    for seed in range(1, 21):
        sim = scenario(placement, agents=5, seed=seed, timing=timing)
        sim.crash_hook = crash_d0_forever_at("PersistProposal")
        assert_clean(sim)
        assert {learned(sim, f"d{i}") for i in range(1, 5)} == {False}


# ---- message faults ----------------------------------------------------------------------


def test_duplicated_and_reordered_messages_are_harmless() -> None:
    placement = {"s1": "d1", "s2": "d2", "s3": "d0"}
    commits = 0
    for seed in range(40):
        sim = scenario(placement, seed=seed, duplicate=0.5, slow=0.5, max_delay=4.0)
        report = assert_clean(sim)
        # Decisions travel as the acceptors' Accepted, and as notices to the silent.
        assert sim.stats["Accepted"] + sim.stats["Decision"] >= 2
        commits += report.committed
    assert commits > 0


def test_a_late_prepare_after_the_abort_cannot_reserve() -> None:
    sim = scenario({"s1": "d1", "s2": "d2"})
    # d2's PREPAREs arrive after the prepare timeout (2 s), hence after the ABORT.
    sim.intercept = lambda src, dst, msg, now: (
        4.0 if isinstance(msg, PrepareMsg) and dst == "d2" else None)
    votes = []
    inner = sim.intercept

    def spy(src, dst, msg, now):
        if isinstance(msg, VoteMsg) and src == "d2":
            votes.append(msg)
        return inner(src, dst, msg, now)
    sim.intercept = spy
    assert_clean(sim)
    assert sim.agents["d0"].disk.rows[WF].state is WorkflowState.ABORTED
    assert votes and not any(v.yes for v in votes)
    assert {v.reason for v in votes} == {"round already decided"}
    assert sim.agents["d2"].participant.holds() == []
    assert sim.stats["late PREPARE refused"] >= 1


def test_a_paused_coordinator_cannot_overturn_the_participants_abort() -> None:
    # d0's own acceptor takes COMMIT in ballot 0; d0 stalls for 20 s just as its Accepts
    # to the others leave; meanwhile d1 (whose lease passes) and d2 (an extra acceptor)
    # choose ABORT. The late Accepts are refused.
    sim = scenario({"s1": "d1"})
    sim.crash_hook = pause_d0_at_its_accepts_to_the_others()
    assert_clean(sim)
    assert learned(sim, "d1") is False
    assert sim.stats["coordinator proposed commit, abort chosen"] == 1
    assert sim.stats["Reject"] > 0
    assert sim.agents["d0"].disk.rows[WF].state is WorkflowState.ABORTED


# ---- restarts ----------------------------------------------------------------------------


def ask(sim: Simulation, name: str, key) -> DecisionAnswer:
    answers = []
    sim.intercept = lambda src, dst, msg, now: answers.append(msg) or "drop"
    sim.agents[name].deliver(sim.now, "d2", DecisionQuery(key, "d2"))
    return answers[-1]


def test_a_restarted_agent_answers_decision_queries_from_its_log() -> None:
    sim = scenario({"s1": "d1", "s2": "d2"})
    assert_clean(sim)
    assert sim.agents["d0"].disk.rows[WF].state is WorkflowState.SUCCEEDED
    for name in ("d0", "d1"):
        agent = sim.agents[name]
        agent.crash()
        agent.boot(sim.now)
    participant = ask(sim, "d1", KEY)
    assert participant.status is AnswerStatus.DECIDED and participant.value.commit
    coordinator = ask(sim, "d0", KEY)  # the COMMIT record was collected after every ack
    assert coordinator.status in (AnswerStatus.FORGOTTEN, AnswerStatus.DECIDED)
    assert coordinator.value is None or coordinator.value.commit
    assert ask(sim, "d1", ("d0.other", 1)).status is AnswerStatus.NOT_PREPARED


def test_a_coordinator_restarted_before_deciding_presumes_abort_first() -> None:
    sim = scenario({"s1": "d1", "s2": "d2"})
    crashed = []

    def hook(agent, now, what):
        if agent.name == "d0" and what == "PersistProposal" and not crashed:
            crashed.append(now)
            return "crash"
        return None
    sim.crash_hook = hook
    assert_clean(sim)
    d0 = sim.agents["d0"]
    assert d0.disk.cells[KEY].commit is False  # the cell holds ABORT: no COMMIT can follow
    assert d0.disk.rows[WF].state is WorkflowState.ABORTED
    assert learned(sim, "d1") is False and learned(sim, "d2") is False


def test_a_reservation_that_never_voted_yes_ends_with_its_lease() -> None:
    # d1 crashes between its reservation and its prepare record: it never voted YES.
    # Neither the PREPARE's resends nor the ABORT reach it: only the lease frees it.
    sim = scenario({"s1": "d1"})
    sim.crash_hook = lambda agent, now, what: (
        "crash" if agent.name == "d1" and what == "prepare record" and now < 2 else None)
    sim.intercept = lambda src, dst, msg, now: (
        "drop" if dst == "d1" and type(msg).__name__ in ("Decision", "PrepareMsg") and now > 1.2
        else None)
    assert_clean(sim)
    assert sim.stats["reservation expired unvoted"] == 1
    assert sim.agents["d1"].participant.holds() == []
    assert not any(h.state is HoldState.RESERVED for a in sim.agents.values()
                   for h in a.disk.holds.values())


# ---- the checker can fail ------------------------------------------------------------------


def test_same_seed_same_run() -> None:
    a, b = Simulation(4242).run(), Simulation(4242).run()
    assert a == b


def test_an_acceptor_that_accepts_a_lower_ballot_is_caught(monkeypatch) -> None:
    monkeypatch.setattr(acceptor_module.Acceptor, "_may_accept",
                        staticmethod(lambda record, ballot: True))
    sim = scenario({"s1": "d1"})
    sim.crash_hook = pause_d0_at_its_accepts_to_the_others()
    report = sim.run()
    assert any(v.startswith("consensus:") for v in report.violations), report.violations
    # Random runs find it too, and the failure names the seed that replays it.
    caught = []
    for seed in range(400):
        try:
            run(seed)
        except SimulationFailure as e:
            caught.append(str(e))
            break
    assert caught and caught[0].startswith("seed ")
    seed = int(caught[0].split()[1].rstrip(":"))
    assert Simulation(seed).run().violations  # the seed replays the failure


def test_a_coordinator_that_announces_before_a_majority_accepted_is_caught(monkeypatch) -> None:
    # Classic 2PC's shortcut: announce COMMIT at once. A participant that heard it and
    # one that recovered without it disagree once the coordinator dies.
    def announce_at_once(core, now, rnd):
        value = coordinator_module.Value(True, tuple(rnd.votes[d] for d in sorted(rnd.votes)))
        deciding_module.cas(core, rnd.number, value)
        deciding_module.announce_commit(core, now, rnd, value)
    monkeypatch.setattr(deciding_module, "commit", announce_at_once)
    sim = scenario({f"s{i}": f"d{i}" for i in range(1, 5)}, agents=5)
    sim.intercept = lambda src, dst, msg, now: (
        "drop" if type(msg).__name__ == "Decision" and src == "d0" and dst != "d1" else None)

    def hook(agent, now, what):
        if agent.name == "d0" and what == "Finished":
            return "forever"
        if agent.name == "d1" and what == "hold committed":
            return "forever"  # it heard COMMIT, then died with it
        return None
    sim.crash_hook = hook
    report = sim.run()
    assert any(v.startswith("atomicity:") for v in report.violations), report.violations


def test_a_proposer_that_ignores_accepted_values_is_caught(monkeypatch) -> None:
    from fedorch.core.negotiation import termination
    monkeypatch.setattr(termination.Proposer, "_adopt", lambda self: self.preferred)
    sim = scenario({"s1": "d1", "s2": "d2"})
    sim.crash_hook = crash_d0_forever_at("PersistDecision")
    sim.intercept = lambda src, dst, msg, now: (  # nobody but d0 learns ballot 0's COMMIT
        "drop" if isinstance(msg, Accepted) and msg.ballot.n == 0 and dst != "d0" else None)
    report = sim.run()
    assert any(v.startswith(("consensus:", "atomicity:")) for v in report.violations)
