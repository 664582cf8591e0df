"""Scenario files: YAML mapped onto ``scenario_pb2.Scenario``, then checked as a whole.

The field walk and ``ParseDict`` are the agent config's (fedorch.runtime.config), so an
unknown key or a wrong type gets the same one-line error naming the file and the field.
The semantic checks here go further: every name a scenario uses (domains, submissions,
steps) must name something it defines, and each domain's agent config is built and put
through the agent's own config loader, so a scenario that loads is one whose agents
start. Errors: ``FILE: FIELD: PROBLEM; the fix``.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from fedorch.core.workflow.lifecycle import TERMINAL
from fedorch.core.workflow.spec import SpecError, load_spec_file, parse_spec_text
from fedorch.gen.fedorch.v1 import scenario_pb2, spec_pb2, status_pb2
from fedorch.runtime.config import (
    DOMAIN_RE,
    ConfigError,
    SourceError,
    _expand_egress_labels,
    at_least,
    between,
    check_fields,
    load_yaml_mapping,
    parse_config_text,
    positive,
    read_source,
    to_message,
)
from fedorch.scenario.busy import MAX_BUSY_PROCESSES
from fedorch.scenario.model import Domain, LoadedScenario, Workflow

MAX_SCENARIO_BYTES = 1024 * 1024
MAX_DOMAINS = 200
MAX_COPIES = 1000
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")

ACTIONS = ("kill", "stop", "cont", "restart", "partition", "heal", "clock_jump", "slow_disk",
           "revoke_key")
MAX_DISK_DELAY_S = 10.0
COMPENSATION_STATES = ("NONE", "RUNNING", "DONE", "FAILED")
# The lifecycle core's terminal set, in the order the error message lists them.
WORKFLOW_END_STATES = tuple(s.name for s in sorted(TERMINAL))
STEP_STATES = tuple(
    name.removeprefix("STEP_STATE_")
    for name in status_pb2.StepState.keys()  # noqa: SIM118 - an enum wrapper, not a dict
    if name != "STEP_STATE_UNSPECIFIED"
)


class ScenarioError(SourceError):
    """A scenario file is unreadable or invalid; the message is one line."""


_BOUNDS = {
    "fedorch.v1.Scenario.timeout_s": at_least(0, "a non-negative number of seconds"),
    "fedorch.v1.Scenario.converge_timeout_s": at_least(0, "a non-negative number of seconds"),
    "fedorch.v1.HostLoad.busy_processes": between(0, MAX_BUSY_PROCESSES,
                                                  f"an integer from 0 to {MAX_BUSY_PROCESSES}"),
    "fedorch.v1.DomainSpec.count": between(1, MAX_DOMAINS, f"an integer from 1 to {MAX_DOMAINS}"),
    "fedorch.v1.Submission.at_s": at_least(0, "a non-negative number of seconds"),
    "fedorch.v1.Submission.count": between(1, MAX_COPIES, f"an integer from 1 to {MAX_COPIES}"),
    "fedorch.v1.Submission.rate_per_s": at_least(0, "a non-negative number (0: all at once)"),
    "fedorch.v1.Submission.timeout_s": at_least(0, "a non-negative number of seconds"),
    "fedorch.v1.Fault.at_s": at_least(0, "a non-negative number of seconds"),
    "fedorch.v1.WorkflowExpectation.within_s": positive("a positive number of seconds"),
    "fedorch.v1.MembersExpectation.within_s": positive("a positive number of seconds"),
    "fedorch.v1.MembersExpectation.at_s": at_least(0, "a non-negative number of seconds"),
    "fedorch.v1.CapabilityConfig.capacity": positive("a positive integer"),
    "fedorch.v1.StepSpec.timeout_s": at_least(0, "a non-negative number of seconds"),
}


def load_scenario(path: str | os.PathLike[str]) -> LoadedScenario:
    """Read and check a scenario file; raises ScenarioError naming file, field and fix."""
    source = str(path)
    text = read_source(path, MAX_SCENARIO_BYTES, ScenarioError)
    return parse_scenario_text(text, source, Path(os.path.abspath(path)).parent)


def parse_scenario_text(text: str, source: str, base_dir: Path) -> LoadedScenario:
    data = load_yaml_mapping(text, source, ScenarioError)
    inline = _take_inline_specs(data)
    for index, domain in enumerate(data.get("domains") or []):
        if isinstance(domain, dict):  # the agent config's YAML forms, as it reads them
            try:
                _expand_egress_labels(domain, source)
            except ConfigError as exc:
                raise ScenarioError(source, f"domains[{index}].{exc.path}", exc.problem) \
                    from None
    check_fields(data, scenario_pb2.Scenario.DESCRIPTOR, source, ScenarioError, _BOUNDS)
    _check_explicit_empty(data, source)
    scenario = scenario_pb2.Scenario()
    to_message(data, scenario, source, ScenarioError)
    loaded = LoadedScenario(source, base_dir, scenario)
    _Checks(loaded, inline).run()
    return loaded


def _take_inline_specs(data: dict[str, Any]) -> dict[int, Any]:
    """Inline workflow specs, taken out of the data: each is read by the workflow spec
    loader itself, exactly as a spec file would be, rather than mapped onto the message
    here (the spec loader has rules of its own, e.g. how params are kept)."""
    taken: dict[int, Any] = {}
    workflows = data.get("workflows")
    if isinstance(workflows, list):
        for index, item in enumerate(workflows):
            if isinstance(item, dict) and "spec" in item:
                taken[index] = item.pop("spec")
    return taken


def _check_explicit_empty(data: dict[str, Any], source: str) -> None:
    """As in the agent config: `accept_from: []` would silently mean 'everyone'."""
    for index, domain in enumerate(data.get("domains") or []):
        policy = domain.get("policy") if isinstance(domain, dict) else None
        if isinstance(policy, dict) and policy.get("accept_from") == []:
            raise ScenarioError(source, f"domains[{index}].policy.accept_from",
                                "must not be empty; omit it to accept any trusted domain")


def expand_names(spec: scenario_pb2.DomainSpec) -> list[str]:
    if spec.count <= 1:
        return [spec.name]
    width = max(2, len(str(spec.count)))
    return [f"{spec.name}-{i:0{width}d}" for i in range(1, spec.count + 1)]


def _unknown(kind: str, name: str, known: Sequence[str]) -> str:
    guess = difflib.get_close_matches(name, list(known), 1)
    hint = f"; did you mean {guess[0]!r}?" if guess else ""
    shown = ", ".join(list(known)[:12]) + (", ..." if len(known) > 12 else "")
    return f"{name!r} names no {kind} (known: {shown or 'none'}){hint}"


class _Checks:
    def __init__(self, loaded: LoadedScenario, inline: dict[int, Any]) -> None:
        self.loaded = loaded
        self.inline = inline
        self.s = loaded.scenario
        self.source = loaded.source

    def fail(self, path: str, problem: str) -> None:
        raise ScenarioError(self.source, path, problem)

    def run(self) -> None:
        if not self.s.name:
            self.fail("name", "required: the scenario's name, e.g. residency-replacement")
        if not NAME_RE.fullmatch(self.s.name):
            self.fail("name", f"must be 1 to 128 of [A-Za-z0-9._-], got {self.s.name!r}")
        self.domains()
        self.workflows()
        for index, fault in enumerate(self.s.faults):
            self.fault(fault, f"faults[{index}]")
        if not self.s.expect:
            self.fail("expect", "required: at least one expectation (what must hold)")
        for index, expectation in enumerate(self.s.expect):
            self.expectation(expectation, f"expect[{index}]")

    # ---- domains ----------------------------------------------------------------------

    def domains(self) -> None:
        if not self.s.domains:
            self.fail("domains", "required: at least one domain, e.g. [{name: eu-west}]")
        first: dict[str, str] = {}
        for index, spec in enumerate(self.s.domains):
            path = f"domains[{index}]"
            if not spec.name:
                self.fail(f"{path}.name", "required: the domain's name, e.g. eu-west")
            for name in expand_names(spec):
                if not DOMAIN_RE.fullmatch(name):
                    self.fail(f"{path}.name",
                              f"{name!r} must match [a-z0-9][a-z0-9.-]{{0,62}}")
                if name in first:
                    self.fail(f"{path}.name",
                              f"duplicate domain {name!r} (first at {first[name]}); rename one")
                first[name] = path
                self.loaded.domains[name] = Domain(name, spec, path)
        if len(first) > MAX_DOMAINS:
            self.fail("domains", f"{len(first)} domains, at most {MAX_DOMAINS}")
        for domain in self.loaded.domains.values():
            for index, trusted in enumerate(domain.spec.trust):
                self.domain_name(trusted, f"{domain.path}.trust[{index}]")
        checked: set[int] = set()
        for domain in self.loaded.domains.values():
            if id(domain.spec) not in checked:  # one check per entry, not per copy
                checked.add(id(domain.spec))
                self.agent_config(domain)

    def agent_config(self, domain: Domain) -> None:
        """Build the domain's agent config as a runner would and load it with the agent's
        own loader: what fails here would fail at the agent's start."""
        from fedorch.scenario.configs import agent_config

        names = list(self.loaded.domains)
        addresses = {n: f"127.0.0.1:{7000 + i % 1000 + 1}" for i, n in enumerate(names)}
        config = agent_config(self.loaded, domain.name, addresses=addresses,
                              data_dir="data", keys_dir="keys", metrics_listen=None)
        text = yaml.safe_dump(config, sort_keys=False)
        try:
            parse_config_text(text, "<built>", self.loaded.base_dir)
        except ConfigError as exc:
            top = exc.path.split(".")[0].split("[")[0]
            from_defaults = top == "log_level" or (
                top in ("gossip", "negotiation") and not domain.spec.HasField(top))
            where = "defaults" if from_defaults else domain.path
            self.fail(f"{where}.{exc.path}".rstrip("."), exc.problem)

    def domain_name(self, name: str, path: str, allow_star: bool = False) -> None:
        if allow_star and name == "*":
            return
        if name not in self.loaded.domains:
            self.fail(path, _unknown("domain", name, list(self.loaded.domains)))

    # ---- workflows ---------------------------------------------------------------------

    def workflows(self) -> None:
        for index, submission in enumerate(self.s.workflows):
            path = f"workflows[{index}]"
            if not submission.id:
                self.fail(f"{path}.id", "required: a name expectations refer to, e.g. sales")
            if not NAME_RE.fullmatch(submission.id):
                self.fail(f"{path}.id", f"must be 1 to 128 of [A-Za-z0-9._-], got "
                          f"{submission.id!r}")
            if submission.id in self.loaded.workflows:
                self.fail(f"{path}.id", f"duplicate submission id {submission.id!r}")
            has_spec = index in self.inline
            if bool(submission.file) == has_spec:
                self.fail(path, "give exactly one of file (a spec file next to the scenario) "
                          "or spec (the spec inline)")
            if has_spec:
                written = self.inline[index]
                spec = self.inline_spec(written, path)
                submission.spec.CopyFrom(spec)
            else:
                spec = self.spec(submission, path)
                written = (self.loaded.base_dir / submission.file).read_text()
            if not submission.to:
                self.fail(f"{path}.to", "required: the domain to submit to, e.g. eu-west")
            self.domain_name(submission.to, f"{path}.to")
            for s_index, step in enumerate(spec.steps):
                for d_index, name in enumerate(step.constraints.domains):
                    where = f"steps[{s_index}].constraints.domains[{d_index}]"
                    if has_spec:
                        self.domain_name(name, f"{path}.spec.{where}")
                    elif name not in self.loaded.domains:
                        self.fail(f"{path}.file", f"{submission.file}: {where}: "
                                  + _unknown("domain", name, list(self.loaded.domains)))
            self.loaded.workflows[submission.id] = Workflow(submission, spec, path, written)

    def inline_spec(self, raw: Any, path: str) -> spec_pb2.WorkflowSpec:
        if not isinstance(raw, dict):
            self.fail(f"{path}.spec", "must be a mapping: a workflow spec, e.g. "
                      "{name: w, steps: [{id: s1, capability: work}]}")
        try:
            return parse_spec_text(yaml.safe_dump(raw, sort_keys=False), self.source)
        except SpecError as exc:
            self.fail(f"{path}.spec.{exc.path}".rstrip("."), exc.problem)

    def spec(self, submission: scenario_pb2.Submission, path: str) -> spec_pb2.WorkflowSpec:
        spec_path = self.loaded.base_dir / submission.file
        if not spec_path.is_file():
            self.fail(f"{path}.file", f"no file {spec_path}; paths are relative to the "
                      "scenario file")
        try:
            return load_spec_file(spec_path)
        except SpecError as exc:
            raise ScenarioError(self.source, f"{path}.file", str(exc)) from None

    def submission(self, name: str, path: str) -> Workflow:
        if name not in self.loaded.workflows:
            self.fail(path, _unknown("submission (workflows[].id)", name,
                                     list(self.loaded.workflows)))
        return self.loaded.workflows[name]

    def step(self, workflow: Workflow, step: str, path: str) -> None:
        steps = [s.id for s in workflow.spec.steps]
        if step not in steps:
            self.fail(path, _unknown(f"step of {workflow.id}", step, steps))

    # ---- faults ------------------------------------------------------------------------

    def fault(self, fault: scenario_pb2.Fault, path: str) -> None:
        if fault.action not in ACTIONS:
            got = f", got {fault.action!r}" if fault.action else ""
            self.fail(f"{path}.action", f"must be one of: {', '.join(ACTIONS)}{got}")
        if fault.action != "heal" and not fault.domains:
            self.fail(f"{path}.domains", f"required: the domains to {fault.action}")
        for index, name in enumerate(fault.domains):
            self.domain_name(name, f"{path}.domains[{index}]")
        for index, name in enumerate(fault.from_domains):
            self.domain_name(name, f"{path}.from_domains[{index}]")
        if fault.action == "partition":
            if not fault.from_domains:
                self.fail(f"{path}.from_domains", "required for partition: the other side")
            both = set(fault.domains) & set(fault.from_domains)
            if both:
                self.fail(f"{path}.from_domains",
                          f"{', '.join(sorted(both))} cannot be on both sides")
        elif fault.from_domains and fault.action != "heal":
            self.fail(f"{path}.from_domains", "only for partition and heal; remove it")
        if fault.action == "clock_jump":
            if not fault.seconds or not math.isfinite(fault.seconds):
                self.fail(f"{path}.seconds", "required for clock_jump: a non-zero number")
        elif fault.action == "slow_disk":
            if not 0 <= fault.seconds <= MAX_DISK_DELAY_S:  # NaN fails this too
                self.fail(f"{path}.seconds", "for slow_disk: the delay of each fsync, from 0 "
                          f"(not delayed) to {MAX_DISK_DELAY_S:g} seconds, e.g. 0.05")
        elif fault.seconds:
            self.fail(f"{path}.seconds", "only for clock_jump and slow_disk; remove it")
        if fault.HasField("after"):
            after = fault.after
            workflow = self.submission(after.workflow, f"{path}.after.workflow")
            self.step(workflow, after.step, f"{path}.after.step")
            if after.state and after.state not in STEP_STATES:
                self.fail(f"{path}.after.state",
                          f"must be one of: {', '.join(STEP_STATES)}, got {after.state!r}")

    # ---- expectations ------------------------------------------------------------------

    def expectation(self, expectation: scenario_pb2.Expectation, path: str) -> None:
        kinds = [k for k in ("workflow", "step_runs", "members", "run_order", "audit")
                 if expectation.HasField(k)]
        if len(kinds) != 1:
            self.fail(path, "give exactly one of workflow, step_runs, members, run_order "
                      "or audit"
                      + (f" (got {', '.join(kinds)})" if kinds else ""))
        kind = kinds[0]
        getattr(self, f"expect_{kind}")(getattr(expectation, kind), f"{path}.{kind}")

    def expect_workflow(self, e: scenario_pb2.WorkflowExpectation, path: str) -> None:
        workflow = self.submission(e.id, f"{path}.id")
        if e.state and e.state not in WORKFLOW_END_STATES:
            self.fail(f"{path}.state",
                      f"must be one of: {', '.join(WORKFLOW_END_STATES)}, got {e.state!r}")
        if e.compensation and e.compensation not in COMPENSATION_STATES:
            self.fail(f"{path}.compensation", f"must be one of: "
                      f"{', '.join(COMPENSATION_STATES)}, got {e.compensation!r}")
        if e.coordinator:
            self.domain_name(e.coordinator, f"{path}.coordinator")
        ends = (e.state or e.reason_contains or e.steps_on or e.within_s or e.coordinator
                or e.HasField("epoch") or e.compensation or e.ask_every_agent)
        if e.refused_contains and ends:
            self.fail(f"{path}.refused_contains", "a refused submission never ends: give"
                      " refused_contains alone, or the end the workflow must reach")
        if not (ends or e.refused_contains):
            self.fail(path, "says nothing: give state, reason_contains, steps_on, within_s, "
                      "coordinator, epoch, compensation or refused_contains")
        for step, domain in e.steps_on.items():
            self.step(workflow, step, f"{path}.steps_on.{step}")
            self.domain_name(domain, f"{path}.steps_on.{step}")
        self.counts(e, workflow.copies, path)

    def counts(self, e: Any, copies: int, path: str) -> None:
        for name in ("at_least", "at_most"):
            if e.HasField(name) and getattr(e, name) > copies:
                self.fail(f"{path}.{name}",
                          f"{getattr(e, name)} is more than the {copies} copies submitted")
        if e.HasField("at_least") and e.HasField("at_most") and e.at_least > e.at_most:
            self.fail(f"{path}.at_least", "must not exceed at_most")

    def expect_step_runs(self, e: scenario_pb2.StepRunsExpectation, path: str) -> None:
        workflow = self.submission(e.workflow, f"{path}.workflow")
        self.step(workflow, e.step, f"{path}.step")
        if not any(e.HasField(n) for n in ("equals", "at_least", "at_most")):
            self.fail(path, "give equals, at_least or at_most (runs of the step per copy)")
        if e.HasField("at_least") and e.HasField("at_most") and e.at_least > e.at_most:
            self.fail(f"{path}.at_least", "must not exceed at_most")
        if e.domain:
            self.domain_name(e.domain, f"{path}.domain")

    def expect_run_order(self, e: scenario_pb2.RunOrderExpectation, path: str) -> None:
        workflow = self.submission(e.workflow, f"{path}.workflow")
        if len(e.steps) < 2:
            self.fail(f"{path}.steps", "give at least two steps, in the order they must run")
        for index, step in enumerate(e.steps):
            self.step(workflow, step, f"{path}.steps[{index}]")
        if len(set(e.steps)) != len(e.steps):
            self.fail(f"{path}.steps", "names a step twice; each step once, in order")

    def expect_members(self, e: scenario_pb2.MembersExpectation, path: str) -> None:
        if not (e.alive or e.not_alive):
            self.fail(path, "give alive (e.g. ['*']) or not_alive")
        if e.all_free and not e.alive:
            self.fail(f"{path}.all_free", "needs alive: the domains whose slots must be free")
        for name, values in (("seen_by", e.seen_by), ("alive", e.alive),
                             ("not_alive", e.not_alive)):
            for index, domain in enumerate(values):
                self.domain_name(domain, f"{path}.{name}[{index}]", allow_star=name == "alive")

    def expect_audit(self, e: scenario_pb2.AuditExpectation, path: str) -> None:
        if not e.domains:
            self.fail(f"{path}.domains", "required: the domains whose audit logs must "
                      "verify, e.g. ['*'] for every domain")
        for index, domain in enumerate(e.domains):
            self.domain_name(domain, f"{path}.domains[{index}]", allow_star=True)
        if "*" in e.domains and len(e.domains) > 1:
            self.fail(f"{path}.domains", "'*' already names every domain; give it alone")
