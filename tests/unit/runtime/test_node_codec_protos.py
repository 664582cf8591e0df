"""A workflow's spec and signed submission serialised once per message object
(runtime/node_codec_protos.py): the bytes written are always the message's own, and
nothing in a federation's run changes a message after its bytes were kept."""

from __future__ import annotations

from fedorch.bench.node import run_node_bench
from fedorch.core.node.records import CoordRow, WfInfo
from fedorch.core.workflow.lifecycle import WorkflowState
from fedorch.gen.fedorch.v1 import config_pb2, spec_pb2
from fedorch.runtime.node_codec import NodeCodec, node_codec
from fedorch.runtime.node_codec_protos import ProtoBytes

from tests.unit.runtime.test_driver import spec


def _codec() -> NodeCodec:
    return NodeCodec([CoordRow, WfInfo, WorkflowState], [spec_pb2.WorkflowSpec,
                                                         spec_pb2.SignedSpec,
                                                         config_pb2.Policy],
                     kept=(spec_pb2.WorkflowSpec, spec_pb2.SignedSpec))


def _row(spec_: spec_pb2.WorkflowSpec, state: WorkflowState) -> CoordRow:
    info = WfInfo(spec_, {"s0": "d1"}, "d0", submission=spec_pb2.SignedSpec(
        principal="domain:d0", spec=spec_.SerializeToString(deterministic=True)))
    return CoordRow("d0.w1", info, state)


def test_a_rows_spec_is_serialised_once_across_the_rows_changes():
    codec = _codec()
    spec_ = spec("a", "b")
    row = _row(spec_, WorkflowState.NEGOTIATING)
    first = codec.encode(row)
    assert codec.proto_bytes.serialised == 2  # the spec and the submission
    for state in (WorkflowState.RUNNING, WorkflowState.SUCCEEDED):
        row = CoordRow(row.workflow_id, row.info, state)
        back = codec.decode(codec.encode(row))
        assert back.info.spec == spec_ and back.state is state
    assert codec.proto_bytes.serialised == 2
    assert codec.decode(first).info.submission == row.info.submission


def test_another_message_is_never_written_with_the_bytes_of_one_freed_before():
    """The bytes are kept with the message they are of: a message freed after its
    encoding cannot hand its id, and so its bytes, to the next one (CPython reuses the
    address of a freed object at once)."""
    codec = _codec()
    for n in range(50):
        message = spec_pb2.WorkflowSpec(name=f"w{n}")
        assert codec.decode(codec.encode(message)).name == f"w{n}"
        del message
    assert codec.proto_bytes.serialised == 50


def test_other_protobuf_messages_are_serialised_at_each_encoding():
    codec = _codec()
    policy = config_pb2.Policy(accept_from=["*"])
    codec.encode(policy)
    policy.accept_from.append("d9")  # a message of a class whose bytes are not kept
    assert list(codec.decode(codec.encode(policy)).accept_from) == ["*", "d9"]
    assert codec.proto_bytes.of(policy) == policy.SerializeToString(deterministic=True)
    policy.accept_from.append("d8")
    assert codec.proto_bytes.of(policy) == policy.SerializeToString(deterministic=True)
    assert codec.proto_bytes.serialised == 0


def test_the_kept_bytes_are_bounded_in_count_and_size():
    kept = ProtoBytes([spec_pb2.WorkflowSpec], kept=2, max_bytes=64 * 100)
    messages = [spec_pb2.WorkflowSpec(name=f"w{n}") for n in range(3)]
    for m in messages:
        assert kept.of(m) == m.SerializeToString(deterministic=True)
    assert len(kept._entries) == 2 and id(messages[0]) not in kept._entries
    large = spec_pb2.WorkflowSpec(name="x" * 200)  # over max_bytes / 64: not kept
    kept.of(large)
    assert id(large) not in kept._entries
    kept = ProtoBytes([spec_pb2.WorkflowSpec], kept=100, max_bytes=64 * 100)  # 6,400 bytes in all
    for n in range(100):
        kept.of(spec_pb2.WorkflowSpec(name=f"{n:090d}"))
    assert kept._bytes <= 64 * 100 and kept._bytes == sum(len(d) for _, d in
                                                         kept._entries.values())


def test_a_kept_message_changed_after_its_encoding_is_found_stale():
    kept = ProtoBytes([spec_pb2.WorkflowSpec])
    message = spec_pb2.WorkflowSpec(name="w")
    kept.of(message)
    assert kept.stale() == []
    message.name = "changed"  # what nothing in the runtime or the cores does
    assert kept.stale() == [message]


def test_no_spec_or_submission_changes_after_its_bytes_were_kept_in_a_federation(tmp_path):
    """Three agents' Nodes with their real rows (SQLite) and wire: every spec and signed
    submission whose bytes were kept still serialises to them after the workflows ran."""
    codec = node_codec()
    before = codec.proto_bytes.serialised
    earlier = set(codec.proto_bytes._entries)  # kept by other tests in this process
    result = run_node_bench(workflows=12, concurrency=(4,), envelopes=("turn",), warmup=3,
                            data_dir=str(tmp_path))
    assert result["runs"][0]["loops"][0]["ends"] == {"SUCCEEDED": 12}
    assert codec.proto_bytes.serialised > before
    assert [m for m in codec.proto_bytes.stale() if id(m) not in earlier] == []
