# User interface of the project. See README.md.
#   make deps     install missing Debian packages (root) or print the command
#   make          build build/inferadb-ledger
#   make run      deps + build + single-node server on 127.0.0.1:50051, data in ./data
#   make test     deps + build + every test suite
#   make asan     unit tests and an integration subset under ASan+UBSan
#   make install  install binaries (PREFIX, default /usr/local)
#   make bench    build + bench/run.sh (loadgen workloads, stateroot); see bench/RESULTS.md
#   make bench-cluster  build + bench/cluster.sh (3-node writes vs single, leader failover)
PREFIX ?= /usr/local
BUILD ?= build
ASAN_BUILD ?= build-asan
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PYTHON ?= /usr/bin/python3
PYTEST_ARGS ?=
# The integration subset also run against the ASan+UBSan server binary.
ASAN_PYTESTS ?= tests/integration/test_write_read.py tests/integration/test_errors.py \
	tests/integration/test_watch.py tests/integration/test_admin.py \
	tests/integration/test_ttl.py tests/integration/test_snapshot_restart.py \
	tests/integration/test_integrity.py \
	tests/integration/test_backup.py tests/integration/test_divergence.py

.PHONY: all deps build run test unit integration asan install clean bench bench-cluster

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLDG_WERROR=ON

build: $(BUILD)/Makefile
	@$(MAKE) --no-print-directory -C $(BUILD) -j$(JOBS)

run: deps build
	@mkdir -p data
	$(BUILD)/inferadb-ledger --single --data ./data --listen 127.0.0.1:50051

unit: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

integration: build
	LEDGER_BIN=$(CURDIR)/$(BUILD)/inferadb-ledger $(PYTHON) -m pytest -q -ra \
		-p no:cacheprovider tests/integration $(PYTEST_ARGS)

test: deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory integration

asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DLDG_WERROR=ON -DLDG_SANITIZE=ON
	@$(MAKE) --no-print-directory -C $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS)
	LEDGER_SANITIZED=1 LEDGER_BIN=$(CURDIR)/$(ASAN_BUILD)/inferadb-ledger \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(PYTHON) -m pytest -q -ra -p no:cacheprovider $(ASAN_PYTESTS)

bench: build
	BUILD=$(BUILD) sh bench/run.sh

bench-cluster: build
	BUILD=$(BUILD) PYTHON=$(PYTHON) sh bench/cluster.sh

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
