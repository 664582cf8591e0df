"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
from fedorch.core.identity.keys import init_keys
from fedorch.runtime.agent import Agent
from fedorch.runtime.config import parse_config_text
from fedorch.runtime.store.store import Store


async def _agent(tmp_path, extra: str = ""):
    init_keys("alpha", tmp_path / "keys")
    config = parse_config_text(
        "domain: alpha\nlisten: 127.0.0.1:1\ndata_dir: data\nkey_file: keys/alpha.key\n" + extra,
        "alpha.yaml", tmp_path)
    store = await Store.open(tmp_path / "data")
    try:
        yield Agent(config, store)
    finally:
        await store.close()


@pytest.fixture
async def agent(tmp_path):
    """An agent object for domain alpha on a temporary data dir, not started: no server,
    no membership; tests drive its parts directly."""
    async for a in _agent(tmp_path):
        yield a


@pytest.fixture
async def worker(tmp_path):
    """The same agent with capability x (4 slots, a builtin echo step): it can vote YES."""
    async for a in _agent(tmp_path, "capabilities:\n"
                                    "  - {name: x, capacity: 4, executor: {type: builtin, name: echo}}\n"):
        yield a
