"""Every file or module the docs name exists, so a page never sends a reader to code or
a test that is gone.

What counts as a name, in the prose of each page (fenced code blocks are examples, not
references, and are left out):
- a path from the repository's root (`agent/...`, `tests/...`, `proto/...`,
  `scripts/...`, `deploy/...`, `scenarios/...`, `docs/...`);
- a path inside the package, as the pages often shorten them (`core/node/takeover.py`,
  `runtime/node_engine/`): looked up under `agent/`;
- a bare test file (`test_restart.py`): some file of that name under `tests/`;
- a bare module (`placed_here.py`): some file of that name in the repository, unless the
  page says it is gone, `(removed` right after it.
docs/benchmarks.md is a dated record of runs (its older entries name code of their
time) and is left out. (test_examples.py checks the root paths written in code spans
of every page, benchmarks.md included; this test reaches the shortened and bare names
too, and the prose around the code spans.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "benchmarks.md") + [
    ROOT / "README.md", ROOT / "deploy" / "README.md"]

_ROOTED = ("agent", "tests", "proto", "scripts", "deploy", "scenarios", "docs")
_IN_PACKAGE = ("core", "runtime", "sim", "cli", "bench", "client", "scenario")
_EDGE = r"(?<![\w/.$-])"  # not the middle of a longer path, a URL or $VAR/...
_PATH = re.compile(_EDGE + r"((?:" + "|".join(_ROOTED + _IN_PACKAGE)
                   + r")/(?:[\w.-]+/)*[\w.-]*)")
_MODULE = re.compile(_EDGE + r"(\w+\.py)\b(?!`?\s*\(removed)")
_FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1", re.M | re.S)


def _files_named() -> set[str]:
    names = set()
    for top in ("agent", "tests", "scripts", "deploy", "scenarios"):
        names |= {p.name for p in (ROOT / top).rglob("*.py")}
    return names | {p.name for p in ROOT.glob("*.py")}


def _exists(path: str) -> bool:
    path = path.rstrip(".")  # a sentence may end right after it
    first = path.split("/", 1)[0]
    base = ROOT / "agent" if first in _IN_PACKAGE else ROOT
    return (base / path).exists()


def missing(page: str, files_named: set[str]) -> list[str]:
    """The names in `page` (its text) that name nothing in the repository."""
    prose = _FENCE.sub("", page)
    gone = [p for p in _PATH.findall(prose) if not _exists(p)]
    gone += [m for m in _MODULE.findall(prose)
             if m not in files_named and not _exists(m)]
    return sorted(set(gone))


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_path_a_page_names_exists(page: Path) -> None:
    assert missing(page.read_text(encoding="utf-8"), _files_named()) == []


def test_a_path_that_is_gone_is_found() -> None:
    page = ("See `agent/runtime/consensus.py` and `core/node/no_such_part.py`, "
            "`tests/integration/test_gone.py`, `test_also_gone.py`, and the old "
            "`in_doubt.py` (removed with it) beside `gone_too.py`.\n"
            "```yaml\nexecutor: {argv: [python3, tests/example_only.py]}\n```\n"
            "Kept: `agent/core/node/node.py`, `runtime/node_engine/`, `placed_here.py`, "
            "`tests/docs/test_paths.py`, https://example.org/agent/x.py.\n")
    assert missing(page, _files_named()) == [
        "agent/runtime/consensus.py", "core/node/no_such_part.py", "gone_too.py",
        "test_also_gone.py", "tests/integration/test_gone.py"]
