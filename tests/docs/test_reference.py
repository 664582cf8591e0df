"""The reference pages name every field of the messages they document, so a field added
to config.proto or spec.proto without its documentation fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from google.protobuf.descriptor import Descriptor

ROOT = Path(__file__).resolve().parents[2]


def field_paths(desc: Descriptor, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf field under a message (maps and Structs are leaves; a
    message field is documented through its own fields)."""
    paths = []
    for field in desc.fields:
        path = f"{prefix}{field.name}"
        sub = field.message_type
        if sub is None or sub.GetOptions().map_entry or sub.full_name.startswith("google."):
            paths.append(path)
        else:
            paths.extend(field_paths(sub, f"{path}."))
    return paths


def undocumented(desc: Descriptor, page: str) -> list[str]:
    """Fields whose last name never appears in a code span of the page, alone or as the
    end of a dotted path (`residency.accept`, `executor.argv`)."""
    prose = re.sub(r"^(`{3,}).*?^\1", "", page, flags=re.M | re.S)  # not the code blocks
    spans = re.findall(r"`([^`\n]+)`", prose)
    missing = []
    for path in field_paths(desc):
        name = path.rsplit(".", 1)[-1]
        pattern = re.compile(rf"(^|[.\]]){re.escape(name)}(:|$|\s)")
        if not any(pattern.search(span) for span in spans):
            missing.append(path)
    return missing


@pytest.mark.parametrize(("desc", "page"), [
    (config_pb2.AgentConfig.DESCRIPTOR, "configuration.md"),
    (spec_pb2.WorkflowSpec.DESCRIPTOR, "workflow-spec.md"),
], ids=["config", "spec"])
def test_every_field_is_documented(desc: Descriptor, page: str) -> None:
    assert undocumented(desc, (ROOT / "docs" / page).read_text(encoding="utf-8")) == []


def test_an_undocumented_field_is_found() -> None:
    page = "| `domain` | ... | `seeds` |\n"
    missing = undocumented(config_pb2.AgentConfig.DESCRIPTOR, page)
    assert "listen" in missing and "policy.residency.accept" in missing
    assert "domain" not in missing and "seeds" not in missing


def _json_blocks(page: str) -> list[object]:
    import json

    return [json.loads(body) for body in re.findall(r"^```json\n(.*?)^```", page, re.M | re.S)]


def test_cli_json_examples_have_the_shapes_the_cli_prints() -> None:
    """The status and members examples in docs/cli.md carry exactly the keys that
    fedorch.cli.render produces, at every level."""
    from fedorch.cli.render import member_to_dict, status_to_dict
    from fedorch.gen.fedorch.v1 import client_pb2, status_pb2

    status_example, members_example = _json_blocks(
        (ROOT / "docs" / "cli.md").read_text(encoding="utf-8"))
    status = status_pb2.WorkflowStatus(
        steps=[status_pb2.StepStatus()], refusals=[status_pb2.Refusal()])
    printed = status_to_dict(status)
    assert set(status_example) == set(printed)
    assert set(status_example["steps"][0]) == set(printed["steps"][0])
    assert set(status_example["refusals"][0]) == set(printed["refusals"][0])
    member = client_pb2.MemberInfo()
    member.capabilities.add()
    printed_member = member_to_dict(member)
    assert set(members_example[0]) == set(printed_member)
    assert set(members_example[0]["capabilities"][0]) == set(printed_member["capabilities"][0])
