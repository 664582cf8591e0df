"""The web console in a real browser (headless Chromium from Debian's packages, driven by
Selenium), against three real agents, the console on one of them.

Set FEDORCH_CONSOLE_SCREENSHOTS=docs/console to refresh the screenshots in docs/.
"""

from __future__ import annotations

import copy
import os
import shutil
from pathlib import Path

import pytest
from fedorch.cli.demo import pick_free_ports

from tests.integration.conftest import DOMAINS
from tests.integration.engine_tables import engine_of
from tests.integration.federation import started_federation, state_name, step_states

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
if CHROMIUM is None or CHROMEDRIVER is None:
    pytest.skip("the browser tests need Debian's chromium and chromium-driver "
                "(`make test` installs them when it runs as root)", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WAIT_S = 60
# Slow enough that the browser sees the workflow running before it ends.
SPEC = """
name: console-demo
data: {jurisdiction: EU}
steps:
  - id: extract
    capability: data.extract
    params: {table: sales}
  - id: train
    capability: ml.train
    needs: [extract]
    compensate: {params: {action: delete-model}}
  - id: report
    capability: report.publish
    needs: [train]
  - id: hold
    capability: test.sleep
    params: {seconds: 3}
    needs: [extract]
    constraints: {domains: [partner]}
"""


REMOTE_SPEC = """
name: coordinated-elsewhere
data: {jurisdiction: EU}
steps:
  - id: extract
    capability: data.extract
  - id: hold
    capability: test.sleep
    params: {seconds: 2}
    needs: [extract]
    constraints: {domains: [partner]}
"""


@pytest.fixture
async def console_fed(tmp_path):
    domains = copy.deepcopy(DOMAINS)
    port = pick_free_ports(1)[0]
    domains["eu-west"]["console_listen"] = f"127.0.0.1:{port}"
    async with started_federation(tmp_path, domains) as fed:
        fed.console_url = f"http://127.0.0.1:{port}"
        yield fed


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(arg)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()  # ends Chromium, then chromedriver (by its process handle)
        if service.process is not None and service.process.poll() is None:
            os.kill(service.process.pid, 9)
            service.process.wait(timeout=10)


def _until(driver, condition, what: str):
    return WebDriverWait(driver, WAIT_S, poll_frequency=0.1,
                         ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: condition(d), message=f"timed out waiting for {what}")


def _mark_page(driver) -> None:
    """Leave a mark in the page's JavaScript state: a reload would wipe it."""
    driver.execute_script("window.fedorchNoReload = true;")


def _not_reloaded(driver) -> bool:
    return driver.execute_script("return window.fedorchNoReload === true;")


def _screenshot(driver, name: str, height: int) -> None:
    where = os.environ.get("FEDORCH_CONSOLE_SCREENSHOTS")
    if where:
        driver.set_window_size(1400, height)  # the page, without a sea of white below
        Path(where).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(where) / f"{name}.png"))
        driver.set_window_size(1400, 1000)


def _members(driver) -> dict[str, str]:
    return {row.get_attribute("data-domain"): row.get_attribute("data-state")
            for row in driver.find_elements(By.CSS_SELECTOR, "tr.member")}


def _placement_drawn(driver) -> dict[str, str]:
    """Each step node of the drawn DAG, with the domain (compound node) it is drawn in."""
    return driver.execute_script("""
        const cy = window.fedorchGraph;
        if (!cy) return null;
        const out = {};
        cy.nodes("[kind = 'step']").forEach(n => {
            const parent = n.parent();
            const inside = parent.length > 0 && (() => {
                const p = parent.boundingBox(), b = n.boundingBox();
                return b.x1 >= p.x1 && b.x2 <= p.x2 && b.y1 >= p.y1 && b.y2 <= p.y2;
            })();
            out[n.data('step')] = inside ? parent.data('label') : null;
        });
        return out;
    """)


