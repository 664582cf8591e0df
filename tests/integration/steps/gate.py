"""A command-executor step for tests: waits until the file params.gate exists (a gate
the test opens), at most params.wait_s seconds, then reports its step and attempt; with
params.fail it fails instead. A compensation (stdin's "compensation": true) appends a line
to params.log."""

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
if request.get("compensation"):
    with open(params["log"], "a") as log:
        log.write(f"compensated {request['step']} {json.dumps(request['outputs'])}\n")
if params.get("fail"):
    print("failing as asked", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"step": request["step"], "attempt": request["attempt"]}))
