"""The negotiation simulator (seeded faults, invariant checks)."""
