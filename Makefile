# SPDX-License-Identifier: MIT
#
# Thin wrapper over the CMake presets (CMakePresets.json), for a fresh machine:
#   make run    install missing packages, build (release), run the demo
#   make test   install missing packages, build (release), run the test suite
# Everything else is plain CMake: cmake --workflow --preset dev, etc.

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PRESET ?= release
BUILD_DIR := build/$(PRESET)

.PHONY: run test deps build clean

deps:
	@bash scripts/deps.sh

build: deps
	cmake --preset $(PRESET)
	cmake --build --preset $(PRESET) --parallel $(JOBS)

# The main job. For now, the tutorial's echo pair end to end.
run: build
	@bash scripts/echo_demo.sh $(BUILD_DIR)

test: build
	ctest --preset $(PRESET) --parallel $(JOBS)

clean:
	rm -rf build
