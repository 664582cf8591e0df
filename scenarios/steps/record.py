"""A scenario step with a side effect that can be counted: each run appends one JSON line
(workflow, step, attempt, domain, whether it is a compensation, and when) to the file
$FEDORCH_SCENARIO_RUNS names, then sleeps
params.seconds (default 0), fails while attempt <= params.fail_times (default 0), and
prints its outputs. `fedorch scenario run` counts those lines per step."""

import json
import os
import sys
import time

request = json.load(sys.stdin)
params = request.get("params") or {}
record = {
    "workflow": request["workflow"],
    "step": request["step"],
    "attempt": request["attempt"],
    "domain": os.environ.get("FEDORCH_SCENARIO_DOMAIN", ""),
    # A compensation (docs/sagas.md) is recorded as one; `at` orders records across
    # domains' files (one machine, one clock).
    "compensation": bool(request.get("compensation")),
    "at": time.time(),
}
runs = os.environ.get("FEDORCH_SCENARIO_RUNS")
if runs:
    # One short write in append mode: lines from concurrent steps do not interleave.
    with open(runs, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
time.sleep(float(params.get("seconds", 0)))
if request["attempt"] <= int(params.get("fail_times", 0)):
    print(f"failed on purpose (attempt {request['attempt']})", file=sys.stderr)
    sys.exit(1)
print(json.dumps({**record, "inputs": sorted(request.get("inputs") or {})}))
