# nextcloud_ha.cluster: the two commands of the README, and their parts.
#   make lab    bring up the local lab (podman, six Debian hosts) and deploy the whole cluster
#   make test   every test: unit, stand-in, lint, sanity, and the cluster in the lab (molecule)

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

# Debian packages the controller needs for the tests (the lab installs podman and friends itself).
HOST_PACKAGES := php-cli php-sqlite3 php-xml php-mbstring php-gd php-zip php-curl gnupg bzip2 rsync openssh-client ca-certificates openssl

.PHONY: lab test test-debian13 test-disruptive test-reliability deps venv unit standin lint sanity molecule down status

lab: venv deps
	$(VENV)/bin/python -m lab up
	$(VENV)/bin/python -m lab deploy

test: venv deps unit standin lint sanity molecule

deps:
	@missing=$$(for p in $(HOST_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then echo "installing: $$missing"; apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

unit:
	$(VENV)/bin/pytest -q tests/unit

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

# The failure scenarios (containers stopped, PostgreSQL failover and rejoin, Redis failover, killed
# syncs) against the lab that `make lab` deployed. They change which servers hold which role.
test-disruptive:
	$(VENV)/bin/pytest -v -p no:cacheprovider -m "disruptive and not reliability" tests/integration

# The reliability suite (tests/integration/test_reliability.py): the seven failure scenarios one at a time under
# the full load, one table of figures (also in tests/output/reliability.json). On the lab that `make lab` deployed.
test-reliability: export NCHA_RELIABILITY_LOAD ?= full
test-reliability:
	$(VENV)/bin/pytest -v -p no:cacheprovider -m reliability tests/integration

down:
	$(VENV)/bin/python -m lab down

status:
	$(VENV)/bin/python -m lab status
