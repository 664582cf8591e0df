"""`fedorch agent run`: one gRPC port, the agent, and an orderly shutdown.

Shutdown on SIGTERM/SIGINT: health goes NOT_SERVING first (load balancers and
the demo stop sending), the server drains in-flight RPCs, then the agent's
tasks end and the store closes.

An agent that stops on its own (a broken invariant in a core, one of its loops
dead) goes through the same shutdown, then the process exits 1 with one line on
stderr saying why: a supervisor restarts it, and recovery starts from SQLite.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
from fedorch.core.identity.clients import ClientKeys
from fedorch.core.identity.keys import KeyFileError, load_private_key
from fedorch.core.identity.tls import trust_bundle
from fedorch.core.identity.trust import TrustStore
from fedorch.gen.fedorch.v1 import client_pb2, client_pb2_grpc, peer_pb2, peer_pb2_grpc
from fedorch.runtime import gc_tuning, logs, telemetry
from fedorch.runtime.agent import Agent
from fedorch.runtime.config import ConfigError, load_config, without_effect
from fedorch.runtime.console import ConsoleError, start_console
from fedorch.runtime.interceptors import (
    ClientAuthInterceptor,
    MalformedRequestInterceptor,
    PeerTlsInterceptor,
    client_auth_from_config,
)
from fedorch.runtime.key_changes import earlier_key_fingerprints
from fedorch.runtime.node_engine.engine import (
    EngineConfigError,
    NodeAgent,
    check_node_config,
)
from fedorch.runtime.node_engine.engine_switch import check_engine_switch
from fedorch.runtime.node_engine.identity import MARKER_KEY as NODE_DB_MARKER
from fedorch.runtime.node_engine.identity import NODE_DB
from fedorch.runtime.node_engine.identity import open_checked as open_node_db
from fedorch.runtime.node_engine.services import NodeClientService, NodePeerService
from fedorch.runtime.node_store import NodeStoreError
from fedorch.runtime.peers import PING_POLICY
from fedorch.runtime.store.identity import key_fingerprint
from fedorch.runtime.store.store import Store, StoreError
from fedorch.runtime.transport import (
    TLS_CHANNEL_OPTIONS,
    TlsConfigError,
    agent_tls,
    tls_enabled,
)
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

log = logging.getLogger("fedorch.daemon")

SERVER_OPTIONS = [
    ("grpc.so_reuseport", 0),  # two agents must never share a port by accident
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    *PING_POLICY,  # the keepalive pings of the peers' channels (runtime/peers.py)
]
DRAIN_GRACE_S = 5.0
LEAVE_GRACE_S = 1.0
# The cyclic garbage collector's first threshold. Python's default (700 new container
# objects) makes a busy agent run a young-generation pass every few hundred microseconds:
# the messages, rows, futures and tasks of one workflow are thousands of short-lived
# objects, which reference counting frees, not the collector. With these, cycles are
# still collected, only in larger and rarer passes: at the commit bench's peak the
# collector is about 1 % of an agent's CPU (Python's default: 7 %, and 11-22 % over
# 10,000 kept workflows, as each full pass walks all of them). A full pass comes after
# 100 passes of the middle generation, so in practice not in a run (none in 10,000
# workflows); a forced one then finds about a hundred unreachable objects: no cyclic
# garbage piles up meanwhile (gc_tuning.py counts the passes; docs/benchmarks.md).
GC_THRESHOLDS = (50_000, 20, 100)


class StartupError(Exception):
    pass


async def check_node_store(config, store: Store, key: str, earlier_keys, start_fresh: bool
                           ) -> None:
    """NodeStoreError (one line) unless the data dir's node.db is this agent's."""
    async def set_marker(value: str | None) -> None:
        await store.set_meta(NODE_DB_MARKER, value or "")

    try:
        await open_node_db(Path(config.data_dir), config.domain, key,
                           get_marker=lambda: store.get_meta(NODE_DB_MARKER),
                           set_marker=set_marker, start_fresh=start_fresh,
                           earlier_keys=earlier_keys)
    except OSError as e:  # permissions, a read-only or full file system
        raise NodeStoreError(f"{Path(config.data_dir) / NODE_DB}: cannot use the node"
                             f" store: {e.strerror or e}") from None


class AgentFailed(Exception):
    """The agent stopped on its own; the message says why (Agent.fatal)."""


def main(config_path: str, start_fresh: bool = False) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as e:
        print(f"fedorch: error: {e}", file=sys.stderr)
        return 2
    logs.setup(config.domain, config.log_level, config.log_format)
    for warning in without_effect(config):
        log.warning("config: %s", warning)
    gc.set_threshold(*GC_THRESHOLDS)
    gc_tuning.CLOCK.install()  # the collector's passes and CPU, served as metrics
    try:
        telemetry.setup(config)  # off unless the config has `telemetry:`
        # The driver loop's idle port: young passes between bursts (gc_tuning.py).
        return asyncio.run(serve(config, config_path, start_fresh=start_fresh,
                                 on_idle=gc_tuning.IDLE))
    except (StartupError, KeyFileError, StoreError, telemetry.TelemetryError,
            TlsConfigError) as e:
        logs.last_words(f"fedorch: error: {e}")
        return 2
    except AgentFailed as e:
        logs.last_words(f"fedorch: agent {config.domain} stopped: {e}")
        return 1
    finally:
        telemetry.shutdown()  # exports the spans still waiting


async def serve(config, config_path: str = "", *, start_fresh: bool = False,
                on_idle: Callable[[], object] | None = None) -> int:
    """Run the agent of `config` until it stops. `on_idle`: its driver loop's idle port
    (runtime/driver.py, "Idle"; main passes the young garbage collection)."""
    # Keys and trust first: a bad key file must fail before the data dir is touched.
    key = load_private_key(config.key_file)
    TrustStore.from_files(config.trust.key_files)
    ClientKeys.from_files(config.clients.key_files)
    try:
        check_node_config(config)  # what the node engine cannot run, before any file
    except EngineConfigError as e:
        raise StartupError(str(e)) from None
    # Not over the older engine's unfinished work in agent.db: checked read-only, before
    # Store.open writes anything (node_engine/engine_switch.py).
    check_engine_switch(config.data_dir)
    # Only the database this domain wrote, undamaged (or, with start_fresh, an empty one
    # with the refused file moved aside).
    fingerprint = key_fingerprint(key.public_key())
    earlier_keys = earlier_key_fingerprints(config, key)
    store = await Store.open(config.data_dir, domain=config.domain, key=fingerprint,
                             start_fresh=start_fresh, earlier_keys=earlier_keys)
    try:
        agent = Agent(config, store)
        agent.config_path = config_path
        # Membership before the port serves: the first gossip may come at once.
        await agent.open()
        # The negotiation and the steps run on one Node and its driver
        # (runtime/node_engine); the Agent keeps membership, trust and signing. Only the
        # node.db this agent wrote (node_engine/identity.py), as for agent.db.
        await check_node_store(config, store, fingerprint, earlier_keys, start_fresh)
        engine = NodeAgent(agent, on_idle=on_idle)
    except (EngineConfigError, NodeStoreError) as e:
        await store.close()
        raise StartupError(str(e)) from None
    except BaseException:
        await store.close()
        raise
    def wall_clock() -> float:
        # Client calls and certificates carry wall-clock times (seconds since the epoch).
        return agent.now_ms() / 1000

    try:
        auth = client_auth_from_config(config, agent.trust, wall_clock)
        tls = (agent_tls(config, agent.domain, load_private_key(config.key_file), auth.clients,
                         wall_clock) if tls_enabled(config) else None)
    except BaseException:
        await store.close()
        raise
    auth.on_refused = lambda method, code: agent.metrics.client_refusals.labels(
        method, code).inc()
    # Authentication first: a caller that is not allowed learns nothing more.
    interceptors = [ClientAuthInterceptor(auth), MalformedRequestInterceptor()]
    if tls is not None:
        agent.peers.use_tls(tls.channel_credentials, TLS_CHANNEL_OPTIONS)
        peer_tls = PeerTlsInterceptor(agent.trust, tls.peer_domain)
        interceptors.insert(1, peer_tls)

        def trust_changed() -> None:  # TLS roots follow the trust store (SIGHUP, trust add)
            # Every key live now (an old one within its rotation's overlap too), and this
            # agent's certificate under the key key_changes says.
            tls.set_domain_anchors(trust_bundle(
                (d, k) for d in agent.trust.domains() for k in agent.trust.live_keys(d)),
                identity_key=agent.key_changes.tls_key())
            peer_tls.forget()
        agent.on_trust_change.append(trust_changed)
        # The config's key files may name keys rotated away from since (records kept in
        # the database): the anchors start from the trust store, not from the files.
        trust_changed()
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors)
    client_service = NodeClientService(engine, auth)
    client_pb2_grpc.add_ClientServicer_to_server(client_service, server)
    peer_service = NodePeerService(engine)
    peer_pb2_grpc.add_PeerServicer_to_server(peer_service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection([
        client_pb2.DESCRIPTOR.services_by_name["Client"].full_name,
        peer_pb2.DESCRIPTOR.services_by_name["Peer"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ], server)
    try:
        port = (server.add_secure_port(config.listen, tls.server_credentials())
                if tls is not None else server.add_insecure_port(config.listen))
    except RuntimeError as e:
        await store.close()
        raise StartupError(f"cannot listen on {config.listen}: {e}") from None
    if port == 0:
        await store.close()
        raise StartupError(f"cannot listen on {config.listen}")
    try:
        metrics_server = _start_metrics(config.metrics_listen, agent)
    except OSError as e:  # else the open store's thread keeps the failed process alive
        await store.close()
        raise StartupError(f"cannot serve metrics on {config.metrics_listen}: "
                           f"{e.strerror or e}") from None
    try:
        # The console cancels through the Client service's Cancel.
        console = await start_console(config.console_listen, agent, auth,
                                      client_service)
    except ConsoleError as e:
        if metrics_server is not None:
            metrics_server.shutdown()
        await store.close()
        raise StartupError(str(e)) from None
    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, shutdown.set)
    reload_requested = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    await server.start()
    ready = asyncio.Event()
    runner = asyncio.create_task(
        engine.run(ready), name="agent")
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([runner, waiter], return_when=asyncio.FIRST_COMPLETED)
    if ready.is_set():
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info("agent %s serving on %s (%s)", config.domain, config.listen,
                 "mutual TLS" if tls is not None else "plaintext")
        reloader = asyncio.create_task(_reload_on_sighup(agent, reload_requested))
        stop = asyncio.create_task(shutdown.wait())
        await asyncio.wait([runner, stop], return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        reloader.cancel()
    waiter.cancel()
    log.info("shutting down")
    await health_servicer.enter_graceful_shutdown()
    if ready.is_set() and agent.membership is not None and agent.fatal is None:
        await agent.membership.leave(LEAVE_GRACE_S)  # members see LEFT, not DEAD
    if console is not None:
        await console.stop()
    # The peers' idle NodeTurns streams would hold the drain for its whole grace.
    peer_service.inbound.stop()
    await server.stop(DRAIN_GRACE_S)
    agent.stop()
    try:
        await runner
        await agent.audit.checkpoint()  # the log's last records signed before it stops
    finally:
        await agent.peers.close()
        await store.close()
        if metrics_server is not None:
            metrics_server.shutdown()
    if agent.fatal is not None:
        raise AgentFailed(agent.fatal)
    return 0


async def _reload_on_sighup(agent: Agent, requested: asyncio.Event) -> None:
    """SIGHUP: re-read the config file; a bad file is logged and changes nothing."""
    while True:
        await requested.wait()
        requested.clear()
        try:
            config = load_config(agent.config_path)
        except ConfigError as e:
            log.error("reload refused, keeping the running config: %s", e)
            continue
        needs_restart = await agent.reload(config)
        if needs_restart:
            log.warning("reload: %s changed; these take effect after a restart",
                        ", ".join(needs_restart))


def _start_metrics(listen: str, agent: Agent):
    if not listen:
        return None
    from prometheus_client import GCCollector, ProcessCollector, start_http_server

    # The process's CPU, memory and file descriptors, and the collector's passes per
    # generation (GC_THRESHOLDS sets how often they run): one agent per daemon process,
    # so its registry can carry them.
    ProcessCollector(registry=agent.metrics.registry)
    GCCollector(registry=agent.metrics.registry)
    agent.metrics.registry.register(gc_tuning.GcClockCollector(gc_tuning.CLOCK,
                                                               gc_tuning.IDLE))
    host, _, port = listen.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host.strip("[]"),
                                        registry=agent.metrics.registry)
    return server
