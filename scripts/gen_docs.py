#!/usr/bin/env python3
"""Render the protocol cores' own transition tables (and the gossip profiles) into docs/.

The cores keep their transitions as data: dicts keyed by (state, input). Copying them into
prose by hand would drift, so the docs hold generated blocks between marker comments:

    <!-- BEGIN GENERATED: NAME (scripts/gen_docs.py) -->

    ...

    <!-- END GENERATED: NAME -->

Everything outside the markers is written by hand and left alone.
tests/docs/test_generated.py fails when a block differs from what this script renders.

Usage: gen_docs.py [--check]   (--check: change nothing, exit 1 if a block is stale)
"""

from __future__ import annotations

import enum
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


# ---- rendering helpers -------------------------------------------------------------------


def _name(key: object) -> str:
    """A table key as the docs show it: enum member names, class names, 'none' for None."""
    if key is None:
        return "none"
    if isinstance(key, enum.Enum):
        return key.name
    if isinstance(key, type):
        return key.__name__
    return str(key)


def _handler(func: Callable[..., object]) -> str:
    """A handler as the docs show it: its method name without the leading underscore."""
    return "`" + func.__name__.lstrip("_") + "`"


def _ordered(keys: Iterable[object]) -> list[object]:
    """Distinct keys in first-seen order (the order the table is written in the code)."""
    seen: list[object] = []
    for key in keys:
        if key not in seen:
            seen.append(key)
    return seen


def matrix(table: Mapping[tuple[object, object], object], cell: Callable[[object], str],
           corner: str, missing: str) -> str:
    """A (row, column) -> value table as a Markdown grid; absent pairs show `missing`."""
    rows = _ordered(r for r, _ in table)
    cols = _ordered(c for _, c in table)
    lines = [
        "| " + " | ".join([corner, *(_name(c) for c in cols)]) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for r in rows:
        cells = [cell(table[(r, c)]) if (r, c) in table else missing for c in cols]
        lines.append("| " + " | ".join([f"**{_name(r)}**", *cells]) + " |")
    return "\n".join(lines)


# ---- the blocks ----------------------------------------------------------------------------


def coordinator_table() -> str:
    from fedorch.core.negotiation import coordinator

    return matrix(coordinator._TRANSITIONS, _handler, "phase \\ input",
                  "protocol error")


def participant_table() -> str:
    from fedorch.core.negotiation import participant

    # The keys are (hold state or None, the decision is COMMIT); show the bool as a word.
    table = {(state, "COMMIT" if commit else "ABORT"): handler
             for (state, commit), handler in participant._DECIDE.items()}
    return matrix(table, _handler, "hold \\ decision", "protocol error")


def acceptor_table() -> str:
    from fedorch.core.negotiation import acceptor

    return matrix(acceptor._TABLE, _handler, "record \\ message", "protocol error")


def proposer_table() -> str:
    from fedorch.core.negotiation import proposer

    return matrix(proposer._PROPOSER_TABLE, _handler, "phase \\ message",
                  "protocol error")


def swim_table() -> str:
    from fedorch.core.membership import swim_table as swim

    def rule(value: object) -> str:
        same, newer = value.same.value, value.newer.value  # type: ignore[attr-defined]
        return f"{same} / {newer}"

    return matrix(swim.TRANSITIONS, rule, "held \\ claim", "—")


def profiles_table() -> str:
    import dataclasses

    from fedorch.core.membership.swim_profiles import PROFILES, SwimProfile

    names = list(PROFILES)
    lines = ["| field | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|" + "---|" * (len(names) + 1)]
    for field in dataclasses.fields(SwimProfile):
        values = [f"{getattr(PROFILES[n], field.name):g}" for n in names]
        lines.append(f"| `{field.name}` | " + " | ".join(values) + " |")
    return "\n".join(lines)


# (file under docs/, block name) -> renderer
BLOCKS: dict[tuple[str, str], Callable[[], str]] = {
    ("negotiation.md", "coordinator"): coordinator_table,
    ("negotiation.md", "participant"): participant_table,
    ("negotiation.md", "acceptor"): acceptor_table,
    ("negotiation.md", "proposer"): proposer_table,
    ("membership.md", "swim"): swim_table,
    ("configuration.md", "profiles"): profiles_table,
}


# ---- markers ---------------------------------------------------------------------------------


def _block_re(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- BEGIN GENERATED: {re.escape(name)} \(scripts/gen_docs\.py\) -->\n)"
        rf"(.*?)"
        rf"(<!-- END GENERATED: {re.escape(name)} -->)",
        re.DOTALL,
    )


def render(text: str, blocks: Mapping[str, str], source: str) -> str:
    """`text` with each named block replaced; a block without its markers is an error."""
    for name, body in blocks.items():
        pattern = _block_re(name)
        if len(pattern.findall(text)) != 1:
            raise ValueError(f"{source}: expected one generated block {name!r} "
                             f"(BEGIN and END markers)")
        # Blank lines around the body keep Markdown from reading it as part of the comment.
        text = pattern.sub(lambda m, b=body: m.group(1) + "\n" + b + "\n\n" + m.group(3), text)
    return text


def expected() -> dict[Path, tuple[str, str]]:
    """Each docs file that holds generated blocks: (current text, text it should have)."""
    by_file: dict[str, dict[str, str]] = {}
    for (file, name), renderer in BLOCKS.items():
        by_file.setdefault(file, {})[name] = renderer()
    out = {}
    for file, blocks in by_file.items():
        path = DOCS / file
        current = path.read_text(encoding="utf-8")
        out[path] = (current, render(current, blocks, str(path.relative_to(ROOT))))
    return out


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, (current, wanted) in expected().items():
        if current != wanted:
            stale.append(path.relative_to(ROOT))
            if not check:
                path.write_text(wanted, encoding="utf-8")
    if check and stale:
        print("stale generated blocks in: " + ", ".join(map(str, stale))
              + "; run scripts/gen_docs.py", file=sys.stderr)
        return 1
    for path in stale:
        print(f"updated {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
