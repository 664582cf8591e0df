"""The fedorch Python client, end to end, against a running federation.

    python docs/examples/python_client.py --peer 127.0.0.1:7101

It starts nothing itself: it talks to the agent at --peer (any agent of the federation).
The federation must offer the demo's capabilities (data.extract, ml.train and
report.publish, as scenarios/demo/*.yaml configure them). The test suite runs this file
against three real agents (tests/integration/test_python_client.py) and checks what it
prints.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from fedorch import AsyncClient, Client
from fedorch.client import FedorchError, NotFound, Unreachable

# A spec can be a YAML file's path or, as here, a mapping of the same shape.
SPEC = {
    "name": "client-example",
    "data": {"jurisdiction": "EU"},
    "steps": [
        # The builtin echo executor returns its params: they come back exactly, with an
        # integer past 2**53 intact.
        {"id": "extract", "capability": "data.extract",
         "params": {"table": "sales", "rows": 3, "checksum": 2**60 + 1, "ratio": 0.5}},
        {"id": "train", "capability": "ml.train", "needs": ["extract"]},
        {"id": "report", "capability": "report.publish", "needs": ["train"]},
    ],
}


def blocking(peer: str) -> str:
    """The synchronous client: members, submit and wait, watch, status, errors."""
    with Client(peer, rpc_timeout=10) as client:
        for member in client.members():
            caps = ", ".join(f"{c.name} {c.available}/{c.capacity}" for c in member.capabilities)
            print(f"member {member.domain} {member.state} [{caps}]")

        final = client.submit(SPEC, wait=True, timeout=120)
        print(f"workflow {final.id} {final.state}")
        for step in final.steps:
            print(f"step {step.id} on {step.domain}: {step.state}")
        echoed = final.step("extract").outputs["echo"]
        print(f"rows {echoed['rows']!r} is {type(echoed['rows']).__name__}")
        print(f"checksum {echoed['checksum']!r} is {type(echoed['checksum']).__name__}")

        # Watch a second run as it goes: one line per change of state.
        workflow_id = client.submit(SPEC)
        for status in client.watch(workflow_id, state_changes_only=True):
            print(f"watch {workflow_id} {status.state}")

        # The same status JSON as `fedorch status --json`.
        print("status " + json.dumps(client.status(workflow_id).to_dict(), sort_keys=True))

        try:
            client.status("eu-west.no-such-workflow")
        except NotFound as exc:
            print(f"not found: {exc.code.name}")
        return workflow_id


async def asynchronous(peer: str, workflow_id: str) -> None:
    """The asyncio client: the same calls, awaited."""
    async with AsyncClient(peer) as client:
        status = await client.status(workflow_id)
        known = [w.id for w in await client.list_workflows()]
        print(f"async {workflow_id} {status.state}, listed: {workflow_id in known}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer", required=True, help="HOST:PORT of any agent")
    peer = parser.parse_args().peer
    try:
        workflow_id = blocking(peer)
        asyncio.run(asynchronous(peer, workflow_id))
    except Unreachable as exc:
        print(f"unreachable: {exc}")
        return 3
    except FedorchError as exc:
        print(f"failed: {exc} ({exc.code})")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
