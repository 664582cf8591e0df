"""A command-executor step for re-placement tests: a side effect, then a nap.

Each run appends `start` to params.file; the first run ever (no `start` in the file
before it) then naps `sleep params.seconds` until it is killed (the test kills its
agent), a later run naps params.short seconds. A run that completes appends `done`
and answers with its inputs and how many runs had started, so the test sees both
what reached the step and how often it completed.
"""

import json
import pathlib
import subprocess
import sys

request = json.load(sys.stdin)
params = request["params"]
path = pathlib.Path(params["file"])
before = path.read_text().splitlines() if path.exists() else []
with path.open("a") as f:
    f.write("start\n")
first = "start" not in before
subprocess.run(["sleep", str(params["seconds"] if first else params["short"])], check=False)
with path.open("a") as f:
    f.write("done\n")
print(json.dumps({"inputs": request["inputs"], "runs": before.count("start") + 1}))
