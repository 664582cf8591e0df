"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from agent.config import parse_config_text
from agent.identity.keys import init_keys
from agent.server.agent import Agent
from agent.store.store import Store


@pytest.fixture
async def agent(tmp_path):
    """An agent object for domain alpha on a temporary data dir, not started: no server,
    no membership; tests drive its shells directly."""
    init_keys("alpha", tmp_path / "keys")
    config = parse_config_text(
        "domain: alpha\nlisten: 127.0.0.1:1\ndata_dir: data\nkey_file: keys/alpha.key\n",
        "alpha.yaml", tmp_path)
    store = await Store.open(tmp_path / "data")
    try:
        yield Agent(config, store)
    finally:
        await store.close()
