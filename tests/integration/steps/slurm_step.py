"""A Slurm job's program for the slurm executor tests: the command executor's contract.

params.mode: "sum" prints the sum of a and b (and an integer past 2**53); "fail" exits 3
with a message; "wait" writes its pid to params.marks/pid and sleeps until killed.
"""

import json
import os
import pathlib
import sys
import time

job = json.load(sys.stdin)
params = job["params"]
if params["mode"] == "sum":
    print("log line before the outputs")
    print(json.dumps({"sum": params["a"] + params["b"], "big": params["big"],
                      "upstream": job["inputs"], "in_slurm": "SLURM_JOB_ID" in os.environ}))
elif params["mode"] == "fail":
    print("the model file is missing", file=sys.stderr)
    sys.exit(3)
else:
    (pathlib.Path(params["marks"]) / "pid").write_text(str(os.getpid()))
    time.sleep(300)
