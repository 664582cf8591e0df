# fedorch — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test faketime browser slurm proto proto-check lint bench soak explore chaos clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall when the dependency list changes.
$(STAMP): pyproject.toml setup.py | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/fedorch demo

# Three workers, each taking whole test files (fixtures that start a cluster or a browser
# stay in one process): most of the suite waits on real agents, so three share two cores
# (1,743 tests in 12.6 min on a 2-core machine; with two workers, about 15).
# Files are handed out in the order of TEST_ORDER, not xdist's default of most tests
# first: that default put the long one-test integration files (chaos, console, tracing,
# ...) at the very end, where one of them alone kept the run going after the other
# workers had finished. The longest files come first (the seeded simulator runs of
# tests/sim, then the real agents of tests/integration); the many short unit files last
# fill the gaps. Every folder of tests/ must be listed (checked below).
TEST_WORKERS ?= 3
TEST_ORDER := tests/sim tests/integration tests/scenario tests/docs tests/unit
test: $(STAMP) faketime browser slurm
	@for d in tests/*/; do d=$${d%/}; [ "$$d" = tests/__pycache__ ] && continue; \
		case " $(TEST_ORDER) " in *" $$d "*) ;; \
		*) echo "make test: $$d is missing from TEST_ORDER"; exit 2;; esac; done
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder \
		--durations=15 $(TEST_ORDER)

# The clock-step integration test runs agents under libfaketime (Debian package
# faketime). Installed here when missing and we are root with apt; otherwise that test
# is skipped and says why.
FAKETIME_LIB := $(firstword $(wildcard /usr/lib/*/faketime/libfaketime.so.1))
faketime:
	@if [ -z "$(FAKETIME_LIB)" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing faketime (for tests/integration/test_clock_steps.py)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q faketime >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q faketime >/dev/null 2>&1; } || \
		echo "faketime could not be installed: the clock-step tests will be skipped"; \
	fi

# The console's browser tests drive Debian's Chromium: install it when we are root and
# it is missing (elsewhere those tests skip and say why).
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -q chromium chromium-driver \
				|| echo "could not install chromium: the browser tests will skip"; \
		else \
			echo "chromium/chromium-driver missing and not root: the browser tests will skip"; \
		fi; \
	fi

# The slurm executor's tests start a one-node Slurm cluster (Debian packages slurm-wlm
# and munge). Installed here when missing and we are root with apt; otherwise those
# tests are skipped and say why.
slurm:
	@if ! command -v slurmd >/dev/null && ! [ -x /usr/sbin/slurmd ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing slurm-wlm and munge (for tests/integration/test_slurm_executor.py)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1 || \
		{ apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null 2>&1; } || \
		echo "Slurm could not be installed: the slurm executor tests will be skipped"; \
	fi

proto: $(STAMP)
	$(PY) scripts/gen_proto.py

# Fails when the committed generated code is not what `make proto` makes (make test runs
# the same check).
proto-check: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider tests/unit/test_gen_fresh.py

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
	$(PY) -m fedorch.sim.negotiation.run --seeds 20000 --start 100000 --jobs 2 --takeover 3
	$(MAKE) explore

# The unit tests' Hypothesis properties on fresh random examples, EXPLORE_ROUNDS times
# (make test runs them derandomized: the same examples each time; tests/conftest.py).
EXPLORE_ROUNDS ?= 3
explore: $(STAMP)
	@files=$$(grep -rl --include='*.py' -e '^from hypothesis' -e '^import hypothesis' tests/unit); \
	for i in $$(seq 1 $(EXPLORE_ROUNDS)); do \
		echo "explore round $$i of $(EXPLORE_ROUNDS)"; \
		FEDORCH_HYPOTHESIS=explore $(PY) -m pytest -q -n 2 -p no:cacheprovider $$files || exit 1; \
	done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

# The scenario library (scenarios/*/scenario.yaml) with the process runner, and, as root
# with `ip`, with the netns runner too (each domain in a network namespace: partitions
# are real). The process runner skips scenarios whose faults it cannot apply. Every one
# runs; the target fails when any expectation of any scenario did not hold. The netns
# pass runs the scenarios with partitions (the ones the process runner skips), so that the
# whole stays under 10 minutes; `make scenarios NETNS=all` runs every one there too
# (but the 50-domain storm, a measure of one host's limits: process runner only).
# It ends with each run's wall time and the total (numbers: scenarios/README.md).
NETNS ?= partitions
.PHONY: scenarios
scenarios: $(STAMP)
	@runners=process; \
	if [ "$$(id -u)" = 0 ] && command -v ip >/dev/null; then runners="process netns"; fi; \
	now() { date +%s.%N; }; took() { awk -v a="$$1" -v b="$$(now)" 'BEGIN{printf "%.1f", b-a}'; }; \
	begin=$$(now); times=""; \
	failed=""; for runner in $$runners; do for f in scenarios/*/scenario.yaml; do \
		case "$$runner:$$f" in netns:*/join-storm-50/*) continue;; esac; \
		if [ "$$runner" = netns ] && [ "$(NETNS)" != all ] \
			&& ! grep -qE 'action: *(partition|heal)' "$$f"; then continue; fi; \
		echo "== $$f ($$runner runner)"; start=$$(now); outcome=ok; \
		$(VENV)/bin/fedorch scenario run --runner $$runner --skip-unsupported "$$f" \
			|| { failed="$$failed $$f($$runner)"; outcome=FAILED; }; \
		line=$$(printf '%8s s  %-7s %s (%s)' "$$(took $$start)" $$outcome "$$f" $$runner); \
		echo "$$line"; times="$$times$$line\n"; \
	done; done; \
	printf '\n== wall time per scenario\n%b%8s s  total (load average now: %s)\n' \
		"$$times" "$$(took $$begin)" "$$(cut -d' ' -f1-3 /proc/loadavg)"; \
	if [ -n "$$failed" ]; then echo "failed:$$failed"; exit 1; fi
