"""The committed generated code in agent/gen must be what scripts/gen_proto.py produces."""

from __future__ import annotations

import filecmp
import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tree(root: pathlib.Path) -> set[str]:
    return {
        str(p.relative_to(root)) for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_fresh(tmp_path):
    gen = _load_generator()
    gen.generate(tmp_path / "gen")
    committed = ROOT / "agent" / "gen"
    fresh, ours = _tree(tmp_path / "gen"), _tree(committed)
    assert fresh == ours, f"file sets differ; run `make proto` (missing/extra: {fresh ^ ours})"
    stale = [f for f in sorted(fresh)
             if not filecmp.cmp(tmp_path / "gen" / f, committed / f, shallow=False)]
    assert not stale, f"stale generated files {stale}: run `make proto` and commit"


def test_generated_code_imports_as_part_of_the_package():
    from fedorch.gen.fedorch.v1 import client_pb2_grpc, peer_pb2

    assert peer_pb2.Envelope.DESCRIPTOR.full_name == "fedorch.v1.Envelope"
    assert hasattr(client_pb2_grpc, "ClientStub")
    # protoc's own absolute imports (`from fedorch.v1 import`) were all rewritten.
    assert "fedorch.v1" not in sys.modules
