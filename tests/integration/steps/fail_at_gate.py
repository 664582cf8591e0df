"""A command-executor step for tests: appends `start` to params.runs, waits until the
file params.gate exists (a gate the test opens, at most params.wait_s seconds), then
fails: the test decides when the step fails."""

import json
import os
import sys
import time

request = json.load(sys.stdin)
params = request["params"]
with open(params["runs"], "a") as runs:
    runs.write("start\n")
deadline = time.monotonic() + float(params.get("wait_s", 120))
while not os.path.exists(params["gate"]) and time.monotonic() < deadline:
    time.sleep(0.05)  # polling a file the test creates; no event to wait on
print(f"{request['step']} failed at its gate", file=sys.stderr)
sys.exit(1)
