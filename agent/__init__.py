"""fedorch: a federated orchestrator with no centre."""
