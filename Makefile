# SPDX-License-Identifier: MIT
#
# Thin wrapper over the CMake presets (CMakePresets.json), for a fresh machine:
#   make run    install missing packages, build (release), run `pysock http.server`
#               (serves the current folder on http://127.0.0.1:8000/ until Ctrl-C)
#   make demo   the tutorial's echo server and client, end to end
#   make test   install missing packages, build (release), run the test suite
# Everything else is plain CMake: cmake --workflow --preset dev, etc.

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PRESET ?= release
BUILD_DIR := build/$(PRESET)

.PHONY: run demo test deps build clean

deps:
	@bash scripts/deps.sh

build: deps
	cmake --preset $(PRESET)
	cmake --build --preset $(PRESET) --parallel $(JOBS)

# The main job: Python's `python3 -m http.server`, in C++, on built-in defaults.
run: build
	$(BUILD_DIR)/tools/pysock http.server

demo: build
	@bash scripts/echo_demo.sh $(BUILD_DIR)

test: build
	ctest --preset $(PRESET) --parallel $(JOBS)

clean:
	rm -rf build
