"""Executor plugins: types found through the fedorch.executors entry points, the example
plugin in docs/, and the config errors that name the field to fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from fedorch.runtime.config import ConfigError, parse_config_text
from fedorch.runtime.executors import (
    ENTRY_POINT_GROUP,
    ExecutorConfigError,
    StepInvocation,
    build_executor,
    build_from_config,
    installed_types,
    settings_from_config,
)

ROOT = Path(__file__).resolve().parents[4]
EXAMPLE = ROOT / "docs" / "examples" / "executor_plugin"
BUILT_IN_TYPES = {"builtin", "command", "dask", "http", "slurm"}
CONFIG = """\
domain: eu-west
listen: 127.0.0.1:7101
data_dir: ./data
key_file: keys/eu-west.key
capabilities:
  - name: ml.train
    capacity: 1
    executor: {EXECUTOR}
"""


def install_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """What pip leaves behind for a package: a dist-info with its entry points."""
    dist = site / f"{name.replace('-', '_')}-0.1.0.dist-info"  # as pip names it
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def example_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The example package in docs/, installed as pip would (its module and entry points)."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    install_distribution(tmp_path / "site", project["name"],
                         project["entry-points"][ENTRY_POINT_GROUP])
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))


def invocation(params: dict, timeout_s: float | None = 10.0) -> StepInvocation:
    return StepInvocation(workflow_id="wf-1", step_id="hello", attempt=1, params=params,
                          inputs={}, timeout_s=timeout_s)


def config_error(executor_yaml: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config_text(CONFIG.replace("{EXECUTOR}", executor_yaml), "eu.yaml", "/base")
    return str(info.value)


def test_fedorchs_own_types_are_plugins_too() -> None:
    assert BUILT_IN_TYPES <= set(installed_types())


async def test_an_installed_plugin_is_a_type_like_the_built_in_ones(example_plugin) -> None:
    assert "greet" in installed_types()
    executor = build_executor("greet", options={"greeting": "Hello"})
    outcome = await executor.run(invocation({"name": "partner"}))
    assert outcome.ok, outcome.error
    assert outcome.outputs == {"message": "Hello, partner!", "attempt": 1}
    failed = await executor.run(invocation({"name": 7}))
    assert not failed.ok and "params.name must be a string" in failed.error


async def test_a_plugin_configured_in_the_agent_config(example_plugin) -> None:
    config = parse_config_text(
        CONFIG.replace("{EXECUTOR}", "{type: greet, options: {greeting: Hej, delay_s: 0.01}}"),
        "eu.yaml", "/base",
    )
    executor = build_from_config(config.capabilities[0].executor)
    outcome = await executor.run(invocation({"name": "eu-west"}))
    assert outcome.outputs["message"] == "Hej, eu-west!"


def test_a_plugins_option_errors_name_the_field(example_plugin) -> None:
    message = config_error("{type: greet, options: {greting: Hej}}")
    assert message.startswith("eu.yaml: capabilities[0].executor.options.greting: unknown option")
    assert "valid options: delay_s, greeting" in message
    message = config_error("{type: greet}")
    assert message.startswith("eu.yaml: capabilities[0].executor.options.greeting: required")
    message = config_error("{type: greet, options: {greeting: Hej, delay_s: -1}}")
    assert "capabilities[0].executor.options.delay_s: must be a number greater than 0" in message
    message = config_error("{type: greet, argv: [x], options: {greeting: Hej}}")
    assert "capabilities[0].executor.argv: " in message and "not used by type greet" in message


def test_an_unknown_type_lists_the_installed_ones(example_plugin) -> None:
    message = config_error("{type: kubernetes}")
    assert message.startswith("eu.yaml: capabilities[0].executor.type: must be one of the "
                              "installed types: builtin, command, dask, greet, http, slurm")
    assert "got 'kubernetes'" in message and ENTRY_POINT_GROUP in message
    with pytest.raises(ExecutorConfigError, match="'kubernetes'") as info:
        build_executor("kubernetes")
    assert info.value.field == "type"


def test_options_keep_whole_numbers_as_integers() -> None:
    config = parse_config_text(
        CONFIG.replace("{EXECUTOR}", "{type: http, options: {url: 'http://127.0.0.1:1/s', "
                       "max_poll_errors: 3, poll_interval_s: 0.25}}"),
        "eu.yaml", "/base",
    )
    options = settings_from_config(config.capabilities[0].executor).options
    assert options == {"url": "http://127.0.0.1:1/s", "max_poll_errors": 3,
                       "poll_interval_s": 0.25}
    assert type(options["max_poll_errors"]) is int


def test_a_plugin_that_cannot_be_imported_is_a_config_error(tmp_path, monkeypatch) -> None:
    install_distribution(tmp_path, "broken-plugin", {"broken": "no_such_module_xyz:build"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ExecutorConfigError, match=r"'broken' \(no_such_module_xyz:build\) "
                       "cannot be loaded: ModuleNotFoundError"):
        build_executor("broken")


def test_a_factory_that_crashes_is_a_config_error(tmp_path, monkeypatch) -> None:
    install_distribution(tmp_path, "crashing-plugin", {"crashing": "builtins:dict"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ExecutorConfigError, match="'crashing' failed to build: TypeError"):
        build_executor("crashing")


def test_two_packages_claiming_one_type_are_refused(tmp_path, monkeypatch) -> None:
    install_distribution(tmp_path, "one-plugin", {"twin": "json:loads"})
    install_distribution(tmp_path, "other-plugin", {"twin": "json:dumps"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ExecutorConfigError, match="more than one package"):
        build_executor("twin")


def test_a_factory_must_return_an_executor(tmp_path, monkeypatch) -> None:
    install_distribution(tmp_path, "odd-plugin", {"odd": "builtins:str"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ExecutorConfigError, match="has no run"):
        build_executor("odd")


@pytest.mark.parametrize(
    ("executor_yaml", "fragment"),
    [
        ("{type: http}", "executor.options.url: required for type http"),
        ("{type: http, options: {url: 'ftp://x/y'}}",
         "executor.options.url: must be an http:// or https:// URL"),
        ("{type: http, options: {url: 'http://h/s', headers: {X-Token: 5}}}",
         "executor.options.headers: must be a mapping of names to strings"),
        ("{type: http, options: {url: 'http://h/s', poll_interval_s: 2, poll_max_interval_s: 1}}",
         "executor.options.poll_max_interval_s: must be at least poll_interval_s"),
        ("{type: http, argv: [curl], options: {url: 'http://h/s'}}",
         "executor.argv: executor.argv is not used by type http"),
        ("{type: dask, options: {function: 'steps:train'}}",
         "executor.options.scheduler: required for type dask"),
        ("{type: dask, options: {scheduler: '127.0.0.1:8786', function: 'steps:train'}}",
         "executor.options.scheduler: must be a scheduler address like tcp://HOST:PORT"),
        ("{type: dask, options: {scheduler: 'tcp://h:1', function: 'train'}}",
         "executor.options.function: must be a path like package.module:function"),
        ("{type: dask, options: {scheduler: 'tcp://h:1', function: 'a:b', resources: {GPU: x}}}",
         "executor.options.resources: must be a mapping of names to non-negative numbers"),
        ("{type: slurm, options: {work_dir: /shared}}", "executor.argv: executor.argv is required"),
        ("{type: slurm, argv: [python3, s.py], options: {work_dir: jobs}}",
         "executor.options.work_dir: must be an absolute path"),
        ("{type: slurm, argv: [python3], options: {work_dir: /j, sbatch_args: --mem=1G}}",
         "executor.options.sbatch_args: must be a list of non-empty strings"),
        ("{type: command, argv: [python3], options: {url: x}}",
         "executor.options: executor.options is not used by type command"),
        ("{type: builtin, name: echo, options: {seconds: 1}}",
         "executor.options: executor.options is not used by type builtin"),
    ],
)
def test_built_in_types_check_their_settings(executor_yaml: str, fragment: str) -> None:
    message = config_error(executor_yaml)
    assert f"eu.yaml: capabilities[0].{fragment}" in message, message
    assert "\n" not in message