async def test_console_pages_and_live_updates(console_fed, browser):
    fed = console_fed

    # The federation map: three members, all ALIVE, with their capabilities.
    browser.get(fed.console_url + "/")
    _until(browser, lambda d: _members(d) == {"eu-west": "ALIVE", "us-east": "ALIVE",
                                              "partner": "ALIVE"}, "three ALIVE members")
    caps = _until(browser, lambda d: {c.get_attribute("data-capability") for c in d.find_elements(
        By.CSS_SELECTOR, "tr.member[data-domain=partner] .cap")}, "partner's capabilities")
    assert caps == {"report.publish", "test.sleep", "test.double"}
    _until(browser, lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"),
           "the map's event stream to open")
    _screenshot(browser, "federation", 520)

    # The workflow list: a workflow submitted now appears without a reload.
    browser.get(fed.console_url + "/workflows")
    _until(browser, lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"),
           "the list's event stream to open")
    _mark_page(browser)
    wid = await fed.submit("eu-west", SPEC)
    row = f"tr.workflow[data-id='{wid}']"
    _until(browser, lambda d: d.find_elements(By.CSS_SELECTOR, row), "the new workflow's row")
    assert _not_reloaded(browser)

    # The workflow page: the DAG draws each step inside the domain it was placed in, and
    # the workflow's end appears without a reload.
    browser.get(f"{fed.console_url}/workflows/{wid}")
    _mark_page(browser)
    running = await fed.wait_state("eu-west", wid, states={"RUNNING", "SUCCEEDED"})
    placed = {sid: domain for sid, (_, domain, _) in step_states(running).items()}
    assert set(placed.values()) >= {"eu-west", "partner"}
    _until(browser, lambda d: _placement_drawn(d) == placed, f"the DAG to show {placed}")
    edges = browser.execute_script(
        "return window.fedorchGraph.edges().map(e => e.source().data('step') + '>' "
        "+ e.target().data('step')).sort();")
    assert edges == ["extract>hold", "extract>train", "train>report"]
    final = await fed.wait_state("eu-west", wid)
    assert state_name(final) == "SUCCEEDED", final
    _until(browser, lambda d: d.find_element(By.ID, "workflow-state").text == "SUCCEEDED",
           "the page to show SUCCEEDED")
    _until(browser, lambda d: set(d.execute_script(
        "return window.fedorchGraph.nodes(\"[kind = 'step']\").map(n => n.data('state'));"))
        == {"SUCCEEDED"}, "every node of the DAG to turn SUCCEEDED")
    assert _not_reloaded(browser)
    _screenshot(browser, "workflow", 1400)
    # Round 1: us-east's refusal (residency) and the ABORT decision, its signature checked.
    # (Read through _until: a late status may swap the section while it is read.)
    def round_text(number):
        return lambda d: d.find_element(By.CSS_SELECTOR, f".round[data-round='{number}']").text

    round1 = _until(browser, round_text(1), "round 1")
    assert "Round 1 ABORT" in round1
    if engine_of(fed, "eu-west") == "node":
        # The node engine keeps no signed decision envelope: the round's decision is a
        # record of this domain's own hash-chained audit log (console/rounds.py).
        assert "in this domain's audit log" in round1
    else:
        assert "signed by eu-west, signature verified" in round1
    assert "us-east" in round1 and "residency" in round1
    # The last round committed. Its signed votes are kept until every participant
    # acknowledged the decision; then the certificate is collected, and the page says so.
    last = _until(browser, round_text(final.rounds), "the last round")
    assert f"Round {final.rounds} COMMIT" in last
    assert "collected" in last or all(f"{d} YES" in last for d in set(placed.values()))

    # A workflow that another agent (us-east) coordinates: eu-west's console shows it as
    # us-east has it, and follows us-east's Watch stream to its end.
    other = await fed.submit("us-east", REMOTE_SPEC)
    browser.get(f"{fed.console_url}/workflows/{other}")
    _mark_page(browser)
    _until(browser, lambda d: _placement_drawn(d) == {"extract": "eu-west", "hold": "partner"},
           "the us-east-coordinated DAG")
    _until(browser, lambda d: "coordinator us-east" in d.find_element(By.CSS_SELECTOR, ".summary").text,
           "the summary to name us-east as coordinator")
    final = await fed.wait_state("us-east", other)
    assert state_name(final) == "SUCCEEDED", final
    _until(browser, lambda d: d.find_element(By.ID, "workflow-state").text == "SUCCEEDED",
           "the us-east-coordinated workflow to show SUCCEEDED")
    assert _not_reloaded(browser)

    # The list, filtered in the page: by state, then by coordinator too.
    browser.get(fed.console_url + "/workflows")
    _until(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "tr.workflow")) == 2,
           "both workflows in the list")
    _screenshot(browser, "workflows", 480)
    Select(browser.find_element(By.NAME, "state")).select_by_value("SUCCEEDED")
    browser.find_element(By.NAME, "coordinator").send_keys("us-east")
    _until(browser, lambda d: [r.get_attribute("data-id") for r in d.find_elements(
        By.CSS_SELECTOR, "tr.workflow")] == [other], "the list filtered to us-east's workflow")
    _until(browser, lambda d: d.find_element(By.CSS_SELECTOR, "tr.workflow").get_attribute(
        "data-state") == "SUCCEEDED", "the filtered row to show SUCCEEDED")

    # The map is live too: a member that leaves turns LEFT (or DEAD) without a reload.
    browser.get(fed.console_url + "/")
    _until(browser, lambda d: "on" in d.find_element(By.ID, "live").get_attribute("class"),
           "the map's event stream to open")
    _mark_page(browser)
    fed.stop("us-east")  # by its pid, SIGTERM: it announces its leave
    gone = _until(browser, lambda d: (m := _members(d)).get("us-east") in ("LEFT", "DEAD") and m,
                  "us-east to be shown as gone")
    assert gone["partner"] == "ALIVE"
    assert _not_reloaded(browser)

