"""A command-executor step for tests: waits until the file params.gate exists (a gate
the test opens), at most params.wait_s seconds, then reports its step and domain."""

import json
import os
import sys
import time

request = json.load(sys.stdin)
params = request["params"]
deadline = time.monotonic() + float(params.get("wait_s", 60))
while not os.path.exists(params["gate"]):
    if time.monotonic() > deadline:
        print(f"gate {params['gate']} not opened in time", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.05)  # polling a file the test creates; no event to wait on
print(json.dumps({"step": request["step"], "attempt": request["attempt"]}))
