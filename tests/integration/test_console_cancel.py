"""Cancel from the console, in a real browser, against three real agents: refused without
a token and with a read-only principal's (nothing changes), done with the token of a
principal allowed to cancel, and audited with that principal; the page then shows the
compensation of the step that had succeeded, live, and the audit records.

eu-west serves the console and knows alice (submit, read, cancel) and bob (read only).
Set FEDORCH_CONSOLE_SCREENSHOTS=docs/console to refresh docs/console/cancel.png.
"""

from __future__ import annotations

import copy
import json
import time

import pytest
from fedorch.cli.demo import pick_free_ports
from fedorch.core.identity.clients import init_client_keys, load_identity
from fedorch.core.identity.console_token import issue_token

from tests.integration.conftest import DOMAINS
from tests.integration.federation import started_federation, state_name, step_states, wait_for
from tests.integration.test_console import (  # noqa: F401 - the browser fixture
    _mark_page,
    _not_reloaded,
    _screenshot,
    _until,
    browser,
)

pytestmark = pytest.mark.integration

from selenium.webdriver.common.by import By  # noqa: E402

LONG = """
name: long-hold
data: {jurisdiction: EU}
steps:
  - id: extract
    capability: data.extract
    compensate: {params: {action: drop}}
  - id: hold
    capability: test.sleep
    params: {seconds: 120}
    needs: [extract]
    constraints: {domains: [eu-west]}
"""

# Coordinated by us-east (open access there); its step runs at eu-west.
ELSEWHERE = """
name: coordinated-elsewhere
data: {jurisdiction: EU}
steps:
  - id: hold
    capability: test.sleep
    params: {seconds: 120}
    constraints: {domains: [eu-west]}
"""


def alice_and_bob(keys) -> tuple[dict, dict]:
    """Two client identities made in `keys` (alice may submit, read and cancel; bob
    may only read), and the agent config that knows them and says so."""
    people = {name: load_identity(init_client_keys(name, keys)[0]) for name in ("alice", "bob")}
    config = {
        "clients": {"key_files": [str(keys / "alice.pub"), str(keys / "bob.pub")]},
        "access": [{"principals": ["alice"], "allow": ["submit", "read", "cancel"]},
                   {"principals": ["bob"], "allow": ["read"]}],
    }
    return people, config


@pytest.fixture
async def console_fed(tmp_path):
    people, access = alice_and_bob(tmp_path / "clients")
    domains = copy.deepcopy(DOMAINS)
    port = pick_free_ports(1)[0]
    domains["eu-west"].update({"console_listen": f"127.0.0.1:{port}", **access})
    async with started_federation(tmp_path / "fed", domains, identity=people["alice"]) as fed:
        fed.console_url = f"http://127.0.0.1:{port}"
        fed.people = people
        yield fed


def _token(identity) -> str:
    return issue_token(identity, "eu-west", ["cancel"], now_s=time.time(), nonce=bytes(16))


def _click_cancel(driver) -> None:
    def clicked(d) -> bool:
        # Found and clicked in one look: the page redraws the workflow as it changes, and a
        # button found in one look could be gone by the next (stale: looked for again).
        button = d.find_element(By.ID, "cancel-workflow")
        if not button.is_enabled():
            return False
        button.click()
        return True

    _until(driver, clicked, "the cancel button")
    _until(driver, lambda d: d.switch_to.alert, "the confirmation").accept()


def _result(driver, *needles: str) -> str:
    return _until(driver, lambda d: (t := d.find_element(By.ID, "action-result").text)
                  and all(n in t for n in needles) and t, f"the result to say {needles}")


def _identity(driver, text: str) -> str:
    return _until(driver, lambda d: text in (t := d.find_element(By.ID, "identity").text) and t,
                  f"the header to name {text!r}")


async def test_cancel_from_the_console_behind_client_identities(console_fed, browser):  # noqa: F811
    fed = console_fed
    wid = await fed.submit("eu-west", LONG)

    async def holding() -> bool:
        return step_states(await fed.status("eu-west", wid))["hold"][0] == "RUNNING"

    await wait_for(holding, 30, "the step to run")
    page = f"{fed.console_url}/workflows/{wid}"

    # No token: the page says who must sign, and nothing changes.
    browser.get(page)
    _mark_page(browser)
    _identity(browser, "no identity")
    _click_cancel(browser)
    _result(browser, "401", "no client identity", "fedorch console token")
    assert state_name(await fed.status("eu-west", wid)) == "RUNNING"

    # bob may read but not cancel: the token is his, the access rules say no.
    browser.get(f"{page}#token={_token(fed.people['bob'])}")
    _identity(browser, "bob (no write allowed here")
    assert "#token" not in browser.current_url  # dropped from the address once kept
    _click_cancel(browser)
    _result(browser, "403", "principal 'bob' is not allowed 'cancel'")
    assert state_name(await fed.status("eu-west", wid)) == "RUNNING"
    assert step_states(await fed.status("eu-west", wid))["hold"][0] == "RUNNING"

    # alice's token, pasted into the header's field: the cancel goes through, and the
    # page shows the end without a reload.
    browser.find_element(By.CSS_SELECTOR, "details.identity-form summary").click()
    browser.find_element(By.ID, "token-input").send_keys(_token(fed.people["alice"]))
    browser.find_element(By.ID, "token-use").click()
    _identity(browser, "alice (cancel")
    _mark_page(browser)
    _click_cancel(browser)
    _result(browser, "cancelled by alice")
    final = await fed.wait_state("eu-west", wid)
    assert state_name(final) == "CANCELLED", final
    _until(browser, lambda d: d.find_element(By.ID, "workflow-state").text == "CANCELLED",
           "the page to show CANCELLED")
    assert _not_reloaded(browser)
    assert not browser.find_elements(By.ID, "cancel-workflow")  # nothing left to cancel
    # The step that had succeeded is compensated, and the page follows it to the end.
    _until(browser, lambda d: d.find_element(By.ID, "compensation-summary").text == "DONE",
           "the compensation to show DONE")
    _until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, "tr.step[data-step='extract']").get_attribute("data-state")
        == "COMPENSATED", "extract to show COMPENSATED")
    cancel_record = _until(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, "tr.audit-record[data-kind='client_request']").text,
        "the cancel's audit record on the page")
    assert '"alice"' in cancel_record and '"cancel"' in cancel_record
    assert _not_reloaded(browser)
    _screenshot(browser, "cancel", 1300)

    # eu-west's audit log names who cancelled; the refused attempts left no record.
    requests = [json.loads(body)["data"] for (body,) in fed.rows(
        "eu-west", "SELECT body FROM audit WHERE workflow_id=? AND kind='client_request'",
        (wid,))]
    assert [(r["request"], r["principal"]) for r in requests] == [("cancel", "alice")]

    # A workflow us-east coordinates: eu-west's console forwards the cancel there, signed
    # with eu-west's key and acting for alice, as it forwards a CLI cancel.
    other = await fed.submit("us-east", ELSEWHERE)
    await fed.wait_state("us-east", other, states={"RUNNING"})
    browser.get(f"{fed.console_url}/workflows/{other}")
    _identity(browser, "alice (cancel")  # the tab kept the token
    _click_cancel(browser)
    _result(browser, "cancelled by alice", "CANCELLED")
    assert state_name(await fed.wait_state("us-east", other)) == "CANCELLED"
