"""The test tree mirrors the source tree, as docs/architecture.md (Testing) says.

The rule: a test file `tests/unit/<path>/test_<name>.py` tests the package `agent/<path>/`
(`<path>` may be empty: `agent/` itself), and `<name>` is a module or subpackage `<m>` of
that package, or starts with `<m>_` followed by an aspect of it
(`agent/runtime/consensus.py` -> `tests/unit/runtime/test_consensus.py`,
`test_consensus_repeats.py`; the package `agent/core/identity/` as a whole ->
`tests/unit/core/test_identity.py`). `tests/sim/` mirrors `agent/sim/` by the same rule.
Files not named `test_*.py` (conftest.py, helpers such as waiting.py) may sit anywhere.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "agent"

# Each mirrored test tree and the source package it mirrors.
MIRRORS = [(ROOT / "tests" / "unit", SOURCE, "agent"),
           (ROOT / "tests" / "sim", SOURCE / "sim", "agent/sim")]


def _parts(package: Path) -> set[str]:
    """The names of a package's modules and subpackages (private ones left out)."""
    names = {p.stem for p in package.glob("*.py")}
    names |= {p.name for p in package.iterdir() if (p / "__init__.py").is_file()}
    return {n for n in names if not n.startswith("_")}


def misplaced(tests: Path, source: Path, label: str = "agent") -> list[str]:
    """Every test file under `tests` that names no module or package of `source` (shown
    as `label`) by the rule above, each with the reason, relative to `tests`."""
    found = []
    for test in sorted(tests.rglob("test_*.py")):
        where = test.parent.relative_to(tests)
        package = source / where
        name = test.stem.removeprefix("test_")
        shown = (Path(label) / where).as_posix()
        if not (package / "__init__.py").is_file():
            found.append(f"{test.relative_to(tests)}: {shown} is not a package")
        elif not any(name == m or name.startswith(m + "_") for m in _parts(package)):
            found.append(f"{test.relative_to(tests)}: names no module or subpackage of "
                         f"{shown}")
    return found


@pytest.mark.parametrize("tests, source, label", MIRRORS,
                         ids=[label for _, _, label in MIRRORS])
def test_every_test_file_names_the_module_it_tests(tests: Path, source: Path,
                                                   label: str) -> None:
    assert tests.is_dir() and source.is_dir()
    assert misplaced(tests, source, label) == []


def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def test_the_rule_takes_modules_aspects_and_packages_and_refuses_the_rest(tmp_path) -> None:
    source, tests = tmp_path / "agent", tmp_path / "tests"
    for module in ("__init__.py", "runtime/__init__.py", "runtime/consensus.py",
                   "runtime/store/__init__.py", "runtime/store/schema.py"):
        _touch(source / module)
    for good in ("runtime/test_consensus.py", "runtime/test_consensus_repeats.py",
                 "test_runtime_import_graph.py", "runtime/test_store.py",
                 "runtime/store/test_schema_migrations.py", "runtime/waiting.py",
                 "runtime/conftest.py"):
        _touch(tests / good)
    assert misplaced(tests, source) == []

    for bad in ("runtime/test_repeats_wait_for_disk.py",  # the story of a fix, no module
                "runtime/test_consensusx.py",             # not the module's name
                "runtime/test___init__.py",               # private names are not modules
                "deploy/test_deploy.py"):                 # no such package
        _touch(tests / bad)
    assert misplaced(tests, source) == [
        "deploy/test_deploy.py: agent/deploy is not a package",
        "runtime/test___init__.py: names no module or subpackage of agent/runtime",
        "runtime/test_consensusx.py: names no module or subpackage of agent/runtime",
        "runtime/test_repeats_wait_for_disk.py: names no module or subpackage of agent/runtime",
    ]

