"""A command-executor step for tests: doubles params.n plus the upstream's `n`."""

import json
import sys

request = json.load(sys.stdin)
n = request["params"].get("n", 0)
upstream = sum(v.get("n", 0) for v in request["inputs"].values() if isinstance(v, dict))
if n < 0:
    print("negative n is not allowed", file=sys.stderr)
    sys.exit(3)
print("working...")  # only the last stdout line counts
print(json.dumps({"n": 2 * n + upstream, "step": request["step"],
                  "attempt": request["attempt"], "workflow": request["workflow"]}))
