"""A command-executor step for the staged-rollout tests: it logs what it does, in order.

Each run appends JSON lines to params.log (one file shared by every agent of the test,
opened O_APPEND, so its lines are in the order things happened): "start" and "end" of
a step run, with the agent's domain (FEDORCH_STEP_RUN starts with it) and the wall
time; "compensate" for a compensation. A run in a domain listed in params.fail_in
fails after logging its end. With params.collect it logs nothing and returns its
inputs: {"got": INPUTS}. Otherwise it returns {"domain": DOMAIN, "version": VERSION}.
"""

import json
import os
import subprocess
import sys
import time

job = json.load(sys.stdin)
params = job["params"]
domain = os.environ.get("FEDORCH_STEP_RUN", "").split("/")[0]


def log(kind: str) -> None:
    with open(params["log"], "a") as out:
        out.write(json.dumps({"kind": kind, "step": job["step"], "domain": domain,
                              "t": time.time()}) + "\n")


if job.get("compensation") is True:
    log("compensate")
    print(json.dumps({"undone": job["step"]}))
    sys.exit(0)
if params.get("collect"):
    print(json.dumps({"got": job["inputs"]}))
    sys.exit(0)
log("start")
if params.get("nap"):
    subprocess.run(["sleep", str(params["nap"])], check=False)
log("end")
if domain in params.get("fail_in", []):
    print(f"rollout to {domain} failed", file=sys.stderr)
    sys.exit(1)
print(json.dumps({"domain": domain, "version": params["version"]}))
