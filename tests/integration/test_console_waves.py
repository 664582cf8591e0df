"""The console's workflow page in a real browser (headless Chromium, as
tests/integration/test_console.py) shows a staged rollout: each instance drawn inside
its own domain with its wave, and the steps table's wave column."""

from __future__ import annotations

import pytest

from tests.integration.federation import step_states
from tests.integration.test_console import (  # noqa: F401  (fixtures, and the skip)
    _placement_drawn,
    _until,
    browser,
    console_fed,
)

pytestmark = pytest.mark.integration

ROLLOUT = """
name: console-rollout
steps:
  - id: train
    capability: ml.train
    each: {labels: {cloud: aws}}
    waves: {max_parallel: 1}
"""


def _labels(driver) -> dict[str, str]:
    return driver.execute_script("""
        const cy = window.fedorchGraph;
        if (!cy) return null;
        const out = {};
        cy.nodes("[kind = 'step']").forEach(n => { out[n.data('step')] = n.data('label'); });
        return out;
    """)


async def test_the_workflow_page_draws_each_instance_in_its_domain_with_its_wave(
        console_fed, browser):  # noqa: F811
    fed = console_fed
    wid = await fed.submit("eu-west", ROLLOUT)
    status = await fed.wait_state("eu-west", wid)
    assert {sid: (state, domain) for sid, (state, domain, _) in step_states(status).items()} \
        == {"train@eu-west": ("SUCCEEDED", "eu-west"), "train@us-east": ("SUCCEEDED", "us-east")}
    browser.get(f"{fed.console_url}/workflows/{wid}")
    # Each instance inside its own domain's box, once the layout has settled.
    expected = {"train@eu-west": "eu-west", "train@us-east": "us-east"}
    _until(browser, lambda d: _placement_drawn(d) == expected,
           "each instance drawn inside its domain")
    labels = _labels(browser)
    assert "wave 1" in labels["train@eu-west"] and "wave 2" in labels["train@us-east"]
    # Read in one script: the page redraws its rows when it refreshes, so an element
    # found in one call may be gone by the next (a stale element reference).
    cells = browser.execute_script("""
        const out = {};
        document.querySelectorAll("tr.step").forEach(r => {
            const cell = r.querySelector("td.wave");
            out[r.getAttribute("data-step")] = cell ? cell.innerText : null;
        });
        return out;
    """)
    assert cells == {"train@eu-west": "train · wave 1", "train@us-east": "train · wave 2"}
