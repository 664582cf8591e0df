"""A running in-process agent (domain alpha) for fuzzing its service handlers: its own
event loop, trusted peers beta and gamma, an untrusted mallory, a fake gRPC context
that records how a call ended, and a snapshot of everything a refused input must
leave as it was.

Hypothesis drives plain functions, so the agent runs on an event loop of its own that
each example enters with run_until_complete (the agent's loops run meanwhile)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import Awaitable, Callable

import grpc
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fedorch.core.identity.envelope import Signer, new_nonce, seal
from fedorch.core.identity.keys import init_keys, load_private_key
from fedorch.gen.fedorch.v1 import peer_pb2
from fedorch.runtime.agent import Agent, run_until_stopped
from fedorch.runtime.config import parse_config_text
from fedorch.runtime.peers import PeerCallError
from fedorch.runtime.store.store import Store
from google.protobuf import descriptor

START_TIMEOUT_S = 30.0
SETTLE_TIMEOUT_S = 30.0
# Rows the audit log gains for a refusal are the point of it, not a change of state.
AUDIT_TABLES = frozenset({"audit", "audit_checkpoints"})


class Aborted(Exception):
    """What grpc.aio's context.abort raises: the call ends with this status."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class FakeContext:
    """The part of grpc.aio.ServicerContext the handlers use; abort raises as gRPC's
    does, after recording the status."""

    def __init__(self, metadata: tuple = (), time_remaining_s: float = 5.0) -> None:
        self.code: grpc.StatusCode | None = None
        self.details = ""
        self.trailing: tuple = ()
        self._metadata = metadata
        self._time_remaining_s = time_remaining_s

    def peer(self) -> str:
        return "ipv4:127.0.0.1:9"

    def invocation_metadata(self):
        return self._metadata

    def time_remaining(self) -> float:
        return self._time_remaining_s

    def set_trailing_metadata(self, metadata) -> None:
        self.trailing = tuple(metadata)

    async def abort(self, code: grpc.StatusCode, details: str = ""):
        self.code, self.details = code, details
        raise Aborted(code, details)


