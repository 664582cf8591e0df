"""Every YAML example in the README, docs/ and deploy/README.md loads with the real
loaders, and every relative link in them points at a file (and heading) that exists.

A fenced ```yaml block is checked by its kind, read from its content: a top-level
`domain:` is an agent config (fedorch.runtime.config.parse_config_text), top-level
`steps:` a workflow spec (fedorch.core.workflow.spec.parse_spec_text). A first line can
say the kind instead:

    # fedorch: agent config        check as a whole agent config
    # fedorch: workflow spec       check as a whole workflow spec
    # fragment: agent config ...   top-level keys of an agent config: checked inside a
                                   minimal valid config
    # fragment ...                 anything else: not checked, on purpose

A block that is none of these fails, so nothing is skipped silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from fedorch.core.workflow.spec import SpecError, parse_spec_text
from fedorch.runtime.config import ConfigError, parse_config_text

ROOT = Path(__file__).resolve().parents[2]
DOC_FILES = [ROOT / "README.md", ROOT / "deploy" / "README.md",
             *sorted((ROOT / "docs").glob("*.md"))]

# The smallest valid agent config: config fragments are checked inside it.
MINIMAL_CONFIG = {"domain": "example", "listen": "127.0.0.1:7101", "data_dir": "data",
                  "key_file": "keys/example.key"}

# Pages that other work adds; a link to one is allowed until it exists (then it is
# checked like any other).
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str

    @property
    def source(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}" \
               f":{self.line}"


def fenced_blocks(text: str, path: Path) -> list[Block]:
    """Every fenced code block of a Markdown text, with its language and first line."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(2), m.group(3).lower(), i
        body = []
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise ValueError(f"{path}:{start + 1}: code block never closed")
        blocks.append(Block(path, start + 1, lang, "\n".join(body) + "\n"))
        i += 1
    return blocks


def yaml_blocks() -> list[Block]:
    return [b for p in DOC_FILES for b in fenced_blocks(p.read_text(encoding="utf-8"), p)
            if b.lang in ("yaml", "yml")]


def kind_of(block: Block) -> str:
    """config, spec, config-fragment or fragment; ValueError when it cannot be told."""
    first = block.text.lstrip().splitlines()[0].strip() if block.text.strip() else ""
    if first == "# fedorch: agent config":
        return "config"
    if first == "# fedorch: workflow spec":
        return "spec"
    if first.startswith("# fragment: agent config"):
        return "config-fragment"
    if first.startswith("# fragment"):
        return "fragment"
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{block.source}: not YAML: {exc}") from None
    if isinstance(data, dict) and "domain" in data:
        return "config"
    if isinstance(data, dict) and "steps" in data:
        return "spec"
    raise ValueError(f"{block.source}: neither an agent config (top-level domain:) nor a "
                     f"workflow spec (steps:); mark its first line '# fragment' if it is "
                     f"meant to be neither")


def check_block(block: Block, base_dir: Path) -> str:
    """Load the block with the loader of its kind; raises what that loader raises."""
    kind = kind_of(block)
    if kind == "config":
        parse_config_text(block.text, block.source, base_dir)
    elif kind == "spec":
        parse_spec_text(block.text, block.source)
    elif kind == "config-fragment":
        fragment = yaml.safe_load(block.text)
        if not isinstance(fragment, dict):
            raise ValueError(f"{block.source}: a config fragment must be a mapping of keys")
        clash = set(fragment) & set(MINIMAL_CONFIG)
        if clash:
            raise ValueError(f"{block.source}: a fragment must not set {sorted(clash)}; "
                             f"make it a whole config instead")
        merged = yaml.safe_dump({**MINIMAL_CONFIG, **fragment}, sort_keys=False)
        parse_config_text(merged, block.source, base_dir)
    return kind


# ---- the examples --------------------------------------------------------------------


BLOCKS = yaml_blocks()


@pytest.mark.parametrize("block", BLOCKS, ids=[b.source for b in BLOCKS])
def test_example_loads(block: Block, tmp_path: Path) -> None:
    check_block(block, tmp_path)


def test_examples_are_found() -> None:
    """The extraction itself works: the pages do hold configs and specs to check."""
    kinds = [kind_of(b) for b in BLOCKS]
    assert kinds.count("config") >= 3, kinds
    assert kinds.count("spec") >= 2, kinds
    assert kinds.count("config-fragment") >= 2, kinds
    readme = [b for b in BLOCKS if b.path == ROOT / "README.md"]
    assert {kind_of(b) for b in readme} == {"config", "spec"}


# ---- the checker fails on what it must ------------------------------------------------


def _block(text: str) -> Block:
    return Block(ROOT / "docs" / "example.md", 1, "yaml", text)


