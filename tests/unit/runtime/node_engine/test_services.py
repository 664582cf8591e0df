"""The node engine's client service: the random part of the workflow ids it makes."""

from __future__ import annotations

import re

from fedorch.runtime.node_engine.services import _RandomSuffixes


def test_id_suffixes_are_eight_hex_digits_and_differ_across_refills():
    suffixes = _RandomSuffixes()
    per_chunk = _RandomSuffixes.CHUNK // 4  # 4 random bytes per suffix
    drawn = [suffixes.next() for _ in range(3 * per_chunk + 5)]  # three refills and more
    assert all(re.fullmatch(r"[0-9a-f]{8}", s) for s in drawn), drawn[:5]
    # 32 random bits each: ~3,000 draws collide with odds of about 1 in 1,000.
    assert len(set(drawn)) >= len(drawn) - 1
    # A refill reads new bytes: the next chunk does not repeat the first.
    assert drawn[:per_chunk] != drawn[per_chunk:2 * per_chunk]
