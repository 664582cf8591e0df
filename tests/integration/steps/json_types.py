"""A command-executor step for tests: reports the JSON types it received.

Outputs its params as they came, the Python type name of each upstream output value, and
the sum of every integer it received (exact only if the integers arrived as integers)."""

import json
import sys

request = json.load(sys.stdin)
params = request["params"]
inputs = request["inputs"]
types = {step: {key: type(value).__name__ for key, value in outputs.items()}
         for step, outputs in inputs.items()}
numbers = [v for v in params.values() if type(v) is int]
numbers += [v for outputs in inputs.values() for v in outputs.values() if type(v) is int]
print(json.dumps({**params, "input_types": types, "int_sum": sum(numbers)}))