def test_bad_config_fails(tmp_path: Path) -> None:
    bad = ("domain: eu-west\nlisten: 127.0.0.1:7101\ndata_dir: d\nkey_file: k\n"
           "capabilities:\n  - name: x\n    capacity: -1\n"
           "    executor: {type: builtin, name: echo}\n")
    with pytest.raises(ConfigError, match=r"capabilities\[0\]\.capacity"):
        check_block(_block(bad), tmp_path)


def test_bad_spec_fails(tmp_path: Path) -> None:
    bad = ("name: w\nsteps:\n  - {id: a, capability: c, needs: [b]}\n"
           "  - {id: b, capability: c, needs: [a]}\n")
    with pytest.raises(SpecError, match="cycle"):
        check_block(_block(bad), tmp_path)


def test_refused_gossip_keys_fail_as_a_fragment(tmp_path: Path) -> None:
    """The keys an old deploy/README promised are refused by the agent, and so here."""
    bad = "# fragment: agent config\ngossip: {interval_s: 0.5, fanout: 2}\n"
    with pytest.raises(ConfigError, match="gossip.interval_s: unknown key"):
        check_block(_block(bad), tmp_path)


def test_unmarked_block_of_no_known_kind_fails(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="mark its first line '# fragment'"):
        check_block(_block("services:\n  web: {image: x}\n"), tmp_path)


def test_marked_fragment_is_not_checked(tmp_path: Path) -> None:
    assert check_block(_block("# fragment: compose\nservices: {}\n"), tmp_path) == "fragment"


def test_fences_are_read_with_their_lines() -> None:
    text = "# t\n\n```sh\nls\n```\n\n```yaml\na: 1\n```\n"
    blocks = fenced_blocks(text, ROOT / "x.md")
    assert [(b.lang, b.line, b.text) for b in blocks] == [("sh", 3, "ls\n"),
                                                          ("yaml", 7, "a: 1\n")]
    with pytest.raises(ValueError, match="never closed"):
        fenced_blocks("```yaml\na: 1\n", ROOT / "x.md")


# ---- links ------------------------------------------------------------------------------


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The headings' anchors, and those a page keeps by name (`<a id="..."></a>`: a
    heading renamed keeps its old anchor, so links from elsewhere still land)."""
    text = path.read_text(encoding="utf-8")
    for block in fenced_blocks(text, path):
        text = text.replace(block.text, "")
    return ({_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M)}
            | set(re.findall(r'<a id="([\w-]+)"></a>', text)))


def broken_links(path: Path) -> list[str]:
    """Relative links of a Markdown file whose file (or heading) does not exist."""
    text = path.read_text(encoding="utf-8")
    for block in fenced_blocks(text, path):
        text = text.replace(block.text, "")
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.name})")
    return broken


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert broken_links(path) == []


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text('<a id="its-old-name"></a>\n\n# A heading\n')
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#a-heading) [web](https://x.org/y)\n"
                    "[kept](there.md#its-old-name)\n"
                    "[gone](missing.md) [bad anchor](there.md#nope) [self](#top)\n"
                    "# Top\n```md\n[in code](ignored.md)\n```\n")
    assert broken_links(page) == ["missing.md (no such file)",
                                  "there.md#nope (no heading #nope in there.md)"]


def test_readme_tour_matches_the_demo_files() -> None:
    """The tour copies scenarios/demo/ and shows two of its files: they must agree."""
    readme = [b for b in BLOCKS if b.path == ROOT / "README.md"]
    shown = {kind_of(b): yaml.safe_load(b.text) for b in readme}
    demo = ROOT / "scenarios" / "demo"
    assert shown["config"] == yaml.safe_load((demo / "eu-west.yaml").read_text())
    assert shown["spec"] == yaml.safe_load((demo / "workflow.yaml").read_text())


# ---- paths named in code spans --------------------------------------------------------

_REPO_PATH = re.compile(r"`((?:agent|tests|scripts|scenarios|deploy|proto|docs)/[^`\s]*)`")


def missing_paths(path: Path) -> list[str]:
    """Repository paths written as `agent/...` (etc.) in a page that do not exist: the
    docs name modules and files, and a file moved without its docs is a stale page."""
    text = path.read_text(encoding="utf-8")
    return sorted({p for p in _REPO_PATH.findall(text)
                   if not (ROOT / p.rstrip("/")).exists()})


@pytest.mark.parametrize("path", DOC_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_named_paths_exist(path: Path) -> None:
    assert missing_paths(path) == []


def test_missing_paths_are_found(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("`agent/core/` `agent/core/nowhere.py` `scripts/gen_docs.py` `x/y.py`\n")
    assert missing_paths(page) == ["agent/core/nowhere.py"]
