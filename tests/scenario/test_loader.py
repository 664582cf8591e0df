"""Scenario files: what loads, and the one-line errors (exit 2) for what does not."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fedorch.cli.main import cli
from fedorch.scenario.loader import ScenarioError, expand_names, load_scenario

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted((ROOT / "scenarios").glob("*/scenario.yaml"))

GOOD = """\
name: small
domains:
  - name: a
    capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]
  - name: b
    capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]
workflows:
  - id: w
    to: a
    spec: {name: w, steps: [{id: s1, capability: work}]}
faults:
  - {action: kill, domains: [b], at_s: 1}
expect:
  - workflow: {id: w, state: SUCCEEDED}
"""


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_good_file_loads(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, GOOD))
    assert list(loaded.domains) == ["a", "b"]
    assert loaded.workflows["w"].spec.steps[0].capability == "work"
    assert loaded.scenario.faults[0].action == "kill"


@pytest.mark.parametrize("path", LIBRARY, ids=[p.parent.name for p in LIBRARY])
def test_every_library_scenario_loads(path: Path) -> None:
    result = invoke("scenario", "check", str(path))
    assert result.exit_code == 0, result.stderr
    assert ": ok (" in result.stdout


def test_an_audit_expectation_loads(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, GOOD.replace(
        "  - workflow: {id: w, state: SUCCEEDED}\n",
        "  - workflow: {id: w, state: SUCCEEDED}\n"
        "  - audit: {domains: ['*'], at_least_records: 2}\n"
        "  - audit: {domains: [b]}\n")))
    every, one = (e.audit for e in loaded.scenario.expect[1:])
    assert list(every.domains) == ["*"] and every.at_least_records == 2
    assert list(one.domains) == ["b"] and one.at_least_records == 0


def test_a_host_load_loads(tmp_path: Path) -> None:
    loaded = load_scenario(write(tmp_path, GOOD.replace(
        "name: small", "name: small\nload: {busy_processes: 3}")))
    assert loaded.scenario.load.busy_processes == 3
    assert load_scenario(write(tmp_path, GOOD)).scenario.load.busy_processes == 0


def test_count_expands_domain_names() -> None:
    from fedorch.gen.fedorch.v1 import scenario_pb2

    assert expand_names(scenario_pb2.DomainSpec(name="org", count=3)) == [
        "org-01", "org-02", "org-03"]
    assert expand_names(scenario_pb2.DomainSpec(name="solo")) == ["solo"]


# (what to change in GOOD, the field the error names, a fragment of the fix)
BAD = [
    (("name: small", "name: small\ncolour: red"), "colour", "unknown key"),
    (("name: small", "name: small\nload: {spin: 2}"), "load.spin", "unknown key"),
    (("name: small", "name: small\nload: {busy_processes: 65}"), "load.busy_processes",
     "an integer from 0 to 64"),
    (("    to: a", "    to: a\n    when: 3"), "workflows[0].when", "unknown key"),
    (("name: small\n", ""), "name", "required"),
    (("    to: a", "    to: c"), "workflows[0].to", "'c' names no domain (known: a, b)"),
    (("{action: kill, domains: [b], at_s: 1}", "{action: explode, domains: [b]}"),
     "faults[0].action", "must be one of: kill, stop"),
    (("{action: kill, domains: [b], at_s: 1}", "{action: kill, domains: [bb]}"),
     "faults[0].domains[0]", "did you mean 'b'?"),
    (("{action: kill, domains: [b], at_s: 1}", "{action: partition, domains: [a]}"),
     "faults[0].from_domains", "required for partition"),
    (("{action: kill, domains: [b], at_s: 1}", "{action: kill, domains: [b], at_s: -1}"),
     "faults[0].at_s", "non-negative"),
    (("{action: kill, domains: [b], at_s: 1}",
      "{action: kill, domains: [b], after: {workflow: w, step: s9}}"),
     "faults[0].after.step", "'s9' names no step of w"),
    (("workflow: {id: w, state: SUCCEEDED}", "workflow: {id: w, state: DONE}"),
     "expect[0].workflow.state", "must be one of: SUCCEEDED"),
    (("workflow: {id: w, state: SUCCEEDED}", "workflow: {id: x, state: SUCCEEDED}"),
     "expect[0].workflow.id", "'x' names no submission"),
    (("workflow: {id: w, state: SUCCEEDED}",
      "workflow: {id: w, state: SUCCEEDED}\n    members: {alive: ['*']}"),
     "expect[0]", "exactly one of workflow, step_runs, members, run_order or audit"),
    (("workflow: {id: w, state: SUCCEEDED}", "step_runs: {workflow: w, step: s1}"),
     "expect[0].step_runs", "give equals, at_least or at_most"),
    (("workflow: {id: w, state: SUCCEEDED}",
      "workflow: {id: w, state: SUCCEEDED, at_least: 2}"),
     "expect[0].workflow.at_least", "more than the 1 copies"),
    (("executor: {type: builtin, name: echo}}]\n  - name: b",
      "executor: {type: builtin, name: shout}}]\n  - name: b"),
     "domains[0].capabilities[0].executor.name", "must be one of: echo, sleep, fail"),
    (("  - name: b\n", "  - name: a\n"), "domains[1].name", "duplicate domain 'a'"),
    (("name: small\n", "name: small\ndefaults: {gossip: {profile: fast}}\n"),
     "defaults.gossip.profile", "must be one of: lan, wan, local"),
    (("  - name: b\n", "  - name: b\n    gossip: {profile: fast}\n"),
     "domains[1].gossip.profile", "must be one of: lan, wan, local"),
    (("spec: {name: w, steps: [{id: s1, capability: work}]}",
      "spec: {name: w, steps: [{id: s1, capability: work, needs: [s2]}]}"),
     "workflows[0].spec.steps[0].needs[0]", "'s2' names no step"),
    (("spec: {name: w, steps: [{id: s1, capability: work}]}",
      "spec: {name: w, steps: [{id: s1, capability: work, constraints: {domains: [z]}}]}"),
     "workflows[0].spec.steps[0].constraints.domains[0]", "'z' names no domain"),
    (("spec: {name: w, steps: [{id: s1, capability: work}]}", "file: nothere.yaml"),
     "workflows[0].file", "no file"),
    (("expect:\n  - workflow: {id: w, state: SUCCEEDED}\n", ""), "expect", "required"),
    (("{action: kill, domains: [b], at_s: 1}", "{action: slow_disk, domains: [b], seconds: -1}"),
     "faults[0].seconds", "for slow_disk: the delay of each fsync"),
    (("{action: kill, domains: [b], at_s: 1}", "{action: slow_disk, domains: [b], seconds: 11}"),
     "faults[0].seconds", "to 10 seconds"),
    (("{action: kill, domains: [b], at_s: 1}", "{action: revoke_key, domains: [b], seconds: 1}"),
     "faults[0].seconds", "only for clock_jump and slow_disk"),
    (("{action: kill, domains: [b], at_s: 1}", "{action: revoke_key}"),
     "faults[0].domains", "required: the domains to revoke_key"),
    (("workflow: {id: w, state: SUCCEEDED}", "workflow: {id: w, compensation: UNDONE}"),
     "expect[0].workflow.compensation", "must be one of: NONE, RUNNING, DONE, FAILED"),
    (("workflow: {id: w, state: SUCCEEDED}", "workflow: {id: w, coordinator: c, epoch: 1}"),
     "expect[0].workflow.coordinator", "'c' names no domain"),
    (("workflow: {id: w, state: SUCCEEDED}", "audit: {domains: [a, c]}"),
     "expect[0].audit.domains[1]", "'c' names no domain (known: a, b)"),
    (("workflow: {id: w, state: SUCCEEDED}", "audit: {at_least_records: 1}"),
     "expect[0].audit.domains", "required: the domains whose audit logs"),
    (("workflow: {id: w, state: SUCCEEDED}", "audit: {domains: ['*', a]}"),
     "expect[0].audit.domains", "give it alone"),
    (("workflow: {id: w, state: SUCCEEDED}", "audit: {domains: ['*'], records: 3}"),
     "expect[0].audit.records", "unknown key"),
    (("workflow: {id: w, state: SUCCEEDED}", "run_order: {workflow: w, steps: [s1]}"),
     "expect[0].run_order.steps", "at least two steps"),
    (("workflow: {id: w, state: SUCCEEDED}", "run_order: {workflow: w, steps: [s1, s2]}"),
     "expect[0].run_order.steps[1]", "'s2' names no step of w"),
    (("workflow: {id: w, state: SUCCEEDED}", "members: {not_alive: [b], all_free: true}"),
     "expect[0].members.all_free", "needs alive"),
    (("workflow: {id: w, state: SUCCEEDED}",
      "workflow: {id: w, state: ABORTED, refused_contains: no valid key}"),
     "expect[0].workflow.refused_contains", "give refused_contains alone"),
    (("capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]\n  - name: b",
      "capabilities: [{name: work, capacity: 2, executor: {type: builtin, name: echo}}]\n"
      "    policy: {egress: {to_labels: {zone: []}}}\n  - name: b"),
     "domains[0].policy.egress.to_labels.zone", "non-empty list of values"),
]


@pytest.mark.parametrize(("change", "field", "fix"), BAD, ids=[b[1] + ":" + b[2][:20]
                                                               for b in BAD])
def test_bad_files_exit_2_naming_file_field_and_fix(
        tmp_path: Path, change: tuple[str, str], field: str, fix: str) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.path == field, str(caught.value)
    assert fix in str(caught.value)
    for command in ("check", "run"):
        result = invoke("scenario", command, str(path))
        assert result.exit_code == 2, result.stdout
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"fedorch: error: {path}: "), lines
        assert fix in lines[0]


def test_not_yaml_and_missing_file_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [unclosed\n")
    result = invoke("scenario", "run", str(path))
    assert result.exit_code == 2 and "invalid YAML" in result.stderr
    result = invoke("scenario", "run", str(tmp_path / "none.yaml"))
    assert result.exit_code == 2 and "cannot read file" in result.stderr


def test_a_fault_the_process_runner_cannot_apply_exits_2_before_starting(
        tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{action: kill, domains: [b], at_s: 1}",
                                        "{action: partition, domains: [a], from_domains: [b]}"))
    workdir = tmp_path / "run"
    result = invoke("scenario", "run", str(path), "--workdir", str(workdir))
    assert result.exit_code == 2
    assert "faults[0].action: the process runner cannot apply 'partition'" in result.stderr
    assert not (workdir / "a.yaml").exists()  # nothing was prepared, let alone started


def test_slow_disk_without_a_c_compiler_exits_2_before_starting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools-here"))
    monkeypatch.delenv("CC", raising=False)
    path = write(tmp_path, GOOD.replace("{action: kill, domains: [b], at_s: 1}",
                                        "{action: slow_disk, domains: [b], seconds: 0.05}"))
    workdir = tmp_path / "run"
    result = invoke("scenario", "run", str(path), "--workdir", str(workdir))
    assert result.exit_code == 2
    assert "faults[0].action: slow_disk needs a C compiler" in result.stderr
    assert not (workdir / "a.yaml").exists()


def test_clock_jump_without_libfaketime_exits_2_before_starting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDORCH_FAKETIME_LIB", str(tmp_path / "no-such-libfaketime.so"))
    path = write(tmp_path, GOOD.replace("{action: kill, domains: [b], at_s: 1}",
                                        "{action: clock_jump, domains: [b], seconds: 30}"))
    workdir = tmp_path / "run"
    result = invoke("scenario", "run", str(path), "--workdir", str(workdir))
    assert result.exit_code == 2
    assert "faults[0].action: clock_jump needs libfaketime" in result.stderr
    assert not (workdir / "a.yaml").exists()


def test_skip_unsupported_skips_instead_of_refusing(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{action: kill, domains: [b], at_s: 1}",
                                        "{action: partition, domains: [a], from_domains: [b]}"))
    result = invoke("scenario", "run", str(path), "--skip-unsupported",
                    "--workdir", str(tmp_path / "run"))
    assert result.exit_code == 0
    assert "skipped" in result.stdout and "cannot apply 'partition'" in result.stdout
    assert not (tmp_path / "run" / "a.yaml").exists()
