"""The verify micro-benchmark runs and reports every case."""

from __future__ import annotations

from fedorch.bench import verify_cache
from fedorch.core.identity import trust as trust_module


def test_it_reports_a_positive_cost_for_every_case(monkeypatch):
    monkeypatch.setattr(trust_module, "VERIFIED_CACHE_SIZE", 20)
    monkeypatch.setattr(verify_cache, "RUNS", 1)
    result = verify_cache.measure(hits=50, fresh=20, extra=5)
    assert set(result) == {f"{case}_{size}" for case in ("hit", "hit_fresh", "miss", "uncached")
                           for size in verify_cache.SIZES}
    assert all(micros > 0 for micros in result.values())
