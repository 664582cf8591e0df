"""The checks the Client service makes before it takes a submission (client_service.py;
node_engine/services.py calls them): while agent.db cannot be written, or before the
agent has rejoined its federation, it takes no new work (UNAVAILABLE, which clients
retry); a domain whose own key is revoked takes no submission either
(FAILED_PRECONDITION, audited: a retry does not mend it)."""

from __future__ import annotations

import grpc
import pytest
from fedorch.core.identity.key_records import make_revocation
from fedorch.core.identity.keys import load_private_key
from fedorch.runtime.agent import Agent
from fedorch.runtime.client_service import ClientService


class _Aborted(Exception):
    pass


class _Context:
    async def abort(self, code, details):
        raise _Aborted(code, details)

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5"


async def test_no_new_work_while_writes_fail(worker: Agent) -> None:
    service = ClientService(worker)
    worker.store.write_fault = "disk I/O error"
    assert service._refuses_work().startswith(
        "this agent cannot write its database (disk I/O error)")


async def test_no_new_work_before_the_agent_has_rejoined(worker: Agent) -> None:
    assert worker.membership is None  # not started: it has heard from no one
    assert "has not rejoined" in ClientService(worker)._refuses_work()


async def test_a_submission_to_a_domain_whose_own_key_is_revoked_is_refused(
        worker: Agent) -> None:
    """Its signatures would be refused by every peer: the caller is told why at once
    (FAILED_PRECONDITION, audited), not handed a workflow that can only abort."""
    service = ClientService(worker)
    await service._refuse_without_a_valid_key(_Context())  # a valid key: taken
    own = load_private_key(worker.config.key_file)
    changed, refused = worker.trust.learn([make_revocation(
        worker.domain, own.public_key(), own, serial=1, now_ms=worker.now_ms())])
    assert [c.kind for c in changed] == ["revocation"] and refused == 0
    head = await worker.store.audit_head()
    with pytest.raises(_Aborted) as info:
        await service._refuse_without_a_valid_key(_Context())
    code, details = info.value.args
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert details.startswith(f"domain {worker.domain} has no valid key (its key is revoked)")
    assert (await worker.store.audit_head())[0] == head[0] + 1  # the refusal, audited
