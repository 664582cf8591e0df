"""The console's cancel and rounds on real agents running `engine: node`.

n3 serves the console and knows alice (submit, read, cancel) and bob (read only); n1
coordinates a workflow whose step naps on n2, so n3 takes no part in it. Through n3's
`POST /workflows/ID/cancel`: bob's token is refused (403) and nothing changes; alice's
cancel goes where `fedorch cancel` goes (n1, the coordinator of the current epoch),
which audits it naming alice via n3 and ends the workflow CANCELLED at n1 and n2, the
nap's process stopped (by its pid). Cancelled again, it is refused with 409 naming its
end; an id no agent knows is 404. n1's own console (open access: no `clients:`, a
loopback listen) cancels a workflow n1 coordinates, taken there by its own node, and
shows a workflow's COMMIT round with its voters' signed YES from n1's audit log.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time

import aiohttp
import pytest
from fedorch.cli.demo import pick_free_ports
from fedorch.core.identity.console_token import issue_token

from tests.integration.federation import (
    naps_running,
    started_federation,
    state_name,
    step_states,
    wait_for,
)
from tests.integration.test_console_cancel import alice_and_bob
from tests.integration.test_node_engine_cancel import (
    DOMAINS,
    _cancelled_at,
    _echo,
    _gone,
    _napping,
)

pytestmark = pytest.mark.integration

HTTP_DEADLINE_S = 60  # the cancel answers once CANCELLED is durable, or at its deadline


@pytest.fixture
async def console_fed(tmp_path):
    people, access = alice_and_bob(tmp_path / "clients")
    domains = copy.deepcopy(DOMAINS)
    port, own_port = pick_free_ports(2)
    domains["n1"]["console_listen"] = f"127.0.0.1:{own_port}"
    domains["n3"].update({"console_listen": f"127.0.0.1:{port}", **access})
    async with started_federation(tmp_path / "fed", domains, identity=people["alice"]) as fed:
        fed.console_url = f"http://127.0.0.1:{port}"
        fed.own_console_url = f"http://127.0.0.1:{own_port}"
        fed.people = people
        yield fed


def _token(identity) -> str:
    return issue_token(identity, "n3", ["cancel"], now_s=time.time(), nonce=bytes(16))


async def _cancel(fed, wid: str, who: str) -> tuple[int, dict]:
    return await _post(f"{fed.console_url}/workflows/{wid}/cancel",
                       {"Authorization": f"Bearer {_token(fed.people[who])}"})


async def _post(url: str, headers: dict[str, str]) -> tuple[int, dict]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_DEADLINE_S)) as s:
        async with s.post(url, json={"reason": "from the console"}, headers=headers) as r:
            return r.status, json.loads(await r.text())


async def test_a_running_workflow_is_cancelled_from_the_console_of_another_agent(
        console_fed, seconds):
    fed = console_fed
    wid = await fed.submit("n1", _napping(seconds))
    pids = await wait_for(lambda: asyncio.to_thread(naps_running, seconds), 30,
                          "the nap to run")

    status, body = await _cancel(fed, wid, "bob")
    assert status == 403 and "principal 'bob' is not allowed 'cancel'" in body["error"], body
    assert state_name(await fed.local_status("n1", wid)) == "RUNNING"

    status, body = await _cancel(fed, wid, "alice")
    assert status == 200, body
    assert body == {"id": wid, "state": "CANCELLED", "principal": "alice"}
    await wait_for(lambda: _gone(pids, seconds), 20, "the nap step's process to be stopped")
    at_n2 = await wait_for(lambda: _cancelled_at(fed, "n2", wid), 20, "n2 to end it")
    assert step_states(at_n2)["nap"][0] == "CANCELLED", at_n2
    ended = await fed.local_status("n1", wid)
    assert state_name(ended) == "CANCELLED"
    assert ended.reason == "cancelled: from the console", ended

    # Audited where it was taken, as a CLI cancel is: the principal, via the console's agent.
    requests = [json.loads(b)["data"] for (b,) in fed.rows(
        "n1", "SELECT body FROM audit WHERE workflow_id=? AND kind='client_request'", (wid,))]
    assert [(r["request"], r["principal"]) for r in requests] == [
        ("cancel", "alice (via domain n3)")], requests

    status, body = await _cancel(fed, wid, "alice")
    assert status == 409 and "already ended CANCELLED" in body["error"], body
    status, body = await _cancel(fed, "n1.no-such-workflow", "alice")
    assert status == 404 and "no workflow 'n1.no-such-workflow'" in body["error"], body


async def test_the_coordinators_own_console_cancels_what_it_coordinates(console_fed, seconds):
    fed = console_fed
    wid = await fed.submit("n1", _napping(seconds))
    pids = await wait_for(lambda: asyncio.to_thread(naps_running, seconds), 30,
                          "the nap to run")
    # Open access: an untokened write from the console's own page (its Origin).
    status, body = await _post(f"{fed.own_console_url}/workflows/{wid}/cancel",
                               {"Origin": fed.own_console_url})
    assert status == 200, body
    assert body == {"id": wid, "state": "CANCELLED", "principal": ""}
    await wait_for(lambda: _gone(pids, seconds), 20, "the nap step's process to be stopped")
    await wait_for(lambda: _cancelled_at(fed, "n2", wid), 20, "n2 to end it")
    requests = [json.loads(b)["data"] for (b,) in fed.rows(
        "n1", "SELECT body FROM audit WHERE workflow_id=? AND kind='client_request'", (wid,))]
    assert [r["request"] for r in requests] == ["cancel"], requests


async def test_the_coordinators_console_shows_the_commit_round_and_its_voters(console_fed):
    """n1 coordinates a workflow run at n2 and n3: its page shows round 1 COMMIT from
    n1's decision audit record, with the signed YES of n2 and n3, each verified."""
    fed = console_fed
    wid = await fed.submit("n1", _echo())
    await fed.wait_state("n1", wid, states={"SUCCEEDED"})

    async def shown() -> str | None:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HTTP_DEADLINE_S)) as s:
            async with s.get(f"{fed.own_console_url}/fragments/workflows/{wid}") as r:
                html = await r.text()
        # The audit log is appended just after node.db's commit: looked at until then.
        return html if "signed YES" in html else None

    html = await wait_for(shown, 20, "the COMMIT's audit record on the page")
    assert 'data-round="1"' in html and "state-COMMIT" in html
    assert "with 2 signed YES (2 verified)" in html, html
    votes = html[html.index('<table class="votes">'):]
    votes = votes[:votes.index("</table>")]
    assert [d for d in ("n1", "n2", "n3") if f'data-domain="{d}"' in votes] == ["n2", "n3"]
