"""A command-executor step for the sagas test of a step placed again: it logs what it
does, as saga.py does (one JSON line per run appended to params.log, a file shared by
every agent of the test, with the kind, the step, the attempt and the agent's domain),
and a step run first logs its start (kind `start`) and waits until the file
params.gate exists (a gate the test opens; at most 120 s): the test kills the domain
that runs it, and the step runs again where it is placed next. A compensation logs
its run at once."""

import json
import os
import sys
import time

job = json.load(sys.stdin)
params = job["params"]
compensating = job.get("compensation") is True
domain = os.environ.get("FEDORCH_STEP_RUN", "").split("/")[0]


def log(kind: str) -> None:
    entry = {"kind": kind, "step": job["step"], "attempt": job["attempt"], "domain": domain}
    with open(params["log"], "a") as f:
        f.write(json.dumps(entry) + "\n")


if not compensating:
    log("start")
    deadline = time.monotonic() + 120
    while not os.path.exists(params["gate"]) and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a file the test creates; no event to wait on
log("compensate" if compensating else "step")
print(json.dumps({"made": job["step"]}))
