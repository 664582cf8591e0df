"""What a loaded scenario is: its domains (expanded by count) and its submissions with
their specs. Plain data, shared by the loader, the config builder and the runners."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fedorch.gen.fedorch.v1 import scenario_pb2, spec_pb2

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_CONVERGE_TIMEOUT_S = 60.0


@dataclass
class Domain:
    """One agent of the scenario: a DomainSpec entry, expanded by its count."""

    name: str
    spec: scenario_pb2.DomainSpec
    path: str  # where it is defined, e.g. "domains[2]"


@dataclass
class Workflow:
    """One Submission with its spec loaded (from its file or inline)."""

    submission: scenario_pb2.Submission
    spec: spec_pb2.WorkflowSpec
    path: str
    # The spec as written: its file's text, or the inline mapping (for compose to write).
    written: str | dict[str, Any] = ""

    @property
    def id(self) -> str:
        return self.submission.id

    @property
    def copies(self) -> int:
        return self.submission.count or 1


@dataclass
class LoadedScenario:
    source: str
    base_dir: Path
    scenario: scenario_pb2.Scenario
    domains: dict[str, Domain] = field(default_factory=dict)
    workflows: dict[str, Workflow] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.scenario.name

    @property
    def timeout_s(self) -> float:
        return self.scenario.timeout_s or DEFAULT_TIMEOUT_S

    @property
    def converge_timeout_s(self) -> float:
        return self.scenario.converge_timeout_s or DEFAULT_CONVERGE_TIMEOUT_S
