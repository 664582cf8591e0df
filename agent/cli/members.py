"""`fedorch members`: the federation as one agent sees it."""

from __future__ import annotations

import click
from fedorch.cli.common import (
    client_for,
    console,
    identity_option,
    json_option,
    peer_option,
    run,
)
from fedorch.cli.errors import rpc_errors
from fedorch.cli.render import members_table, members_to_list, to_json
from fedorch.gen.fedorch.v1 import client_pb2


@click.command()
@peer_option
@identity_option
@json_option
def members(peer: str, as_json: bool) -> None:
    """List the federation's members as this agent sees them."""

    async def go() -> list[client_pb2.MemberInfo]:
        async with client_for(peer) as client:
            with rpc_errors(peer):
                return await client.list_members()

    found = run(go())
    if as_json:
        click.echo(to_json(members_to_list(found)))
    else:
        console().print(members_table(found))
