from __future__ import annotations

import os
import pathlib
import random
import signal
import sys

import pytest

from tests.integration.federation import naps_running, running_federation

# eu-west and partner hold EU data; us-east takes only US data and keeps that
# private, so coordinators learn it by refusal (as in the demo).
DOMAINS = {
    "eu-west": {
        "labels": {"jurisdiction": "EU", "cloud": "aws"},
        "capabilities": [
            {"name": "data.extract", "capacity": 4, "executor": {"type": "builtin", "name": "echo"}},
            {"name": "ml.train", "capacity": 2, "cost": 5,
             "executor": {"type": "builtin", "name": "echo"}},
            {"name": "test.flaky", "capacity": 4, "executor": {"type": "builtin", "name": "fail"}},
            {"name": "test.sleep", "capacity": 4, "executor": {"type": "builtin", "name": "sleep"}},
        ],
        "policy": {"residency": {"accept": ["EU"]}},
    },
    "us-east": {
        "labels": {"jurisdiction": "US", "cloud": "aws"},
        "capabilities": [
            {"name": "ml.train", "capacity": 8, "cost": 1,
             "executor": {"type": "builtin", "name": "echo"}},
        ],
        "policy": {"residency": {"accept": ["US"]}, "publish": False},
    },
    "partner": {
        "labels": {"jurisdiction": "EU", "cloud": "onprem"},
        "capabilities": [
            {"name": "report.publish", "capacity": 2,
             "executor": {"type": "builtin", "name": "echo"}},
            {"name": "test.sleep", "capacity": 2, "executor": {"type": "builtin", "name": "sleep"}},
            {"name": "test.double", "capacity": 2,
             "executor": {"type": "command", "argv": [
                 sys.executable, str(pathlib.Path(__file__).parent / "steps" / "double.py")]}},
        ],
        "policy": {"accept_from": ["eu-west", "us-east"], "residency": {"accept": ["EU"]}},
    },
}


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    with running_federation(tmp_path_factory.mktemp("federation"), DOMAINS) as fed:
        yield fed


@pytest.fixture
async def fed(federation):
    """The module's federation, with gRPC channels bound to this test's event loop, and
    with every slot the previous test used free again everywhere (else a test submitting
    right after another would be placed by records that still count those slots)."""
    await federation.wait_capacity_free()
    yield federation
    await federation.close_channels()


@pytest.fixture
def seconds():
    """A nap length no other process on the machine uses; its leftovers killed after."""
    value = f"{random.randint(100000, 999999)}.{random.randint(100000, 999999)}"
    yield value
    for pid in naps_running(value):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
