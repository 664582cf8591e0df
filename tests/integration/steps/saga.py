"""A command-executor step for the sagas tests: it logs what it does, in order.

Each run appends one JSON line to params.log (one file shared by every agent of the
test, opened O_APPEND, so its lines are in the order the runs happened): the kind
(step or compensate), the step, the attempt, what it was handed and the agent's
domain (FEDORCH_STEP_RUN starts with it). As a step it returns {"made": STEP, "n": 7}
(after napping params.nap seconds, if given). As a compensation: params.fail fails it;
params.nap makes the first attempt nap (`sleep NAP`) until killed; params.gate
holds it (after it appended `start` to params.held) until the file params.gate exists
(a gate the test opens; at most 120 s), before it logs its run.
"""

import json
import os
import subprocess
import sys
import time

job = json.load(sys.stdin)
params = job["params"]
compensating = job.get("compensation") is True
if compensating and params.get("nap") and job["attempt"] == 1:
    subprocess.run(["sleep", str(params["nap"])], check=False)
    sys.exit(1)
if compensating and params.get("gate"):
    with open(params["held"], "a") as held:
        held.write("start\n")
    deadline = time.monotonic() + 120
    while not os.path.exists(params["gate"]) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a file the test creates; no event to wait on
entry = {
    "kind": "compensate" if compensating else "step",
    "step": job["step"],
    "attempt": job["attempt"],
    "domain": os.environ.get("FEDORCH_STEP_RUN", "").split("/")[0],
    "outputs": job.get("outputs"),
    "keys": sorted(job),
}
with open(params["log"], "a") as log:
    log.write(json.dumps(entry) + "\n")
if compensating and params.get("fail"):
    print("cannot undo " + job["step"], file=sys.stderr)
    sys.exit(3)
if not compensating and params.get("nap"):
    subprocess.run(["sleep", str(params["nap"])], check=False)
print(json.dumps({"made": job["step"], "n": 7}))
