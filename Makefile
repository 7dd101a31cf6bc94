# Two commands do all set-up on a fresh Debian machine:
#   make demo   installs what is missing, builds, runs the s1-mini audit on the CPU, writes its report
#   make test   installs what is missing, builds, runs every test (ctest)
# Also: make install [PREFIX=~/.local] (the binaries, recipes and docs), make check-gpu (on a
# machine with a CUDA GPU: every GPU path once, ci/check-gpu.sh), make bench.
# Set-up installs with apt and pip only, into places that survive between runs, and skips what
# is already there. AUDIT_HOME (default ~/.cache/audit) holds the Python venv with torch.
AUDIT_HOME ?= $(HOME)/.cache/audit
VENV       := $(AUDIT_HOME)/venv
PY         := $(VENV)/bin/python3
BUILD      ?= build
JOBS       ?= $(shell nproc)
CTEST_ARGS ?=
export CCACHE_DIR ?= $(AUDIT_HOME)/ccache
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE ?= 5G
export CCACHE_NOHASHDIR := 1
export CCACHE_BASEDIR := $(CURDIR)
export AUDIT_PYTHON := $(PY)

PREFIX     ?= $(HOME)/.local

.PHONY: all setup deps configure build build-demo test demo bench install check-gpu clean

all: build

deps:
	@bash ci/setup.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -S . -B $(BUILD) -G Ninja \
	  -DCMAKE_PREFIX_PATH="$$($(PY) -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
	  -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
	  -DPython3_EXECUTABLE=$(PY)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The demo needs the two binaries only, not the tests and benchmarks.
build-demo: configure
	cmake --build $(BUILD) -j $(JOBS) --target audit audit-torch

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

demo: build-demo
	@bash ci/demo.sh $(BUILD)

bench: build
	$(BUILD)/audit bench

install: build-demo
	cmake --install $(BUILD) --prefix $(PREFIX)

check-gpu: deps
	@bash ci/check-gpu.sh

clean:
	rm -rf $(BUILD)
