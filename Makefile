# Tandem — convenience targets around CMake. The README's two commands:
#   make run    install dependencies, build, run the PBX in the foreground on configs/
#   make test   install dependencies, build, run every test
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build run cli rx test sanitize bench install clean

all: build

deps:
	bash contrib/install-deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

# The sample configs keep their state under configs/var/ (relative paths in
# tandem.conf are taken from the configuration directory).
run: build
	exec $(BUILD)/bin/tandem -f -C configs

# A console on the PBX started by `make run` (from another terminal).
cli:
	$(BUILD)/bin/tandem -C configs -r

# One command: make rx CMD="core show channels"
rx:
	$(BUILD)/bin/tandem -C configs -rx "$(CMD)"

test: build
	cd $(BUILD) && ctest --output-on-failure -j2

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
sanitize: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTANDEM_SANITIZE=ON
	cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j2

bench: build
	tests/bench/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) build-asan
