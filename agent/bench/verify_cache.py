"""The cost of one `TrustStore.verify` (core/identity/trust.py), hit and miss, for
an envelope body's size (7 KB, what a coordinator receives) and a vote's (200 bytes).

- `hit`: the same bytes objects verified again (their hash cached by Python);
- `hit_fresh`: equal bytes in new objects, as each message from the wire is: the
  cache is asked about bytes it has not seen as objects;
- `miss`: every call new bytes, a fresh store filling its cache and then evicting;
- `uncached`: every call new bytes, not looked up nor remembered (`cache=False`):
  what a live envelope costs, each one new by its nonce (before, it cost a `miss`).

Each figure is the best of five runs, in microseconds per call. Run it beside the same
command on another version to compare (the numbers are the machine's, so in pairs):

    python -m fedorch.bench.verify_cache [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity import TrustStore
from fedorch.core.identity import trust as trust_module

SIZES = {"7KB": 7_000, "200B": 200}
RUNS = 5


def _best(run: Callable[[], float], calls: int) -> float:
    return round(min(run() for _ in range(RUNS)) / calls * 1e6, 2)


def _timed(store: TrustStore, pairs: list[tuple[bytes, bytes]], cache: bool = True) -> float:
    start = time.perf_counter()
    for message, signature in pairs:
        store.verify("eu-west", message, signature, cache=cache)
    return time.perf_counter() - start


def _one_size(key: Ed25519PrivateKey, size: int, hits: int, fresh: int,
              extra: int) -> dict[str, float]:
    count = trust_module.VERIFIED_CACHE_SIZE + extra
    messages = [i.to_bytes(4, "big") * (size // 4) for i in range(count)]
    pairs = [(m, key.sign(m)) for m in messages]
    warm = min(1_000, count)
    store = TrustStore({"eu-west": key.public_key()})
    _timed(store, pairs[:warm])
    repeats = [pairs[i % warm] for i in range(hits)]

    def new_objects() -> float:  # copies made before the clock starts
        copies = [(bytes(bytearray(m)), bytes(bytearray(s)))
                  for m, s in (pairs[i % warm] for i in range(fresh))]
        return _timed(store, copies)

    return {
        "hit": _best(lambda: _timed(store, repeats), hits),
        "hit_fresh": _best(new_objects, fresh),
        "miss": _best(lambda: _timed(TrustStore({"eu-west": key.public_key()}), pairs), count),
        "uncached": _best(lambda: _timed(TrustStore({"eu-west": key.public_key()}), pairs,
                                         cache=False), count),
    }


def measure(hits: int = 20_000, fresh: int = 4_000, extra: int = 2_000) -> dict[str, float]:
    """Microseconds per verify, by case (see the header)."""
    key = Ed25519PrivateKey.generate()
    out: dict[str, float] = {}
    for label, size in SIZES.items():
        for case, micros in _one_size(key, size, hits, fresh, extra).items():
            out[f"{case}_{label}"] = micros
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = measure()
    if args.json:
        print(json.dumps(result))
    else:
        for case, micros in result.items():
            print(f"{case:16} {micros:8.2f} us")


if __name__ == "__main__":
    main()
