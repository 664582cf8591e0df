"""`fedorch policy explain FILE`: a dry run of placement and policy, reserving nothing.

The agent named by --peer is asked only for its members (their gossiped records and
policy summaries); the verdicts are computed here (agent/core/policy/explain.py). No
domain is asked to vote and nothing is reserved, so verdicts that rest on a summary are
predictions: private rules, quotas and free slots decide at PREPARE.
"""

from __future__ import annotations

from pathlib import Path

import click
from fedorch.cli.common import (
    client_for,
    console,
    identity_option,
    json_option,
    peer_option,
    run,
    settings,
)
from fedorch.cli.errors import EXIT_FAILED, CliError, rpc_errors
from fedorch.cli.render import to_json
from fedorch.cli.workflows import load_spec
from fedorch.core.identity.clients import DOMAIN_PRINCIPAL_PREFIX
from fedorch.core.identity.submission import qualified
from fedorch.core.policy.explain import Explanation, explain
from fedorch.core.workflow.placement import Candidate
from fedorch.gen.fedorch.v1 import client_pb2, peer_pb2
from rich.table import Table


@click.group()
def policy() -> None:
    """Data-flow and admission policy."""


def _swim_state(state: int) -> str:
    """MEMBER_STATE_SUSPECT -> SUSPECT: the agent's own placement takes a SUSPECT member
    too (ranked after ALIVE ones), so the explanation must."""
    return client_pb2.MemberState.Name(state).removeprefix("MEMBER_STATE_")


def _candidates(found: list[client_pb2.MemberInfo]) -> tuple[list[Candidate], str]:
    candidates = [
        Candidate.of(peer_pb2.DomainRecord(domain=m.domain, endpoint=m.address,
                                           labels=dict(m.labels),
                                           capabilities=list(m.capabilities),
                                           policy=m.policy),
                     _swim_state(m.state))
        for m in found
    ]
    coordinator = next((m.domain for m in found if m.self), "")
    return candidates, coordinator


def _table(result: Explanation) -> Table:
    table = Table(title=f"coordinator {result.coordinator}, principal {result.principal}"
                        " (dry run: nothing reserved)")
    for column in ("step", "domain", "verdict", "receives", "reasons", "basis"):
        table.add_column(column)
    for v in result.verdicts:
        verdict = ("placed" if v.chosen else "yes") if v.allowed else "no"
        why = "; ".join(v.reasons + [f"note: {n}" for n in v.notes]) or "-"
        table.add_row(v.step, v.domain, verdict, v.receives, why, v.basis)
    return table


@policy.command("explain")
@click.argument("file", type=click.Path(path_type=Path))
@peer_option
@identity_option
@json_option
def explain_command(file: Path, peer: str, as_json: bool) -> None:
    """For every step of FILE and every member: the verdict and its reasons.

    With --identity, accept_from entries naming principals judge that principal as the
    coordinator would vouch for it; without, a submission without identity.
    Verdicts use the members' published records and policy summaries; a domain's private
    rules, quotas and exact free slots decide only when it votes, so a verdict marked
    as from a summary is a prediction.
    """
    spec = load_spec(file)

    async def go() -> list[client_pb2.MemberInfo]:
        async with client_for(peer) as client:
            with rpc_errors(peer):
                return await client.list_members()

    candidates, coordinator = _candidates(run(go()))
    if not coordinator:
        raise CliError(f"agent at {peer} did not name itself among its members", EXIT_FAILED)
    # The principal a submission of FILE would be voted on as: this identity as the
    # coordinator vouches for it, or the coordinator itself for an unsigned one.
    identity = settings().identity
    principal = qualified(identity.principal, coordinator) if identity is not None \
        else DOMAIN_PRINCIPAL_PREFIX + coordinator
    result = explain(spec, candidates, coordinator=coordinator, principal=principal)
    if as_json:
        click.echo(to_json(result.to_dict()))
        return
    console().print(_table(result))
    for step_id, why in sorted(result.placement.unplaceable.items()):
        console().print(f"unplaceable: {step_id}: {why}")
