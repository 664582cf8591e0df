"""Settings every test shares.

Hypothesis's per-example deadline (200 ms by default) is a timed assertion: on a
loaded machine an example that signs and checks a few dozen signatures passes it or
not by the load alone, and the failure says nothing about the code (FlakyFailure:
"Test took 265 ms, which exceeds the deadline"). Speed is measured by the benchmarks
(`make bench`), never by a test, so no test has a deadline.
"""

from hypothesis import settings

settings.register_profile("fedorch", deadline=None)
settings.load_profile("fedorch")
