"""Settings every test shares.

Hypothesis's per-example deadline (200 ms by default) is a timed assertion: on a
loaded machine an example that signs and checks a few dozen signatures passes it or
not by the load alone, and the failure says nothing about the code (FlakyFailure:
"Test took 265 ms, which exceeds the deadline"). Speed is measured by the benchmarks
(`make bench`), never by a test, so no test has a deadline.

Two profiles, chosen by `FEDORCH_HYPOTHESIS`:
- `gate` (unset, as in `make test` and CI): derandomized, so every run tries the same
  examples (a seed from each test's own name) and keeps no example database; a red
  run is red again on the same commit, and a green one says the same thing each time.
  A property that fails only on some random draw would otherwise fail one CI run in
  many and pass the retry, which teaches nothing and blocks a landing.
- `explore` (`make explore`, part of `make soak`): fresh random examples each run,
  with the same per-test budgets; a failure prints the seed and the blob that replays
  it (`@reproduce_failure`), to be committed as an `@example` of that test, so the
  gate runs it from then on.
"""

import os

from hypothesis import settings

PROFILE = os.environ.get("FEDORCH_HYPOTHESIS", "gate")
if PROFILE not in ("gate", "explore"):
    raise ValueError(f"FEDORCH_HYPOTHESIS={PROFILE!r}: use gate (the default) or explore")

settings.register_profile("gate", deadline=None, derandomize=True, database=None,
                          print_blob=True)
# Said outright: under CI=true Hypothesis's own parent profile is derandomized.
settings.register_profile("explore", deadline=None, derandomize=False, database=None,
                          print_blob=True)
settings.load_profile(PROFILE)
