"""Benchmarks run by ``fedorch bench``; each returns a plain dict of measurements."""
