"""The retention section's bounds of the records kept of compacted workflows' ends
(core/node/ended_records.py): defaults, given values reaching the Node's policy, and a
clear error naming the field."""

from __future__ import annotations

import pytest
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.node_engine.engine import timing_of

MINIMAL = "domain: eu\nlisten: 127.0.0.1:7101\ndata_dir: d\nkey_file: k\n"


def test_defaults_keep_a_day_and_a_hundred_thousand():
    config = parse_config_text(MINIMAL, "eu.yaml", "/base")
    assert config.retention.keep_end_records_s == 86400
    assert config.retention.max_end_records == 100000
    policy = timing_of(config).retention
    assert (policy.keep_end_records_s, policy.max_end_records) == (86400, 100000)


def test_given_values_reach_the_nodes_policy():
    config = parse_config_text(
        MINIMAL + "retention: {keep_end_records_s: 7.5, max_end_records: 3}\n", "eu.yaml", "/b")
    policy = timing_of(config).retention
    assert (policy.keep_end_records_s, policy.max_end_records) == (7.5, 3)


@pytest.mark.parametrize("section, message", [
    ("{keep_end_records_s: 0}", "retention.keep_end_records_s: must be a positive number"),
    ("{max_end_records: -1}", "retention.max_end_records: must be a positive integer"),
])
def test_bad_values_name_the_field(section, message):
    with pytest.raises(ConfigError) as info:
        parse_config_text(MINIMAL + f"retention: {section}\n", "eu.yaml", "/base")
    assert message in str(info.value)
