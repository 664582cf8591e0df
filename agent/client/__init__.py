"""The Python client of a fedorch federation (docs/python-client.md).

    from fedorch import Client

    with Client("127.0.0.1:7101") as client:
        final = client.submit("workflow.yaml", wait=True, timeout=300)
        print(final.state, final.step("train").outputs)

``Client`` blocks; ``AsyncClient`` is the same for asyncio. Both return the plain
dataclasses of fedorch.client.models and raise the exceptions of fedorch.client.errors.
"""

from fedorch.client.async_client import AsyncClient, SpecLike, load_spec
from fedorch.client.errors import (
    FedorchError,
    InvalidSpec,
    NotAllowed,
    NotFound,
    OperationFailed,
    Unreachable,
    WaitTimedOut,
)
from fedorch.client.models import (
    Capability,
    Member,
    Refusal,
    StepStatus,
    Submitted,
    WorkflowStatus,
)
from fedorch.client.sync_client import Client

__all__ = [
    "AsyncClient",
    "Capability",
    "Client",
    "FedorchError",
    "InvalidSpec",
    "Member",
    "NotAllowed",
    "NotFound",
    "OperationFailed",
    "Refusal",
    "SpecLike",
    "StepStatus",
    "Submitted",
    "Unreachable",
    "WaitTimedOut",
    "WorkflowStatus",
    "load_spec",
]
