"""The Hypothesis profiles of tests/conftest.py: the gate (`make test`, CI) tries the
same examples each run and keeps no example database; `make explore` draws fresh ones;
any other name is refused rather than run as the gate by mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

TESTS = Path(__file__).resolve().parents[1]

PROBE = """
import sys
sys.path.insert(0, {tests!r})
import conftest
from hypothesis import settings
print(settings().derandomize, settings().database, settings().deadline)
"""


def _probe(profile: str | None, ci: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FEDORCH_HYPOTHESIS", "CI")}
    if ci is not None:
        env["CI"] = ci
    if profile is not None:
        env["FEDORCH_HYPOTHESIS"] = profile
    return subprocess.run([sys.executable, "-c", PROBE.format(tests=str(TESTS))],
                          env=env, capture_output=True, text=True, timeout=60)


def test_this_run_is_the_gate_unless_explore_was_asked() -> None:
    current = settings()
    explore = os.environ.get("FEDORCH_HYPOTHESIS") == "explore"
    assert current.derandomize is (not explore)
    assert current.database is None and current.deadline is None


@pytest.mark.parametrize("ci", [None, "true"])
@pytest.mark.parametrize(("profile", "derandomized"), [(None, "True"), ("gate", "True"),
                                                       ("explore", "False")])
def test_each_profile_as_loaded_by_the_conftest(profile: str | None, derandomized: str,
                                                ci: str | None) -> None:
    """Hypothesis picks a different parent profile when CI is set; neither may leak."""
    run = _probe(profile, ci)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [derandomized, "None", "None"]


def test_an_unknown_profile_is_refused_with_its_name() -> None:
    run = _probe("fast")
    assert run.returncode != 0
    assert "FEDORCH_HYPOTHESIS='fast'" in run.stderr
