"""`fedorch agent run`: the daemon in the foreground (implemented in fedorch.runtime.daemon)."""

from __future__ import annotations

import sys

import click
from fedorch.cli.errors import EXIT_FAILED, CliError


@click.group(name="agent")
def agent_group() -> None:
    """Run the agent daemon, or check that it serves."""


@agent_group.command(name="run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Agent config YAML (ARCHITECTURE §6).",
)
@click.option(
    "--start-fresh",
    is_flag=True,
    help="If the data dir's agent.db is refused (missing, empty, corrupt or another's),"
    " move it aside (agent.db.bad-TIME) and start with an empty database.",
)
def run_agent(config_path: str, start_fresh: bool) -> None:
    """Run the agent daemon in the foreground until SIGTERM/SIGINT."""
    try:
        from fedorch.runtime.daemon import main as daemon_main
    except ImportError as exc:
        raise CliError(f"the agent daemon is not available: {exc}", EXIT_FAILED) from exc
    sys.exit(daemon_main(config_path, start_fresh=start_fresh))


def _local_address(listen: str) -> str:
    """Where to reach an agent from its own host: an unspecified address means loopback."""
    host, _, port = listen.rpartition(":")
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host in ("[::]", "::"):
        host = "[::1]"
    return f"{host}:{port}"


@agent_group.command(name="health")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The agent's config YAML: its listen address, TLS setting and key.",
)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True),
              default=3.0, show_default=True, metavar="S", help="Deadline of the check.")
def health(config_path: str, timeout_s: float) -> None:
    """Exit 0 if the agent of this config is SERVING (for container health checks).

    With mutual TLS it presents a certificate minted from the agent's own domain key,
    so the check needs no other credential: run it where the config and key are."""
    import asyncio

    import grpc
    from fedorch.cli.errors import EXIT_UNREACHABLE, EXIT_USAGE
    from fedorch.core.identity.keys import KeyFileError, load_private_key
    from fedorch.runtime.config import ConfigError, load_config
    from fedorch.runtime.transport import (
        TLS_CHANNEL_OPTIONS,
        self_check_credentials,
        tls_enabled,
    )
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        config = load_config(config_path)
        key = load_private_key(config.key_file) if tls_enabled(config) else None
    except (ConfigError, KeyFileError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    address = _local_address(config.listen)

    async def check() -> int:
        if key is None:
            channel = grpc.aio.insecure_channel(address)
        else:
            credentials = self_check_credentials(config, key)
            channel = grpc.aio.secure_channel(address, credentials, options=TLS_CHANNEL_OPTIONS)
        async with channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s)
        return reply.status

    try:
        status = asyncio.run(check())
    except grpc.RpcError as exc:
        raise CliError(f"agent {config.domain} at {address} unreachable: {exc.code().name}",
                       EXIT_UNREACHABLE) from None
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    click.echo(f"{config.domain} at {address}: {name}")
    if status != health_pb2.HealthCheckResponse.SERVING:
        raise CliError(f"agent {config.domain} is {name}", EXIT_FAILED)
