"""`engine:` in the agent config: parsed as the proto's enum, and what the node engine
refuses at start-up (runtime/node_engine/engine.py)."""

from __future__ import annotations

import pytest
from fedorch.core.membership.swim_profiles import make_profile, suspicion_bounds
from fedorch.gen.fedorch.v1 import config_pb2
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.node_engine.engine import (
    LEASE_DEAD_TIMES,
    check_node_config,
    timing_of,
)

MINIMAL = """\
domain: eu-west
listen: 127.0.0.1:7101
data_dir: ./data/eu-west
key_file: keys/eu-west.key
"""


def _config(extra: str = "") -> config_pb2.AgentConfig:
    return parse_config_text(MINIMAL + extra, "agent.yaml", "/etc/fedorch")


def test_an_unknown_engine_is_refused_naming_the_field():
    with pytest.raises(ConfigError, match="engine"):
        _config("engine: nodes\n")


def test_the_node_engine_runs_classic_two_phase_commit_when_the_config_says_2pc():
    config = _config("engine: node\nnegotiation: {commit: 2pc}\n")
    check_node_config(config)  # no longer refused at start-up
    assert timing_of(config).classic
    assert not timing_of(_config("engine: node\nnegotiation: {commit: paxos}\n")).classic
    assert not timing_of(_config("engine: node\n")).classic  # Paxos Commit by default


def test_the_nodes_timings_come_from_the_negotiation_config():
    timing = timing_of(_config("negotiation: {lease_s: 4, prepare_timeout_s: 2,"
                               " max_rounds: 3}\n"))
    assert (timing.lease_s, timing.prepare_timeout_s, timing.max_rounds) == (4, 2, 3)


def test_the_nodes_retention_comes_from_the_retention_config():
    timing = timing_of(_config("retention: {keep_ended_s: 3600, max_ended_workflows: 50}\n"
                               "negotiation: {replay_window_s: 30}\n"))
    assert timing.retention is not None
    assert (timing.retention.keep_ended_s, timing.retention.max_ended_workflows,
            timing.retention.late_message_s) == (3600, 50, 60)


def test_the_node_engine_takes_over_after_the_configured_silence():
    assert timing_of(_config("engine: node\n")).takeover_after_s == 10.0
    config = _config("engine: node\nnegotiation: {takeover_after_s: 3}\n")
    assert timing_of(config).takeover_after_s == 3.0


def test_the_step_lease_is_the_configured_one_else_the_default_engines():
    assert timing_of(_config("negotiation: {step_lease_s: 7}\n")).step_lease_s == 7.0
    # Unset: three times the profile's longest time to a DEAD verdict, as the default
    # engine's self-fencing takes it (runtime/self_fencing.py), for the trusted domains.
    for profile in ("local", "lan", "wan"):
        swim = make_profile(profile)
        expected = LEASE_DEAD_TIMES * (swim.probe_interval + suspicion_bounds(swim, 1)[1])
        lease = timing_of(_config(f"gossip: {{profile: {profile}}}\n")).step_lease_s
        assert lease == pytest.approx(expected) and lease > 0, profile
    # Longer for a slower profile: the lease follows the time to a DEAD verdict.
    assert timing_of(_config("gossip: {profile: wan}\n")).step_lease_s \
        > timing_of(_config("gossip: {profile: local}\n")).step_lease_s


def test_the_time_to_a_dead_verdict_is_the_gossip_profiles_shortest_suspicion():
    """`Timing.dead_after_s` (the start margin is half of it: core/node/start_asks.py) is
    the shortest silence after which the profile gives a DEAD verdict: a sign of life
    within the shortest suspicion postpones it, and that is shortest at ten members or
    fewer; never longer than the detector's for a bigger federation."""
    for profile in ("local", "lan", "wan"):
        swim = make_profile(profile)
        dead_after = timing_of(_config(f"gossip: {{profile: {profile}}}\n")).dead_after_s
        assert dead_after == pytest.approx(swim.suspicion_alpha * swim.probe_interval)
        assert all(dead_after <= suspicion_bounds(swim, n)[0] for n in (1, 10, 30, 1000))
    tuned = timing_of(_config(
        "gossip: {profile: lan, tuning: {probe_interval: 1.0, suspicion_alpha: 6}}\n"))
    assert tuned.dead_after_s == pytest.approx(6.0)
    assert timing_of(_config("gossip: {profile: wan}\n")).dead_after_s \
        > timing_of(_config("gossip: {profile: lan}\n")).dead_after_s
