"""A command-executor step for tests: its first attempt naps until killed.

params.seconds names the naps (a number unique to the test, so the test finds them by
their command line). The first attempt starts two: one in the step's process group and,
with params.escape, one in a session of its own (out of the group's reach, as a
daemonizing program would be), then waits. Later attempts answer at once.
"""

import json
import subprocess
import sys

request = json.load(sys.stdin)
params = request["params"]
if request["attempt"] > 1:
    print(json.dumps({"attempt": request["attempt"]}))
    sys.exit(0)
nap = ["sleep", str(params["seconds"])]
if params.get("escape"):
    subprocess.Popen(nap, start_new_session=True, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
subprocess.run(nap, check=False)
sys.exit(1)
