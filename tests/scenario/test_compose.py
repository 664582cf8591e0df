"""`fedorch scenario compose`: the project validates against the Compose specification's
JSON schema, every path and command it names exists and loads with our own loaders, and
deploy/ is what it writes for the demo scenario."""

from __future__ import annotations

import importlib.resources
import json
import subprocess
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from fedorch.cli.main import cli
from fedorch.core.workflow.spec import load_spec_file
from fedorch.runtime.config import load_config
from fedorch.scenario.compose import write_project
from fedorch.scenario.loader import load_scenario, parse_scenario_text

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = sorted((ROOT / "scenarios").glob("*/scenario.yaml"))
DEPLOY = ROOT / "deploy"
CONFIG_TARGET = "/etc/fedorch/agent.yaml"


def compose_schema() -> dict:
    """The Compose specification's schema, as check-jsonschema vendors it."""
    text = (importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
            / "compose-spec.json").read_text()
    return json.loads(text)


def validate(document: dict) -> None:
    schema = compose_schema()
    jsonschema.validators.validator_for(schema)(schema).validate(document)


def mounts(service: dict) -> dict[str, str]:
    """Container path -> source (a path relative to the project, or a volume name)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = source
    return found


def host_path(out: Path, service: dict, container_path: str) -> Path | None:
    """The file in the project that a container path of the service comes from."""
    path = PurePosixPath(container_path)
    for target, source in mounts(service).items():
        if source.startswith("./") and (path == PurePosixPath(target)
                                        or PurePosixPath(target) in path.parents):
            return out / source / path.relative_to(target)
    return None


def dockerfile_command() -> list[str]:
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("CMD "):
            return json.loads(line[4:])
    raise AssertionError("deploy/Dockerfile has no CMD")


@pytest.mark.parametrize("path", LIBRARY, ids=[p.parent.name for p in LIBRARY])
def test_every_library_scenario_composes_into_a_valid_project(path: Path,
                                                              tmp_path: Path) -> None:
    loaded = load_scenario(path)
    out = tmp_path / "project"
    result = CliRunner().invoke(cli, ["scenario", "compose", str(path), "--out", str(out)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    document = yaml.safe_load((out / "docker-compose.yml").read_text())
    validate(document)
    services = document["services"]
    agents = {n: s for n, s in services.items() if n != "submitter"}
    assert list(agents) == list(loaded.domains)
    assert dockerfile_command()[-1] == CONFIG_TARGET
    for name, service in agents.items():
        context = out / service["build"]["context"]
        assert (context / service["build"]["dockerfile"]).is_file()
        for source in mounts(service).values():
            if source.startswith("./"):
                assert (out / source).exists(), (name, source)
            else:
                assert source in document["volumes"], (name, source)
        config_file = host_path(out, service, CONFIG_TARGET)
        config = load_config(config_file)  # our own loader, as the agent runs it
        assert config.domain == name
        assert config.advertise == f"{name}:7100"
        assert mounts(service)[config.data_dir] == f"{name}-data"
        assert host_path(out, service, config.key_file).parent == out / "keys"
        for seed in config.seeds:
            assert seed.split(":")[0] in agents
        for key_file in config.trust.key_files:
            assert PurePosixPath(key_file).stem in agents
        for capability in config.capabilities:
            for arg in capability.executor.argv[1:]:
                if arg.startswith("/"):  # a step script: shipped in the project
                    assert host_path(out, service, arg).is_file(), arg
        assert set(service["networks"]) <= set(document["networks"])
    if loaded.workflows:
        submitter = services["submitter"]
        assert set(submitter["depends_on"]) == set(agents)
        script = host_path(out, submitter, submitter["entrypoint"][-1])
        subprocess.run(["sh", "-n", str(script)], check=True)
        for workflow_id in loaded.workflows:
            spec_path = host_path(out, submitter, f"/etc/fedorch/workflows/{workflow_id}.yaml")
            assert load_spec_file(spec_path) == loaded.workflows[workflow_id].spec
            assert f"/etc/fedorch/workflows/{workflow_id}.yaml --peer" in script.read_text()
        assert CliRunner().invoke(cli, ["submit", "--help"]).exit_code == 0


def test_the_schema_check_can_fail(tmp_path: Path) -> None:
    write_project(load_scenario(ROOT / "scenarios" / "demo" / "scenario.yaml"), tmp_path)
    document = yaml.safe_load((tmp_path / "docker-compose.yml").read_text())
    document["services"]["eu-west"]["healthcheck"]["retry"] = 3  # retries, misspelt
    with pytest.raises(jsonschema.ValidationError):
        validate(document)


def test_deploy_is_the_demo_scenario_composed(tmp_path: Path) -> None:
    """deploy/ holds what `fedorch scenario compose scenarios/demo/scenario.yaml --out
    deploy --context ..` writes (its own README and keys/ aside). If this fails, write it
    again with that command."""
    write_project(load_scenario(ROOT / "scenarios" / "demo" / "scenario.yaml"), tmp_path,
                  context="..")
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")
                       if p.is_file() and p.name != "README.md" and p.parent.name != "keys")
    assert generated
    for relative in generated:
        assert (DEPLOY / relative).read_text() == (tmp_path / relative).read_text(), relative


def test_partitions_get_a_network_per_side(tmp_path: Path) -> None:
    text = """\
    name: split
    domains:
      - {name: a, capabilities: [{name: w, capacity: 1, executor: {type: builtin, name: echo}}]}
      - {name: b}
      - {name: c}
    faults:
      - {action: partition, domains: [a, b], from_domains: [c], at_s: 2}
      - {action: heal, at_s: 5}
    expect:
      - members: {alive: ["*"]}
    """
    import textwrap

    loaded = parse_scenario_text(textwrap.dedent(text), "split.yaml", tmp_path)
    write_project(loaded, tmp_path / "out")
    document = yaml.safe_load((tmp_path / "out" / "docker-compose.yml").read_text())
    validate(document)
    nets = {name: s["networks"] for name, s in document["services"].items()}
    assert nets == {"a": ["federation", "partition-0-a"], "b": ["federation", "partition-0-a"],
                    "c": ["federation", "partition-0-b"]}
    assert "submitter" not in document["services"]  # nothing to submit
    assert "partition a, b" in (tmp_path / "out" / "README.md").read_text()
