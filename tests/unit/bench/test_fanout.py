"""The fan-out benchmark's workflow and its profile counts (the run itself starts agent
processes: it is a benchmark, not a test)."""

from __future__ import annotations

import cProfile
import json
import re
from pathlib import Path

from fedorch.bench.fanout import domain_names, fan_out_spec
from fedorch.bench.fanout_counts import WATCHED, counts_per_fanout, faster_than_width


def test_the_fan_out_has_a_step_pinned_to_each_domain_and_a_fan_in_on_the_first() -> None:
    names = domain_names(12)
    spec = fan_out_spec(names)
    assert [s.id for s in spec.steps] == [f"t{i:02d}" for i in range(1, 13)] + ["gather"]
    assert [list(s.constraints.domains) for s in spec.steps] == [[d] for d in names] + [
        ["fo-01"]]
    assert list(spec.steps[-1].needs) == [f"t{i:02d}" for i in range(1, 13)]


def _linear(width: int) -> None:
    for i in range(width):
        json.dumps({"step": i})


def _quadratic(width: int) -> None:
    for _ in range(width * width):
        json.loads("1")


def _profile(tmp_path, width: int, workflows: int):
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(workflows):
        _linear(width)
        _quadratic(width)
    profile.disable()
    path = tmp_path / f"w{width}.prof"
    profile.dump_stats(path)
    return path


def test_counts_are_per_workflow(tmp_path) -> None:
    counts = counts_per_fanout(_profile(tmp_path, 10, 4), 4)
    assert counts["summary"]["JSON encodings"] == 10
    assert counts["summary"]["JSON decodings"] == 100
    assert ("json/__init__.py:183(dumps)", 10.0) in [tuple(r) for r in counts["most_called"]]


def test_what_grows_faster_than_the_width_is_named_and_the_rest_is_not(tmp_path) -> None:
    narrow, wide = _profile(tmp_path, 10, 3), _profile(tmp_path, 20, 3)
    grown = {name: growth for name, _, _, growth in faster_than_width((narrow, 3, 10),
                                                                      (wide, 3, 20))}
    assert grown.get("json/__init__.py:299(loads)") == 4.0  # N²: twice as wide, 4x calls
    assert not any("dumps" in name for name in grown)


def test_every_watched_function_exists() -> None:
    # A watched row whose function is gone counts 0 for ever: it reads as "never
    # called" instead of "not there" (the older engine's RPC rows did).
    root = Path(__file__).resolve().parents[3]
    files = [*(root / "agent").rglob("*.py")]
    for what, suffix, func in WATCHED:
        if not suffix.startswith(("identity/", "runtime/", "node_engine/")):
            continue  # the standard library's and PyNaCl's
        found = [f for f in files if f.as_posix().endswith(suffix)
                 and re.search(rf"^\s*(async )?def {func}\(", f.read_text(), re.MULTILINE)]
        assert found, (what, suffix, func)
