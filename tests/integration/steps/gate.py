"""A command-executor step for tests: it ends only once the file params.gate exists
(the test opens the gate), answering {"opened": true}."""

import json
import pathlib
import sys
import time

request = json.load(sys.stdin)
gate = pathlib.Path(request["params"]["gate"])
while not gate.exists():
    time.sleep(0.05)
print(json.dumps({"opened": True}))
