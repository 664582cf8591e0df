"""A command-executor step for tests: appends `start` to params.runs, waits until the
file params.gate exists (a gate the test opens, at most params.wait_s seconds), appends
`done` and reports its step and attempt. The runs file counts how often the step ran."""

import json
import os
import sys
import time

request = json.load(sys.stdin)
params = request["params"]
with open(params["runs"], "a") as runs:
    runs.write("start\n")
deadline = time.monotonic() + float(params.get("wait_s", 120))
while not os.path.exists(params["gate"]):
    if time.monotonic() > deadline:
        print(f"gate {params['gate']} not opened in time", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.05)  # polling a file the test creates; no event to wait on
with open(params["runs"], "a") as runs:
    runs.write("done\n")
print(json.dumps({"step": request["step"], "attempt": request["attempt"]}))
