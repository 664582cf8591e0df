"""The retention section of the agent config: defaults, given values (the end records'
bounds reaching the Node's policy, core/node/ended_records.py), and a clear error
naming the field for a value that cannot bound anything."""

from __future__ import annotations

import pytest
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.node_engine.engine import timing_of

MINIMAL = "domain: eu\nlisten: 127.0.0.1:7101\ndata_dir: d\nkey_file: k\n"


def test_defaults_keep_a_week_and_a_hundred_thousand():
    retention = parse_config_text(MINIMAL, "eu.yaml", "/base").retention
    assert retention.keep_ended_s == 604800
    assert retention.max_ended_workflows == 100000


def test_given_values_are_kept():
    config = parse_config_text(
        MINIMAL + "retention: {keep_ended_s: 1.5, max_ended_workflows: 5}\n", "eu.yaml", "/b")
    assert config.retention.keep_ended_s == 1.5
    assert config.retention.max_ended_workflows == 5


def test_end_records_keep_a_day_and_a_hundred_thousand_by_default():
    config = parse_config_text(MINIMAL, "eu.yaml", "/base")
    assert config.retention.keep_end_records_s == 86400
    assert config.retention.max_end_records == 100000
    policy = timing_of(config).retention
    assert (policy.keep_end_records_s, policy.max_end_records) == (86400, 100000)


def test_given_end_record_bounds_reach_the_nodes_policy():
    config = parse_config_text(
        MINIMAL + "retention: {keep_end_records_s: 7.5, max_end_records: 3}\n", "eu.yaml", "/b")
    policy = timing_of(config).retention
    assert (policy.keep_end_records_s, policy.max_end_records) == (7.5, 3)


@pytest.mark.parametrize("section, message", [
    ("{keep_ended_s: 0}", "retention.keep_ended_s: must be a positive number of seconds"),
    ("{keep_ended_s: -5}", "retention.keep_ended_s: must be a positive number of seconds"),
    ("{max_ended_workflows: 0}", "retention.max_ended_workflows: must be a positive integer"),
    ("{max_ended_workflows: -1}", "retention.max_ended_workflows: must be a positive integer"),
    ("{max_ended_workflows: 2.5}", "retention.max_ended_workflows"),
    ("{keep_ended: 5}", "retention.keep_ended: unknown key"),
    ("{keep_end_records_s: 0}", "retention.keep_end_records_s: must be a positive number"),
    ("{max_end_records: -1}", "retention.max_end_records: must be a positive integer"),
])
def test_bad_values_name_the_field(section, message):
    with pytest.raises(ConfigError) as info:
        parse_config_text(MINIMAL + f"retention: {section}\n", "eu.yaml", "/base")
    assert message in str(info.value)
