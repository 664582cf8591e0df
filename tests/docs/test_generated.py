"""The tables in docs/ that scripts/gen_docs.py renders from the cores are current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_docs = _gen_docs()


@pytest.mark.parametrize("path", sorted({ROOT / "docs" / f for f, _ in gen_docs.BLOCKS}),
                         ids=lambda p: p.name)
def test_generated_blocks_are_current(path: Path) -> None:
    current, wanted = gen_docs.expected()[path]
    assert current == wanted, (
        f"{path.relative_to(ROOT)} is stale: run .venv/bin/python scripts/gen_docs.py")


def test_stale_block_is_detected() -> None:
    text = ("intro\n<!-- BEGIN GENERATED: t (scripts/gen_docs.py) -->\nold table\n"
            "<!-- END GENERATED: t -->\noutro\n")
    rendered = gen_docs.render(text, {"t": "| a |\n|---|"}, "x.md")
    assert rendered != text
    assert rendered == ("intro\n<!-- BEGIN GENERATED: t (scripts/gen_docs.py) -->\n\n"
                        "| a |\n|---|\n\n<!-- END GENERATED: t -->\noutro\n")
    # Rendering again changes nothing: a current block compares equal.
    assert gen_docs.render(rendered, {"t": "| a |\n|---|"}, "x.md") == rendered


def test_missing_markers_are_an_error() -> None:
    with pytest.raises(ValueError, match="expected one generated block 't'"):
        gen_docs.render("no markers here\n", {"t": "| a |"}, "x.md")


def test_tables_come_from_the_cores() -> None:
    """Every (state, input) pair of the coordinator's table shows up in the docs, with
    the handler the code runs for it."""
    from fedorch.core.negotiation import coordinator

    table = gen_docs.coordinator_table()
    for (phase, event), handler in coordinator._TRANSITIONS.items():
        row = next(line for line in table.splitlines() if line.startswith(f"| **{phase.name}**"))
        header = table.splitlines()[0].split(" | ")
        column = [h.strip(" |") for h in header].index(event)
        assert row.split(" | ")[column].strip(" |") == f"`{handler.__name__.lstrip('_')}`"
