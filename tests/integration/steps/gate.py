"""A command-executor step for tests: waits until the file params.gate exists (a test
creates it when it wants the step to finish), then succeeds; fails after params.wait_s."""

import json
import pathlib
import sys
import time

request = json.load(sys.stdin)
gate = pathlib.Path(request["params"]["gate"])
deadline = time.monotonic() + float(request["params"].get("wait_s", 60))
while not gate.exists():
    if time.monotonic() > deadline:
        print(f"gate {gate} never opened", file=sys.stderr)
        sys.exit(1)
    time.sleep(0.05)
print(json.dumps({"opened": True}))
