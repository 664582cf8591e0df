"""The simulator: fake ports and invariant checkers that drive the production cores."""
