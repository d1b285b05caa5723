# The two commands: `make demo` (bring the lab up with the counter on
# http://127.0.0.1:8080/) and `make test` (lint, unit tests, molecule test).
# Both do all set-up on a fresh Debian 12 machine run as root.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
SUITES ?= bookworm trixie
# What `make test` runs: each scenario once, both Debian releases covered
# (scenario:suite). `make drills` runs the long fault drills on DRILL_MATRIX.
TEST_MATRIX ?= default:bookworm s3:trixie
DRILL_MATRIX ?= default:bookworm s3:trixie
HOST ?= lab-app1
REPLICA ?= sftp
LAB := $(BIN)/ansible-playbook playbooks/lab.yml
# The Debian release of the demo lab's hosts (playbooks/lab.yml), and the
# releases the Molecule runs of a matrix need: each target builds only the
# images it uses.
LAB_SUITE ?= bookworm
suites_of = $(sort $(foreach run,$(1),$(lastword $(subst :, ,$(run)))))

export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_FORCE_COLOR := $(if $(CI),0,1)

.PHONY: help setup venv docker images demo test lint unit promtool lock molecule drills alert-drill bench soak status down stop start logs purge

help:
	@echo "make demo [REPLICA=sftp|s3]   set up, bring the lab up, deploy site.yml, counter on http://127.0.0.1:8080/"
	@echo "make test    set up, lint, unit tests, molecule test (each scenario once; what CI runs)"
	@echo "make lint    yamllint, ansible-lint (production), ruff, argument-spec and role-docs checks"
	@echo "make unit    the app's and the guard's unit tests, the alert rules' checks and tests (promtool)"
	@echo "make molecule [TEST_MATRIX=...]   molecule test for each scenario:suite (MOLECULE_JOBS=1: one at a time)"
	@echo "make setup   the .venv with the pinned toolchain and the base images (make images: SUITES)"
	@echo "make images  build the systemd base image of each Debian release in SUITES (nothing pulled)"
	@echo "make drills  the long fault drills under load, with figures (docs/drills.md)"
	@echo "make soak    an hour of random faults under load on the lab, checked (docs/soak.md)"
	@echo "make alert-drill    on the lab: freeze the store until the replication alert fires, then clear it"
	@echo "make bench [BENCH_ARGS=...]  figures of the lab made by make demo: docs/bench.md (.json, .png; REPLICA=s3 lab: docs/bench-s3.*)"
	@echo "make lock [UPGRADE=1]   regenerate app/requirements.txt, the app's lock with hashes (pip-compile)"
	@echo "make status [INVENTORY=...]   where each app host stands: units, count, positions, readiness, last restore drill"
	@echo "make stop | start    stop / start the lab hosts (data kept)"
	@echo "make down    remove the lab hosts, keep the replica (next demo restores)"
	@echo "make logs [HOST=lab-app1]    journal of litestream and counter (sshd on lab-storage)"
	@echo "make purge   remove lab hosts, replica, image, caches and .venv"

$(VENV)/.installed: requirements-dev.txt app/pyproject.toml guard/pyproject.toml
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  echo "installing python3-venv from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade 'pip>=24'
	$(BIN)/pip install --quiet --requirement requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --editable ./app
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --editable ./guard
	touch $@

# This tree as the collection counter.litestream (galaxy.yml), for the roles'
# filters and lookups, which a collection's roles name in full
# (counter.litestream.NAME): ansible.cfg's collections_path finds it here.
COLLECTION_LINK := $(VENV)/collections/ansible_collections/counter/litestream
$(COLLECTION_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

venv: $(VENV)/.installed $(COLLECTION_LINK)


docker:
	scripts/lab/ensure-docker.sh

images: $(addprefix image-,$(SUITES))

# One base image (counter-lab/debian:SUITE), built once: the script does
# nothing when it exists.
image-%: docker
	scripts/lab/build-image.sh $*

setup: venv images

demo: venv image-$(LAB_SUITE)
	@case "$(REPLICA)" in sftp|s3) ;; *) echo "REPLICA must be sftp or s3 (got '$(REPLICA)')"; exit 2;; esac
	$(LAB) -e lab_state=present -e lab_suite=$(LAB_SUITE)
	$(BIN)/ansible-playbook -i inventory/lab site.yml -e lab_replica=$(REPLICA)
	@echo
	@echo "The counter answers on http://127.0.0.1:8080/ (lab-app1) and :8081 (lab-app2),"
	@echo "replicating to $(REPLICA) on lab-storage. Try: curl 127.0.0.1:8080"

lint: venv
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	scripts/ci/check-argument-specs.py
	scripts/ci/role-docs.py --check
	$(BIN)/python scripts/ci/collection-check.py

