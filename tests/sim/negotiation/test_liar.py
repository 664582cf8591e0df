"""A trusted domain that lies (agent.sim.negotiation.liar) in the seeded simulation:
every invariant holds for the honest domains; without the authority checks at the
simulated input boundary the same lies break them (so the checker can see them)."""

from __future__ import annotations

import random
from collections import Counter

import fedorch.sim.negotiation.agent as sim_agent
from fedorch.core.node.retention_rounds import RoundLife
from fedorch.core.node.votes import evidence_holds
from fedorch.sim.negotiation.config import Config
from fedorch.sim.negotiation.run import Simulation, run, seeded_config
from fedorch.sim.negotiation.takeover import sim_verify


def _with_liar(seed: int) -> Config:
    config = Config.random(random.Random(seed))
    config.liar = "liar"
    return config


def test_every_invariant_holds_for_honest_domains_with_a_liar_in_every_run():
    stats: Counter[str] = Counter()
    for seed in range(300):
        stats.update(run(seed, _with_liar(seed)).stats)  # raises on any violation
    assert stats["lie"] > 1000
    for reason in ("not_acceptor", "not_proposer", "not_party", "not_coordinator",
                   "not_step_domain", "not_participant", "impersonation"):
        assert stats[f"refused {reason}"] > 0, reason
    assert stats["refused replayed submission"] > 0
    # Forged and stale key records reached every honest domain and changed no key.
    assert stats["key records refused"] > 0 and stats["key records changed"] == 0


def test_without_the_authority_checks_the_same_lies_break_the_invariants(monkeypatch):
    monkeypatch.setattr(sim_agent, "check_input", lambda agent, src, msg: None)
    broken: Counter[str] = Counter()
    for seed in range(40):
        report = Simulation(seed, _with_liar(seed)).run()
        broken.update(v.split(":")[0] for v in report.violations)
    assert broken["atomicity"] > 0 and broken["result"] > 0 and broken["end"] > 0


def test_without_the_submission_check_a_replayed_signed_spec_is_admitted(monkeypatch):
    """The liar replays clients' signed submissions as workflows of its own; the
    participants' check (signed for its coordinator, one workflow id) is what stops them."""
    monkeypatch.setattr(sim_agent, "check_submission", lambda agent, now, tx, info: None)
    broken: Counter[str] = Counter()
    for seed in range(40):
        report = Simulation(seed, _with_liar(seed)).run()
        broken.update(v.split(":")[0] for v in report.violations)
    assert broken["replay"] > 0


def test_the_checker_sees_a_view_of_anothers_keys_changed(monkeypatch):
    """The key invariant can fail: let the liar's records replace a domain's key (as a
    trust store that took a record signed by another domain would), and it does."""
    from fedorch.core.identity.trust import TrustStore
    from fedorch.sim.negotiation.keyring import KeyRecordsMsg

    def take_any(self, now, src, msg):
        keyring = self.sim.keyring
        victim = next(n for n in sorted(keyring.roots) if n not in (self.name, src))
        self.trust = TrustStore({**keyring.roots, victim: keyring.roots[src]})

    monkeypatch.setitem(sim_agent._HANDLERS, KeyRecordsMsg, take_any)
    broken: Counter[str] = Counter()
    for seed in range(20):
        report = Simulation(seed, _with_liar(seed)).run()
        broken.update(v.split(":")[0] for v in report.violations)
    assert broken["keys"] > 0


def _certificates_hold(sim: Simulation, forgotten: list | None = None) -> int:
    """Every COMMIT an honest agent holds (learned, recorded, proposed) carries a YES of
    each participant signed by that participant; how many were looked at. `forgotten`:
    (key, value) of the decisions learned that retention forgot during the run (their
    round past its life), looked at too."""
    seen = 0
    held = [(key, value) for agent in sim.agents.values()
            for table in (agent.durable.learned, agent.durable.records, agent.durable.cells)
            for key, value in table.items()]
    for key, value in held + (forgotten or []):
        if not value.commit:
            continue
        seen += 1
        tx = sim.checker.txs[key]
        yes = {v.domain for v in value.votes if v.yes and evidence_holds(
            sim_verify, key, v.domain, True, v.raw)}
        assert set(tx.participants) <= yes, (key, value)
        assert all(evidence_holds(sim_verify, key, v.domain, v.yes, v.raw)
                   for v in value.votes), (key, value)
    return seen


def test_forged_votes_in_commit_certificates_and_round_proofs_are_all_refused(monkeypatch):
    """The liar shows COMMITs with every participant's YES made without their keys (its
    own key in their names, the old unsigned stand-in, nothing), in decisions,
    Accepts, answers, votes and round proofs to acceptors holding no step: none is
    taken. No honest domain holds a COMMIT whose votes are not its voters' own, and
    none granted the liar an epoch on a forged round proof."""
    stats: Counter[str] = Counter()
    checked = 0
    forgotten: list = []  # the decisions retention forgot (their round past its life)
    forget_round = RoundLife.forget

    def keeping(self: RoundLife, key: tuple[str, int], wall: int) -> None:
        value = self.n.state.learned.get(key)
        forget_round(self, key, wall)
        if value is not None and key not in self.n.state.learned:
            forgotten.append((key, value))

    monkeypatch.setattr(RoundLife, "forget", keeping)
    for seed in range(60):
        config = seeded_config(seed, 3.0)
        config.liar = "liar"
        sim = Simulation(seed, config)
        report = sim.run()
        assert not report.violations, report.violations
        stats.update(report.stats)
        checked += _certificates_hold(sim, forgotten)
        forgotten.clear()
        for agent in sim.agents.values():
            assert all(holder != "liar" for _, holder in agent.durable.granted.values())
    assert checked > 100
    assert stats["liar forged COMMIT certificate"] > 20
    assert stats["liar forged round proof"] > 20
    assert stats["refused forged_vote"] > 0
    assert stats["takeover claim refused bad_round_proof"] > 0
