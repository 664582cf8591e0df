# fedorch — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test proto proto-check lint bench soak chaos clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fedorch demo

test: $(STAMP)
	$(PY) -m pytest -q

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

lint: $(STAMP)
	$(VENV)/bin/ruff check agent tests scripts

bench: $(STAMP)
	$(VENV)/bin/fedorch bench all

# Real agents SIGKILLed at random moments, then every invariant checked on disk.
CHAOS_RUNS ?= 10
chaos: $(STAMP)
	@for i in $$(seq 1 $(CHAOS_RUNS)); do \
		echo "chaos run $$i of $(CHAOS_RUNS)"; \
		$(PY) -m pytest -q -m chaos tests/integration/test_chaos.py || exit 1; \
	done

# 100,000 seeded runs of the negotiation simulator (make test runs 2,000).
soak: $(STAMP)
	$(PY) -m fedorch.sim.negotiation.run --seeds 100000 --jobs 2

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# The scenario library (scenarios/*/scenario.yaml) with the process runner; every one
# runs, and the target fails when any expectation of any scenario did not hold.
.PHONY: scenarios
scenarios: $(STAMP)
	@failed=""; for f in scenarios/*/scenario.yaml; do \
		echo "== $$f"; $(VENV)/bin/fedorch scenario run "$$f" || failed="$$failed $$f"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi
