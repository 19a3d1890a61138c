# nextcloud_ha.cluster: the two commands of the README, and their parts.
#   make lab    bring up the local lab (podman, six Debian hosts) and deploy the whole cluster
#   make test   every test: unit, playbook, stand-in, lint, sanity (in a blank container), and the cluster in the lab (molecule)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR ?= false
export PY_COLORS ?= 0
export NO_COLOR ?= 1
# Tests always install the Nextcloud test stand-in, never depend on the internet.
test: export LAB_NEXTCLOUD = standin

# Debian packages the controller needs for the tests (the lab installs podman and friends itself). The stand-in's
# tests run PHP with the extensions a real Nextcloud uses (pgsql, redis) against servers of their own (postgresql,
# redis-server); venv and git for the tool chain and `ansible-test sanity`; prometheus for promtool (the alert rules'
# unit test). `make blank` proves the list complete.
HOST_PACKAGES := make git python3-venv php-cli php-sqlite3 php-pgsql php-redis php-xml php-mbstring php-gd php-zip \
	php-curl postgresql redis-server gnupg bzip2 rsync openssh-client ca-certificates openssl prometheus

.PHONY: lab test test-debian13 test-disruptive test-reliability deps venv lock blank unit playbook standin lint sanity molecule down status

# LAB_DEPLOY_ARGS go on to ansible-playbook (`make lab LAB_DEPLOY_ARGS="-e nextcloud_version=33.0.0"`); LAB_NEXTCLOUD
# may name a release archive on this machine (README, The lab).
lab: venv deps
	$(VENV)/bin/python -m lab up
	$(VENV)/bin/python -m lab deploy $(LAB_DEPLOY_ARGS)

# The controller-side tests (unit, playbook, standin, lint, sanity) run in a blank container (`blank`), so that a
# package the install steps forgot fails here on every machine; then the cluster in the lab (molecule) on this host.
test: venv deps blank molecule

deps:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

venv: $(VENV)/.installed

# The exact versions of requirements.lock (the ones the tests last passed with), within requirements.txt's ranges.
$(VENV)/.installed: requirements.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c requirements.lock pip
	$(VENV)/bin/pip install -q -r requirements.txt -c requirements.lock
	touch $@

# Refresh requirements.lock: the newest versions requirements.txt allows, resolved in a venv of their own.
# Then run `make test` and commit the lock only if it passes.
lock:
	rm -rf .cache/lock-venv
	$(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install -q --upgrade pip
	.cache/lock-venv/bin/pip install -q -r requirements.txt
	{ sed -n '/^#/p' requirements.lock; .cache/lock-venv/bin/pip freeze --all --exclude setuptools --exclude wheel; } > requirements.lock.new
	mv requirements.lock.new requirements.lock
	rm -rf .cache/lock-venv

# The controller-side tests (deps venv unit playbook standin lint sanity) in a throw-away container of the lab's
# Debian image holding nothing but this checkout (tracked and new files, no venv): proves the install steps above
# complete.
blank:
	$(VENV)/bin/python -m lab blank

# Python tests of modules, module_utils, filters and the lab tool, in process (no ansible-playbook run).
unit:
	$(VENV)/bin/pytest -q tests/unit

# Tests that drive a real ansible-playbook of the venv on this machine: modules, filters and the callback through
# Ansible, roles' rendered files, the built collection artifact.
playbook:
	$(VENV)/bin/pytest -q tests/playbook

standin:
	@if [ -d tests/standin/tests ]; then $(VENV)/bin/pytest -q tests/standin/tests; fi

lint:
	$(VENV)/bin/yamllint -s .
	$(VENV)/bin/ansible-lint --offline -q

sanity:
	.ci/sanity

# `lab down` first: it removes leftovers of an earlier run and leaves the (empty) inventory molecule links to.
# The whole output (converge with -v) is kept: test_converge_output.py looks for every secret in it.
molecule: export NCHA_CONVERGE_LOG = $(CURDIR)/.cache/molecule-default.log
# Molecule's verifier (pytest) inherits it: a lab test that cannot find the lab, the deployed cluster or the
# converge log fails instead of skipping (tests/integration/conftest.py, require()).
molecule: export NCHA_REQUIRE_LAB = 1
# The reliability suite runs in molecule's verify step too, at the reduced load (CI's time budget).
molecule: export NCHA_RELIABILITY_LOAD ?= reduced
molecule:
	$(VENV)/bin/python -m lab down
	mkdir -p .cache
	$(VENV)/bin/molecule test -s default 2>&1 | tee $(NCHA_CONVERGE_LOG)

# The same molecule scenario on Debian 13 (trixie) hosts: converge from blank hosts, idempotence, and the
# non-disruptive tests. Not part of `make test` (CI's time budget); run by hand before a release.
test-debian13: export LAB_DISTRO = trixie
test-debian13: export LAB_NEXTCLOUD = standin
test-debian13: venv deps molecule

# The failure scenarios (containers stopped, PostgreSQL failover and switchover, Redis failover, killed
# syncs) against the lab that `make lab` deployed. They change which servers hold which role.
test-disruptive:
	$(VENV)/bin/pytest -v -p no:cacheprovider -m "disruptive and not reliability" tests/integration

# The reliability suite (tests/integration/test_reliability.py): the ten failure scenarios one at a time under
# the full load, one table of figures (also in tests/output/reliability.json). On the lab that `make lab` deployed.
test-reliability: export NCHA_RELIABILITY_LOAD ?= full
test-reliability:
	$(VENV)/bin/pytest -v -p no:cacheprovider -m reliability tests/integration

down:
	$(VENV)/bin/python -m lab down

status:
	$(VENV)/bin/python -m lab status