class Harness:
    """Agent alpha, running; signers for beta and gamma (trusted) and mallory (not)."""

    def __init__(self, tmp: pathlib.Path) -> None:
        keys = tmp / "keys"
        for domain in ("alpha", "beta", "gamma"):
            init_keys(domain, keys)
        config = parse_config_text(
            "domain: alpha\nlisten: 127.0.0.1:1\ndata_dir: data\nkey_file: keys/alpha.key\n"
            "trust:\n  key_files: [keys/beta.pub, keys/gamma.pub]\n"
            "capabilities:\n"
            "  - {name: x, capacity: 4, executor: {type: builtin, name: echo}}\n"
            # Holds an accepted PREPARE leaves (its coordinator never answers) outlast the
            # test: an expiring one would change the state a later refusal is checked on.
            "negotiation: {lease_s: 3600, takeover_after_s: 3600}\n", "alpha.yaml", tmp)
        self.beta = Signer("beta", load_private_key(keys / "beta.key"))
        self.gamma = Signer("gamma", load_private_key(keys / "gamma.key"))
        self.mallory = Signer("mallory", Ed25519PrivateKey.generate())
        self.loop = asyncio.new_event_loop()
        self.store: Store = self.loop.run_until_complete(Store.open(tmp / "data"))
        self.agent = Agent(config, self.store)
        # Nothing leaves: a fuzzed SWIM message names members at fuzzed addresses
        # ("beta", "x" * 5000, …), and the agent would probe them (name lookups, calls
        # off this host), while their answers, or their timing out, would change what
        # alpha holds between the two snapshots a refusal is compared on.
        self.agent.peers.call = self._nothing_leaves
        self.runner = self.loop.create_task(run_until_stopped(self.agent))
        try:
            self.run(self._ready())
        except BaseException:
            self.close()
            raise

    async def _nothing_leaves(self, endpoint: str, method: str, **_ignored):
        raise PeerCallError("UNAVAILABLE", "the fuzz harness lets no call leave")

    async def _ready(self) -> None:
        async with asyncio.timeout(START_TIMEOUT_S):
            await self.agent.ready.wait()

    def run(self, coro: Awaitable):
        return self.loop.run_until_complete(coro)

    def close(self) -> None:
        self.agent.stop()
        try:
            self.run(self.runner)
        finally:
            self.run(self.store.close())
            self.loop.close()

    def seal(self, signer: Signer, **payload) -> peer_pb2.Envelope:
        return seal(signer, recipient="alpha", now_ms=self.agent.now_ms(),
                    nonce=new_nonce(), **payload)

    def call(self, method: Callable, request, context: FakeContext | None = None):
        """One handler call as gRPC makes it: the reply, or the Aborted it ended with.
        Any other exception escapes (the test fails on it)."""
        context = context if context is not None else FakeContext()
        try:
            return self.run(method(request, context))
        except Aborted as e:
            return e

    async def _settled(self) -> None:
        ended = asyncio.Event()
        hook = lambda workflow_id: ended.set()  # noqa: E731 (called once it left `active`)
        self.agent.on_settled.append(hook)
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT_S):
                while self.agent.active:
                    ended.clear()
                    await ended.wait()
        finally:
            self.agent.on_settled.remove(hook)

    def settle(self) -> None:
        """Wait (bounded) until no workflow is active: an accepted input's workflow runs on
        in the background, and would change the rows a later refusal must leave alone."""
        self.run(self._settled())

    async def _snapshot(self) -> dict:
        tables = await self.store.select(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        rows = {}
        for (name,) in tables:
            if name not in AUDIT_TABLES:
                found = await self.store.select(f'SELECT * FROM "{name}"')  # noqa: S608
                rows[name] = sorted(map(repr, found))
        a = self.agent
        return {
            "tables": rows,
            "active": sorted(a.active),
            "holds": sorted((h.workflow_id, h.round, h.coordinator, h.state.value,
                             repr(h.steps), h.lease_expires) for h in a.participant.holds()),
            "early": sorted(a.participation.runs.early),
            "trust": {d: list(map(repr, a.trust.records(d))) for d in a.trust.domains()},
        }

    def snapshot(self) -> dict:
        return self.run(self._snapshot())

    def check_alive(self) -> None:
        """The agent did not stop and still answers a valid request, signed."""
        from fedorch.runtime.peer_service import PeerService

        assert self.agent.fatal is None and not self.agent.stopping
        query = self.seal(self.beta, decision_query=peer_pb2.DecisionQuery(
            workflow_id="alpha.alive", round=1))
        reply = self.call(PeerService(self.agent).QueryDecision, query)
        assert isinstance(reply, peer_pb2.Envelope), reply
        body = peer_pb2.Body.FromString(reply.body)
        assert body.sender == "alpha" and body.WhichOneof("payload") == "decision_answer"


def fill_message(data, msg, strings, depth: int = 0) -> None:
    """Set the fields of `msg` (a protobuf message) to values Hypothesis draws: strings
    from `strings`, numbers across their whole range, nested messages a few levels deep.
    One field of each oneof at most."""
    from hypothesis import strategies as st

    fields = msg.DESCRIPTOR.fields
    chosen_oneofs: set[str] = set()
    for field in fields:
        if field.containing_oneof is not None:
            if field.containing_oneof.name in chosen_oneofs or not data.draw(st.booleans()):
                continue
            chosen_oneofs.add(field.containing_oneof.name)
        elif not data.draw(st.booleans()):
            continue
        repeated = field.is_repeated
        count = data.draw(st.integers(0, 3)) if repeated else 1
        for _ in range(count):
            _set_one(data, msg, field, repeated, strings, depth)


_INT_RANGES = {
    descriptor.FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1),
    descriptor.FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    descriptor.FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1),
    descriptor.FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
    descriptor.FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1),
    descriptor.FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    descriptor.FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    descriptor.FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    descriptor.FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    descriptor.FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}


def _set_one(data, msg, field, repeated: bool, strings, depth: int) -> None:
    fd = descriptor.FieldDescriptor
    if field.type == fd.TYPE_MESSAGE:
        if depth >= 3:
            return
        if field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields
            key = _scalar(data, key_field, strings)
            if value_field.type == fd.TYPE_MESSAGE:
                fill_message(data, getattr(msg, field.name)[key], strings, depth + 1)
            else:
                getattr(msg, field.name)[key] = _scalar(data, value_field, strings)
            return
        sub = getattr(msg, field.name).add() if repeated else getattr(msg, field.name)
        if not repeated:
            sub.SetInParent()
        fill_message(data, sub, strings, depth + 1)
        return
    value = _scalar(data, field, strings)
    if repeated:
        getattr(msg, field.name).append(value)
    else:
        setattr(msg, field.name, value)


def _scalar(data, field, strings):
    from hypothesis import strategies as st

    fd = descriptor.FieldDescriptor
    if field.type in _INT_RANGES:
        low, high = _INT_RANGES[field.type]
        return data.draw(st.one_of(st.sampled_from([low, high, 0, 1, -1 if low else 2]),
                                   st.integers(low, high)))
    if field.type in (fd.TYPE_DOUBLE, fd.TYPE_FLOAT):
        return data.draw(st.floats(allow_nan=True, allow_infinity=True, width=32
                                   if field.type == fd.TYPE_FLOAT else 64))
    if field.type == fd.TYPE_BOOL:
        return data.draw(st.booleans())
    if field.type == fd.TYPE_STRING:
        return data.draw(strings)
    if field.type == fd.TYPE_BYTES:
        return data.draw(st.binary(max_size=80))
    if field.type == fd.TYPE_ENUM:
        return data.draw(st.one_of(st.sampled_from([v.number for v in field.enum_type.values]),
                                   st.integers(-2**31, 2**31 - 1)))
    raise AssertionError(f"no strategy for field {field.full_name}")
