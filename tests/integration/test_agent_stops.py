"""A real agent process: a broken invariant stops it with one line saying why and exit
status 1 (not a traceback, nor an agent living on half-dead); gossip that comes while it
starts is answered UNAVAILABLE until it is ready, never by a half-built agent."""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import grpc
from fedorch.cli.demo import agent_command, start_agents, stop_agents
from fedorch.core.identity.envelope import new_nonce, seal
from fedorch.gen.fedorch.v1 import peer_pb2_grpc, swim_pb2
from fedorch.runtime.peers import CHANNEL_OPTIONS

from tests.integration.federation import Federation


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0

# The agent daemon, with its membership loop broken the way a core reports misuse.
BROKEN_DAEMON = """
import sys
from fedorch.core.membership.swim_types import LocalProtocolError
from fedorch.runtime import daemon, membership

async def broken(self):
    raise LocalProtocolError("time went backwards: 2.0 < 3.0 (injected)")

membership.Membership.run = broken
sys.exit(daemon.main(sys.argv[1]))
"""


def test_a_broken_invariant_stops_the_daemon_with_one_line_and_exit_status_1(tmp_path) -> None:
    fed = Federation(tmp_path, {"solo": {}})
    fed.write_configs()
    (proc,) = start_agents({"solo": fed.configs["solo"]}, {"solo": fed.address("solo")},
                           tmp_path,
                           command=lambda config: [sys.executable, "-c", BROKEN_DAEMON,
                                                   str(config)])
    try:
        status = proc.popen.wait(timeout=60)
    finally:
        stop_agents([proc])
    log = proc.log_path.read_text()
    assert status == 1, log
    assert log.rstrip().splitlines()[-1] == (
        "fedorch: agent solo stopped: broken invariant in task 'membership': "
        "LocalProtocolError: time went backwards: 2.0 < 3.0 (injected)")
    assert log.count("Traceback") == 1  # logged once, with its traceback


async def test_gossip_while_an_agent_starts_never_reaches_a_half_built_one(tmp_path) -> None:
    fed = Federation(tmp_path, {"x": {}, "y": {}})
    fed.write_configs()
    y = fed.signer("y")  # a trusted peer of x's, not started: the test speaks for it
    (proc,) = start_agents({"x": fed.configs["x"]}, {"x": fed.address("x")}, tmp_path,
                           command=agent_command)
    codes: list[grpc.StatusCode] = []
    try:
        # The first message as soon as the port takes connections: the port opens before
        # recovery, and once opened membership had to exist already.
        deadline = time.monotonic() + 60
        while not _accepts(fed.ports["x"]):
            assert proc.popen.poll() is None and time.monotonic() < deadline
            await asyncio.sleep(0.001)
        async with grpc.aio.insecure_channel(fed.address("x"), options=CHANNEL_OPTIONS) \
                as channel:
            stub = peer_pb2_grpc.PeerStub(channel)
            while grpc.StatusCode.OK not in codes:
                assert time.monotonic() < deadline, f"x never answered gossip: {codes[-5:]}"
                request = seal(y, recipient="", now_ms=int(time.time() * 1000),
                               nonce=new_nonce(),
                               swim=swim_pb2.SwimBatch(reply_to="127.0.0.1:9"))
                try:
                    await stub.Swim(request, timeout=2)
                    codes.append(grpc.StatusCode.OK)
                except grpc.aio.AioRpcError as e:
                    codes.append(e.code())
                    await asyncio.sleep(0.005)  # connection refused comes back at once
        assert set(codes) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.OK}, codes
        assert proc.popen.poll() is None
    finally:
        stop_agents([proc])
    log = proc.log_path.read_text()
    assert "Traceback" not in log, log
