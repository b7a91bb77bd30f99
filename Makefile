# Two commands do everything on a fresh Debian 12 machine (as root):
#   make up    creates the local test hosts and runs `up` on the local stack
#   make test  runs every test (unit and engine-backed)
PY := .venv/bin/python
STACK ?= local

.PHONY: setup testbed testbed-down preview up refresh destroy pr-preview down test unit lint bench compliance reference

setup:
	bash scripts/setup.sh

testbed: setup
	$(PY) -m toolchain.testbed up

testbed-down:
	$(PY) -m toolchain.testbed down

# Each runs the real `pulumi` CLI in this folder (stackctl only sets its environment and selects the stack).
preview: testbed
	$(PY) -m toolchain.stackctl --stack $(STACK) preview --diff

up: testbed
	$(PY) -m toolchain.stackctl --stack $(STACK) up --yes --diff

refresh: setup
	$(PY) -m toolchain.stackctl --stack $(STACK) refresh --yes

destroy: setup
	$(PY) -m toolchain.stackctl --stack $(STACK) destroy --yes

# The Markdown comment a pull request gets: one line per changed directive (no SSH connection).
pr-preview: setup
	$(PY) -m toolchain.stackctl.pr_preview --stack $(STACK)

down: destroy testbed-down

# Parallel workers, a test bed each (tests/conftest.py); each file runs whole, in order, on one worker.
# TEST_WORKERS=N sets how many (default: twice the cores, at least 3).
test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest -v -p no:cacheprovider -n auto --dist loadfile --no-loadscope-reorder --durations=15 tests

unit: setup
	$(PY) -m pytest -q tests/unit

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: setup
	$(PY) -m toolchain.bench $(BENCH_ARGS)

# The last state's compliance report: Markdown on stdout, the HTML matrix in .state/ (`make refresh` first for live values).
compliance: setup
	$(PY) -m compliance --stack $(STACK) --html .state/compliance-$(STACK).html

# docs/reference.md: every argument of the library's resources, from their declarations in secure_postfix/args.py.
reference: setup
	$(PY) -m secure_postfix.reference docs/reference.md