unit: venv promtool
	cd app && $(BIN)/pytest -q
	$(BIN)/pytest -q -p no:cacheprovider guard/tests
	$(BIN)/pytest -q -p no:cacheprovider tests/roles tests/lab
	$(PROMTOOL) check rules roles/monitoring/files/rules/*.yml
	$(PROMTOOL) test rules roles/monitoring/tests/rules_test.yml

# promtool (alert rules' checks and unit tests): the one in PATH, else the
# one in Debian's prometheus package, unpacked into .cache/ (not installed:
# no Prometheus service is set up on this machine).
PROMTOOL_DIR := $(CURDIR)/.cache/promtool
PROMTOOL = $(or $(shell command -v promtool),$(PROMTOOL_DIR)/usr/bin/promtool)
promtool:
	@command -v promtool >/dev/null || [ -x $(PROMTOOL_DIR)/usr/bin/promtool ] || { \
	  echo "unpacking promtool from Debian's prometheus package into $(PROMTOOL_DIR)"; \
	  apt-get update -qq && mkdir -p $(PROMTOOL_DIR) && cd $(PROMTOOL_DIR) && \
	  apt-get download -qq prometheus && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb; }

# The app's lock: app/requirements.txt from the ranges in app/pyproject.toml,
# every file's sha256 included (pip-compile; its settings are in
# app/pyproject.toml). Pins already in the lock are kept while the ranges
# allow them; UPGRADE=1 moves every pin to the newest version in range, and
# `make lock PIP_COMPILE_ARGS='-P bottle==0.13.3'` moves one (either way).
lock: venv
	cd app && CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet \
	  $(if $(UPGRADE),--upgrade) $(PIP_COMPILE_ARGS) pyproject.toml

# MOLECULE_SUITE picks the image of each run.
# Each scenario:suite of TEST_MATRIX at the same time (MOLECULE_JOBS=1: one
# after the other); lines prefixed with the scenario, a summary at the end.
molecule: venv $(addprefix image-,$(call suites_of,$(TEST_MATRIX)))
	MOLECULE=$(BIN)/molecule scripts/ci/molecule-matrix.sh $(TEST_MATRIX)

# The same scenarios with the long drills (test_90_drills.py) switched on,
# at the same time as in make test; their figures go to docs/drills.json and
# the table docs/drills.md, then the lab's drills run (make demo). Their
# hosts are drill-app1, ... (MOLECULE_HOST_PREFIX): a `make test` on the same
# machine (molecule-app1, ...) neither removes them nor is removed by them.
drills: venv $(addprefix image-,$(call suites_of,$(DRILL_MATRIX)))
	rm -f docs/drills.json
	COUNTER_DRILLS=long COUNTER_DRILL_FIGURES=$(CURDIR)/docs/drills.json \
	  MOLECULE_HOST_PREFIX=$${MOLECULE_HOST_PREFIX:-drill} MOLECULE=$(BIN)/molecule \
	  scripts/ci/molecule-matrix.sh $(DRILL_MATRIX)
	$(BIN)/python scripts/ci/drill-report.py docs/drills.json docs/drills.md
	@cat docs/drills.md
	$(MAKE) demo
	scripts/lab/stock-strategy-deploy.sh -e lab_replica=$(REPLICA)
	scripts/lab/stop-drill.sh
	scripts/lab/alert-drill.sh
	$(BIN)/python scripts/lab/switch-drill.py
	$(BIN)/python scripts/lab/soak.py --minutes 10 --out build/soak-drill

# On the lab `make demo` made: SOAK_MINUTES of ~100 visits/s with a random
# fault every 1-3 minutes, the guarantees checked all along; the report goes
# to docs/soak.{md,json,png}. SOAK_ARGS: --ack (acknowledge after
# replication), --seed N, --out PATH.
SOAK_MINUTES ?= 60
soak: venv docker
	@docker inspect -f '{{.State.Running}}' lab-app1 2>/dev/null | grep -qx true || { \
	  echo "make soak runs on the lab: bring it up first with make demo"; exit 2; }
	$(BIN)/python scripts/lab/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

# On the lab `make demo` made: the store frozen (docker pause) until the
# replication-behind alert fires in Prometheus and Alertmanager, then back
# until it clears; prints the times.
alert-drill: docker
	scripts/lab/alert-drill.sh

test: lint unit molecule

# The figures of docs/bench.md (and .json, .png) on the lab `make demo` made:
# the counter vs a bare waitress hello (wrk, from Debian), replication lag,
# restore, recovery, deploy times, memory. BENCH_ARGS: --quick, --only, --skip.
bench: venv docker
	@command -v wrk >/dev/null || { echo "installing wrk from Debian"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	@docker inspect -f '{{.State.Running}}' lab-app1 2>/dev/null | grep -qx true || { \
	  echo "make bench measures the lab: bring it up first with make demo"; exit 2; }
	$(BIN)/python bench $(BENCH_ARGS)

stop: venv
	$(LAB) -e lab_state=stopped

start: venv docker
	$(LAB) -e lab_state=started

down: venv docker
	$(LAB) -e lab_state=absent

# Where each app host stands, one table (playbooks/status.yml); INVENTORY
# to read another inventory than the lab's.
INVENTORY ?= inventory/lab
status: venv
	$(BIN)/ansible-playbook -i $(INVENTORY) playbooks/status.yml

logs: docker
	@if [ "$(HOST)" = lab-storage ]; then units="-u ssh -u seaweedfs"; else units="-u litestream -u counter"; fi; \
	docker exec $(HOST) journalctl --no-pager -n 100 $$units

purge: venv docker
	$(LAB) -e lab_state=purged
	for suite in $(SUITES); do docker image rm -f counter-lab/debian:$$suite || true; done
	rm -rf $(HOME)/.cache/counter-deploy $(VENV)
